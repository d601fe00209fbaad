"""Fetching a URL someone else chose, safely (SSRF): provider result URLs now, `upload-from-url` later.

- Only the allowed schemes (https by default).
- The host is resolved once and *every* address it resolves to must be public (`ipaddress.is_global`,
  not multicast, not IPv6 site-local; IPv4-mapped, IPv4-translated, 6to4, Teredo and NAT64 IPv6
  addresses are judged by the IPv4 inside). This covers loopback, private, link-local (cloud metadata
  at 169.254.169.254), carrier-grade NAT (100.64/10), unspecified and reserved ranges, and IP
  literals in any spelling the resolver accepts (decimal `2130706433`, octal `0177.0.0.1`, hex,
  `::ffff:127.0.0.1`).
- The connection goes to the address that was checked (the URL's host is replaced by the IP, with the
  original `Host` header and TLS server name), so a second DNS answer cannot swap in a private address
  (DNS rebinding).
- Redirects are followed by hand, each hop checked the same way, at most `max_redirects`.
- A byte cap (by `Content-Length` first, then while streaming) and one overall timeout.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECTS = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """Base of every refusal or failure of `fetch`. Messages never contain query strings."""


class FetchRefused(FetchError):
    """The URL is not allowed: scheme, host or one of its addresses (private, loopback, …)."""


class FetchTooLarge(FetchError):
    pass


class FetchFailed(FetchError):
    """Network error, timeout, too many redirects, or an error status (`status` set)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str | None
    url: str  # the final URL after redirects


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use: never public
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible (::a.b.c.d)
# RFC 2765 (SIIT) IPv4-translated addresses, ::ffff:0:a.b.c.d: the IPv4 address is the last 32 bits.
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # Site-local fec0::/10 is deprecated (RFC 3879) but still routed inside some sites, and
        # `is_global` counts it as global.
        if address in _NAT64_LOCAL or address in _IPV4_COMPATIBLE or address.is_site_local:
            return False
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and (address in _NAT64 or address in _IPV4_TRANSLATED):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP literal (no DNS lookup)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(url: httpx.URL | str) -> str:
    """The URL without its query string and fragment (signed result URLs carry tokens there)."""
    url = httpx.URL(str(url))
    return str(url.copy_with(query=None, fragment=None))


async def resolve_public(
    url: httpx.URL, resolver: Resolver = system_resolver, schemes: tuple[str, ...] = ("https",)
) -> str:
    """The address to connect to for `url`, or FetchRefused."""
    if url.scheme not in schemes:
        raise FetchRefused(f"only {', '.join(schemes)} URLs are allowed, not {url.scheme or 'none'}")
    host = url.host
    if not host:
        raise FetchRefused("the URL has no host")
    if url.userinfo:
        raise FetchRefused("URLs with credentials are not allowed")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchFailed(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise FetchFailed(f"{host} has no address")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise FetchRefused(f"{host} resolves to an unusable address") from None
        if not is_public_address(address):
            raise FetchRefused(f"{host} resolves to a non-public address ({address})")
    return addresses[0].split("%", 1)[0]


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - one budget for resolving, redirects and the body
    resolver: Resolver = system_resolver,
    schemes: tuple[str, ...] = ("https",),
    max_redirects: int = 3,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """GET `url` under the rules in the module docstring."""
    try:
        with anyio.fail_after(timeout):
            return await _fetch(client, httpx.URL(url), max_bytes, resolver, schemes, max_redirects, headers)
    except TimeoutError:
        raise FetchFailed(f"timed out after {timeout:g} s fetching {redact(url)}") from None
    except (httpx.InvalidURL, UnicodeError) as exc:  # UnicodeError: a host that is not valid IDNA
        raise FetchRefused(f"invalid URL: {str(exc).rstrip('.')}") from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


async def _fetch(
    client: httpx.AsyncClient,
    url: httpx.URL,
    max_bytes: int,
    resolver: Resolver,
    schemes: tuple[str, ...],
    max_redirects: int,
    headers: dict[str, str] | None,
) -> Fetched:
    for _ in range(max_redirects + 1):
        address = await resolve_public(url, resolver, schemes)
        host_header = url.netloc.decode("ascii")
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={**(headers or {}), "Host": host_header},
            extensions={"sni_hostname": url.host},
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"fetching {redact(url)} failed: {type(exc).__name__}") from None
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                target = url.join(response.headers["location"])
                if _origin(target) != _origin(url):
                    headers = None  # the caller's headers (credentials, perhaps) stay with its origin
                url = target
                continue
            if response.status_code != 200:
                raise FetchFailed(
                    f"fetching {redact(url)} returned HTTP {response.status_code}", response.status_code
                )
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchTooLarge(f"{redact(url)} is {int(declared)} bytes, over the {max_bytes}-byte cap")
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchTooLarge(f"{redact(url)} is over the {max_bytes}-byte cap")
                    chunks.append(chunk)
            except httpx.HTTPError as exc:
                raise FetchFailed(f"reading {redact(url)} failed: {type(exc).__name__}") from None
            return Fetched(b"".join(chunks), response.headers.get("content-type"), str(url))
        finally:
            await response.aclose()
    raise FetchFailed(f"more than {max_redirects} redirects fetching {redact(url)}")
