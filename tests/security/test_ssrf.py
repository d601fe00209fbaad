"""SSRF through `POST /media/upload-from-url`, at the HTTP level (API.md §5.2: "private, loopback,
link-local and metadata addresses are refused (also after redirects and DNS resolution)").

`tests/kit/test_netguard.py` covers `netguard` function by function; this file drives the endpoint
with every spelling of a private address, redirects of every kind to each of them, chains, DNS
rebinding, and a real listening socket, and checks two things each time:

- the answer is 400 `url_not_allowed` in the envelope (`fetch_failed` for too many redirects, which
  is not an address problem), and nothing is stored;
- no connection was ever made to a non-public address. The app's HTTP client is an
  `httpx.MockTransport` that records every request; netguard puts the checked IP in the request URL
  (a real transport connects to exactly that) and the name in the `Host` header, so "every recorded
  URL host is public" is "every connection went to a public address". One test uses the app's real
  client and the system resolver against a socket listening on loopback, and checks that nothing
  ever connected to it.
"""

import contextlib
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from postengine.kit import netguard
from postengine.media import fetch
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import storage_used

URL = "/api/v1/media/upload-from-url"
PUBLIC = "93.184.216.34"
PUBLIC_2 = "151.101.1.69"
PNG = files.png(64, 48)

# Host names and what "DNS" answers for them. Numeric spellings go to the system resolver (glibc
# parses them without any lookup), as they would in production.
DNS: dict[str, list[str]] = {
    "images.example.com": [PUBLIC],
    "cdn.example.net": [PUBLIC_2],
    "metadata.google.internal": ["169.254.169.254"],  # what it resolves to on GCE
    "metadata.google.internal.": ["169.254.169.254"],
    "localhost": ["127.0.0.1", "::1"],
    "localhost.": ["127.0.0.1", "::1"],
    "internal.example.com": ["10.1.2.3"],
    "v6-internal.example.com": ["fd00::5"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "public-then-private.example.com": [PUBLIC, "10.0.0.1"],  # one private answer is enough
    "private-then-public.example.com": ["192.168.0.10", PUBLIC],
    "public-then-metadata.example.com": [PUBLIC_2, "169.254.169.254"],
}
# A rebinding attacker's DNS: a public address the first time, loopback every time after.
REBINDING = "rebind.example.com"


class Resolver:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host == REBINDING:
            return [PUBLIC] if self.calls.count(host) == 1 else ["127.0.0.1"]
        if host in DNS:
            return DNS[host]
        if re.fullmatch(r"[0-9a-fA-Fx.]+", host):
            return await netguard.system_resolver(host, port)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


class Upstream:
    """The remote servers (by `Host` header). Records the address each request went to."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host, path = request.headers["host"], request.url.path
        if path == "/photo.png":
            return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
        if path == "/redirect":  # /redirect?status=302&to=<url>
            params = request.url.params
            return httpx.Response(int(params["status"]), headers={"location": params["to"]})
        if match := re.fullmatch(r"/hop/(\d+)", path):  # a chain that alternates between two hosts
            left = int(match[1])
            if left == 0:
                return httpx.Response(200, content=PNG)
            other = "cdn.example.net" if host == "images.example.com" else "images.example.com"
            return httpx.Response(302, headers={"location": f"https://{other}/hop/{left - 1}"})
        if host == REBINDING:
            return httpx.Response(302, headers={"location": f"https://{REBINDING}/again.png"})
        return httpx.Response(404)

    @property
    def addresses(self) -> list[str]:
        return [request.url.host for request in self.requests]

    def only_public_addresses(self) -> bool:
        return all(netguard.is_public_address(ipaddress.ip_address(host)) for host in self.addresses)


@pytest.fixture
async def remote(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Upstream, Resolver]]:
    upstream, resolver = Upstream(), Resolver()
    monkeypatch.setattr(fetch, "resolver", resolver)
    ctx = app.state.ctx
    original = ctx.http
    ctx.http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    try:
        yield upstream, resolver
    finally:
        await ctx.http.aclose()
        ctx.http = original


def redirect_url(target: str, status: int) -> str:
    return f"https://images.example.com/redirect?status={status}&to={quote(target, safe='')}"


# Every spelling of a non-public host, as it appears in a URL.
PRIVATE_HOSTS = [
    # 127.0.0.1 in every notation inet_aton accepts, and the literal
    "127.0.0.1",
    "2130706433",
    "017700000001",
    "0x7f000001",
    "0x7F000001",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0177.0.0.1",  # httpx itself refuses this one as an invalid URL: refused all the same
    "127.0.0.1:443",
    "127.255.255.254",
    # IPv6 loopback and IPv4 inside IPv6
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:0:7f00:1]",  # IPv4-translated
    "[64:ff9b::7f00:1]",  # NAT64
    "[2002:7f00:1::1]",  # 6to4
    "[::127.0.0.1]",  # IPv4-compatible
    # cloud metadata
    "169.254.169.254",
    "0xa9fea9fe",
    "2852039166",
    "metadata.google.internal",
    "metadata.google.internal.",
    "[fd00:ec2::254]",
    # names for loopback
    "localhost",
    "LOCALHOST",
    "localhost.",
    # private ranges: 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), unspecified, ULA, link-local
    "10.0.0.1",
    "10.255.255.254",
    "012.0.0.1",
    "167772161",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.254",
    "3232235777",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0",
    "[::]",
    "[fd00::1]",
    "[fdff:ffff::1]",
    "[fc00::1]",
    "[fe80::1]",
    "[fec0::1]",
    # names that resolve to any of those, partly or wholly
    "internal.example.com",
    "v6-internal.example.com",
    "mapped.example.com",
    "public-then-private.example.com",
    "private-then-public.example.com",
    "public-then-metadata.example.com",
]

UNPARSEABLE = ("https://0177.0.0.1/", "https://012.0.0.1/")  # httpx: "Invalid IPv4 address"

USERINFO_TRICKS = [
    "https://public@127.0.0.1/photo.png",
    "https://images.example.com@127.0.0.1/photo.png",
    "https://images.example.com:443@169.254.169.254/photo.png",
    "https://user:pass@images.example.com/photo.png",
    "https://127.0.0.1\\@images.example.com/photo.png",  # browsers read this host as 127.0.0.1
    "https://127.0.0.1%2f@images.example.com/photo.png",
    "https://127.0.0.1#@images.example.com/photo.png",
    "https://127.0.0.1?@images.example.com/photo.png",
    "http://images.example.com/photo.png",  # only https
    "HTTP://127.0.0.1/photo.png",
    "ftp://127.0.0.1/photo.png",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "dict://127.0.0.1:11211/stats",
    "https:/127.0.0.1/photo.png",
    "https:127.0.0.1/photo.png",
    "//127.0.0.1/photo.png",
    "https://[::1/photo.png",
]


async def _refused(client: httpx.AsyncClient, headers: dict[str, str], url: str, code: str = "url_not_allowed") -> None:
    response = await client.post(URL, headers=headers, json={"url": url})
    try:
        assert_envelope(response, 400, code)
    except AssertionError as exc:
        raise AssertionError(f"{url}: {exc}") from None


async def test_a_public_image_is_fetched(client: httpx.AsyncClient, make_tenant, remote) -> None:
    """The harness lets a public URL through: the refusals below are refusals of the address."""
    upstream, _ = remote
    tenant = await make_tenant()
    response = await client.post(URL, headers=tenant.headers, json={"url": "https://images.example.com/photo.png"})
    assert assert_envelope(response, 200)["data"]["width"] == 64
    assert upstream.addresses == [PUBLIC]
    assert upstream.requests[0].headers["host"] == "images.example.com"


async def test_every_spelling_of_a_private_host_is_refused(client: httpx.AsyncClient, make_tenant, remote) -> None:
    upstream, _ = remote
    tenant = await make_tenant()
    for host in PRIVATE_HOSTS:
        await _refused(client, tenant.headers, f"https://{host}/photo.png")
    assert upstream.requests == []  # not one connection, to any address
    assert await storage_used(client, tenant.headers) == 0


async def test_userinfo_and_scheme_tricks_are_refused(client: httpx.AsyncClient, make_tenant, remote) -> None:
    upstream, resolver = remote
    tenant = await make_tenant()
    for url in USERINFO_TRICKS:
        await _refused(client, tenant.headers, url)
    assert upstream.requests == []
    assert resolver.calls == []  # refused on sight, before any lookup


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_to_every_private_form_are_refused(
    client: httpx.AsyncClient, make_tenant, remote, status: int
) -> None:
    upstream, _ = remote
    tenant = await make_tenant()
    targets = [f"https://{host}/photo.png" for host in PRIVATE_HOSTS]
    targets += [
        "http://127.0.0.1/photo.png",  # and a scheme change on the way
        "//169.254.169.254/latest/meta-data/",  # scheme-relative
        "https://public@127.0.0.1/photo.png",
    ]
    for start in range(0, len(targets), 25):  # a fresh key now and then: 60 requests a minute per key
        if start:
            tenant = await make_tenant()
        for target in targets[start : start + 25]:
            # A Location that httpx cannot even parse (octal with a leading zero) fails the response
            # itself (`fetch_failed`, also 400): refused before any connection all the same.
            code = "fetch_failed" if target.startswith(UNPARSEABLE) else "url_not_allowed"
            await _refused(client, tenant.headers, redirect_url(target, status), code)
    # Every request that went out went to the public first hop; none followed a redirect.
    assert upstream.only_public_addresses()
    assert set(upstream.addresses) == {PUBLIC}
    assert len(upstream.requests) == len(targets)
    assert await storage_used(client, tenant.headers) == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_a_public_host_is_followed(
    client: httpx.AsyncClient, make_tenant, remote, status: int
) -> None:
    upstream, _ = remote
    tenant = await make_tenant()
    response = await client.post(
        URL, headers=tenant.headers, json={"url": redirect_url("https://cdn.example.net/photo.png", status)}
    )
    assert_envelope(response, 200)
    assert upstream.addresses == [PUBLIC, PUBLIC_2]


async def test_a_chain_of_public_redirects_ending_private_is_refused(
    client: httpx.AsyncClient, make_tenant, remote
) -> None:
    upstream, _ = remote
    tenant = await make_tenant()
    # images.example.com → cdn.example.net → images.example.com → 169.254.169.254
    final = redirect_url("https://169.254.169.254/latest/meta-data/iam/", 307)
    second = f"https://cdn.example.net/redirect?status=308&to={quote(final, safe='')}"
    await _refused(client, tenant.headers, redirect_url(second, 301))
    assert upstream.addresses == [PUBLIC, PUBLIC_2, PUBLIC]
    assert upstream.only_public_addresses()


async def test_too_many_redirects_are_refused(client: httpx.AsyncClient, make_tenant, remote) -> None:
    upstream, _ = remote
    tenant = await make_tenant()
    # Three redirects are followed (netguard's default), a fourth is not.
    response = await client.post(URL, headers=tenant.headers, json={"url": "https://images.example.com/hop/3"})
    assert_envelope(response, 200)
    assert len(upstream.requests) == 4
    upstream.requests.clear()
    response = await client.post(URL, headers=tenant.headers, json={"url": "https://images.example.com/hop/50"})
    body = assert_envelope(response, 400, "fetch_failed")
    assert "redirects" in body["error"]["message"]
    assert len(upstream.requests) == 4  # and no more were made
    assert upstream.only_public_addresses()


async def test_dns_rebinding_connects_only_to_the_address_that_was_checked(
    client: httpx.AsyncClient, make_tenant, remote
) -> None:
    """The name answers public, then loopback. The first request goes to the public address that was
    checked (by IP, with the name in `Host`), never to a second lookup's answer; the redirect back to
    the same name is resolved again, gets loopback, and is refused."""
    upstream, resolver = remote
    tenant = await make_tenant()
    await _refused(client, tenant.headers, f"https://{REBINDING}/start.png")
    assert upstream.addresses == [PUBLIC]
    assert upstream.requests[0].headers["host"] == REBINDING
    assert resolver.calls == [REBINDING, REBINDING]


async def test_a_name_with_public_and_private_answers_is_never_connected(
    client: httpx.AsyncClient, make_tenant, remote
) -> None:
    upstream, resolver = remote
    tenant = await make_tenant()
    for host in ("public-then-private.example.com", "private-then-public.example.com"):
        await _refused(client, tenant.headers, f"https://{host}/photo.png")
    assert upstream.requests == []
    assert resolver.calls == ["public-then-private.example.com", "private-then-public.example.com"]


# ---------------------------------------------------------------- a real socket on loopback


@pytest.fixture
def listeners() -> Iterator[tuple[int, list[socket.socket]]]:
    """Sockets listening on 127.0.0.1 (and ::1 where the machine has IPv6) on one port. They never
    accept: a connection attempt would still complete in the kernel's backlog, where the test looks."""
    v4 = socket.create_server(("127.0.0.1", 0))
    port = v4.getsockname()[1]
    socks = [v4]
    with contextlib.suppress(OSError):  # without IPv6 loopback the [::1] forms are still refused
        socks.append(socket.create_server(("::1", port), family=socket.AF_INET6))
    for sock in socks:
        sock.setblocking(False)
    try:
        yield port, socks
    finally:
        for sock in socks:
            sock.close()


def _connections(socks: list[socket.socket]) -> int:
    count = 0
    for sock in socks:
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                break
            conn.close()
            count += 1
    return count


async def test_the_real_client_never_connects_to_a_loopback_listener(
    client: httpx.AsyncClient, make_tenant, listeners
) -> None:
    """No fakes: the app's own HTTP client and the system resolver, against a socket listening on
    loopback. (0.0.0.0 and :: reach the local host on Linux, so they are loopback here too.)"""
    port, socks = listeners
    tenant = await make_tenant()
    hosts = ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "0", "0.0.0.0", "localhost",
             "[::1]", "[::]", "[::ffff:127.0.0.1]", "public@127.0.0.1"]
    urls = [f"https://{host}:{port}/photo.png" for host in hosts] + [f"http://127.0.0.1:{port}/photo.png"]
    for url in urls:
        await _refused(client, tenant.headers, url)
    # The harness can see a connection: a plain client reaches the listener.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert _connections(socks) == 1


async def test_a_redirect_to_a_host_that_is_not_valid_idna_is_refused(
    client: httpx.AsyncClient, make_tenant, remote
) -> None:
    """`xn--` alone is not a valid IDNA label: httpx raises a UnicodeError reading the target's host,
    which escaped the fetcher as a 500 (found by the schemathesis run). Now refused like any bad URL."""
    upstream, _ = remote
    tenant = await make_tenant()
    await _refused(client, tenant.headers, redirect_url("https://xn--/photo.png", 302))
    assert set(upstream.addresses) == {PUBLIC}
