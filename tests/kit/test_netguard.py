"""netguard: SSRF-safe fetching. No network: a fake resolver and `httpx.MockTransport` everywhere,
except the numeric-host spellings, which glibc's getaddrinfo resolves locally."""

import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import anyio
import httpx
import pytest

from postengine.kit import netguard
from postengine.kit.netguard import (
    FetchError,
    FetchFailed,
    FetchRefused,
    FetchTooLarge,
    fetch,
    is_public_address,
    redact,
    resolve_public,
)

PUBLIC = "93.184.216.34"
PUBLIC_2 = "151.101.1.69"
PUBLIC_V6 = "2606:4700:4700::1111"
SECRET = "SECRET-TOKEN-123"
PNG_ISH = b"\x89PNG\r\n\x1a\n" + b"x" * 100

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


# ---------------------------------------------------------------- helpers


class FakeResolver:
    """Answers from a table; one answer per call when a host has a list of answers (rebinding)."""

    def __init__(self, table: dict[str, list[str] | list[list[str]]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):  # a sequence of answers, one per call
            calls = sum(1 for h, _ in self.calls if h == host)
            return list(answer[min(calls, len(answer)) - 1])
        return list(answer)  # type: ignore[arg-type]


def resolver_for(**hosts: str) -> FakeResolver:
    return FakeResolver({host.replace("_", "."): [address] for host, address in hosts.items()})


class Recorder:
    """A MockTransport handler that records every request it gets."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.handler(request)
        if not isinstance(response, httpx.Response):
            response = await response
        return response


def client_for(handler: Handler) -> tuple[httpx.AsyncClient, Recorder]:
    recorder = Recorder(handler)
    return httpx.AsyncClient(transport=httpx.MockTransport(recorder)), recorder


def ok(body: bytes = PNG_ISH, content_type: str = "image/png") -> Handler:
    return lambda request: httpx.Response(200, content=body, headers={"content-type": content_type})


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"location": location})


async def chunks(parts: Iterable[bytes], started: list[bool] | None = None) -> AsyncIterator[bytes]:
    if started is not None:
        started.append(True)
    for part in parts:
        yield part


# ---------------------------------------------------------------- is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC,
        "172.32.0.1",  # just outside 172.16/12
        "100.128.0.1",  # just outside 100.64/10
        PUBLIC_V6,
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "::ffff:0:808:808",  # IPv4-translated 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# The Teredo example from the ipaddress docs: server 65.54.227.120, client 10.0.0.1 (obfuscated).
TEREDO_PRIVATE = "2001:0:4136:e378:8000:63bf:f5ff:fffe"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "169.254.169.254",  # cloud metadata
        "169.254.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "ff02::1",  # multicast
        "2001:db8::1",  # documentation
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        TEREDO_PRIVATE,
        "::ffff:0:7f00:1",  # IPv4-translated (SIIT, RFC 2765) 127.0.0.1
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
        "fec0::1",  # site-local (deprecated, still routed in some sites)
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


def test_the_teredo_example_really_embeds_a_private_client() -> None:
    teredo = ipaddress.IPv6Address(TEREDO_PRIVATE).teredo
    assert teredo is not None
    assert teredo[1] == ipaddress.IPv4Address("10.0.0.1")


@pytest.mark.parametrize("address", ["64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1"])
def test_nat64_addresses_embedding_private_ipv4_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


# ---------------------------------------------------------------- redact


def test_redact_drops_query_and_fragment() -> None:
    assert redact(f"https://cdn.example.com/a.png?signature={SECRET}#frag") == "https://cdn.example.com/a.png"
    assert redact(httpx.URL(f"https://cdn.example.com:8443/a?x={SECRET}")) == "https://cdn.example.com:8443/a"


# ---------------------------------------------------------------- resolve_public


@pytest.mark.parametrize(
    ("url", "schemes"),
    [
        ("http://cdn.example.com/a.png", ("https",)),
        ("ftp://cdn.example.com/a.png", ("https",)),
        ("file:///etc/passwd", ("https",)),
        ("gopher://cdn.example.com:70/_x", ("https",)),
        ("https://cdn.example.com/a.png", ("http",)),
        ("ftp://cdn.example.com/a.png", ("https", "http")),
    ],
)
async def test_resolve_public_refuses_other_schemes(url: str, schemes: tuple[str, ...]) -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC)
    with pytest.raises(FetchRefused):
        await resolve_public(httpx.URL(url), resolver, schemes)
    assert resolver.calls == []


async def test_resolve_public_refuses_a_url_without_host() -> None:
    with pytest.raises(FetchRefused):
        await resolve_public(httpx.URL("https:///a.png"), FakeResolver())


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@cdn.example.com/a.png",
        "https://user@cdn.example.com/a.png",
        "https://:pass@cdn.example.com/a.png",
    ],
)
async def test_resolve_public_refuses_userinfo(url: str) -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC)
    with pytest.raises(FetchRefused, match="credentials"):
        await resolve_public(httpx.URL(url), resolver)
    assert resolver.calls == []


async def test_resolve_public_returns_the_resolved_address_and_passes_the_port() -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC)
    assert await resolve_public(httpx.URL("https://cdn.example.com/a.png"), resolver) == PUBLIC
    assert await resolve_public(httpx.URL("https://cdn.example.com:8443/a.png"), resolver) == PUBLIC
    assert await resolve_public(httpx.URL("http://cdn.example.com/a"), resolver, ("http",)) == PUBLIC
    assert resolver.calls == [("cdn.example.com", 443), ("cdn.example.com", 8443), ("cdn.example.com", 80)]


async def test_resolve_public_strips_an_ipv6_scope_id() -> None:
    resolver = FakeResolver({"v6.example.com": [f"{PUBLIC_V6}%2"]})
    assert await resolve_public(httpx.URL("https://v6.example.com/"), resolver) == PUBLIC_V6


@pytest.mark.parametrize("host", ["8.8.8.8", f"[{PUBLIC_V6}]", "[::ffff:8.8.8.8]"])
async def test_public_ip_literals_are_allowed_without_resolving(host: str) -> None:
    resolver = FakeResolver()
    address = await resolve_public(httpx.URL(f"https://{host}/a.png"), resolver)
    assert ipaddress.ip_address(address) == ipaddress.ip_address(host.strip("[]"))
    assert resolver.calls == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:10.0.0.1]",
        "[fd00:ec2::254]",
        "[2002:7f00:1::1]",
        f"[{TEREDO_PRIVATE}]",
    ],
)
async def test_private_ip_literals_are_refused(host: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(FetchRefused, match="non-public"):
        await resolve_public(httpx.URL(f"https://{host}/a.png"), resolver)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "answer",
    [
        [PUBLIC, "10.0.0.5"],
        ["10.0.0.5", PUBLIC],
        [PUBLIC, "127.0.0.1"],
        [PUBLIC_V6, "::1"],
        [PUBLIC, "::ffff:169.254.169.254"],
        ["fe80::1%eth0"],
    ],
)
async def test_every_resolved_address_must_be_public(answer: list[str]) -> None:
    resolver = FakeResolver({"cdn.example.com": answer})
    with pytest.raises(FetchRefused, match="non-public"):
        await resolve_public(httpx.URL("https://cdn.example.com/a.png"), resolver)


async def test_an_unusable_resolved_address_is_refused() -> None:
    resolver = FakeResolver({"cdn.example.com": ["not-an-ip"]})
    with pytest.raises(FetchRefused, match="unusable"):
        await resolve_public(httpx.URL("https://cdn.example.com/a.png"), resolver)


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        OSError("network is unreachable"),
        UnicodeError("label too long"),
    ],
)
async def test_resolver_errors_are_fetch_failed(error: Exception) -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise error

    with pytest.raises(FetchFailed, match=r"cannot resolve cdn\.example\.com") as info:
        await resolve_public(httpx.URL("https://cdn.example.com/a.png"), broken)
    assert info.value.status is None


async def test_no_address_is_fetch_failed() -> None:
    with pytest.raises(FetchFailed, match="no address"):
        await resolve_public(
            httpx.URL("https://cdn.example.com/a.png"), FakeResolver({"cdn.example.com": []})
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0177.0.0.1/",  # octal
        "http://0x7f.1/",  # hex, short form
        "http://127.1/",  # short form
        "http://0x7f000001/",
        "http://017700000001/",
        "http://0/",  # 0.0.0.0
        "http://0xa9fea9fe/",  # 169.254.169.254
    ],
)
async def test_numeric_host_spellings_are_refused_by_the_system_resolver(url: str) -> None:
    # glibc resolves these forms locally (inet_aton), so no network is used. httpx may also reject a
    # spelling outright as an invalid URL: refused either way, and never fetched.
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        pass
    else:
        with pytest.raises(FetchRefused):
            await resolve_public(parsed, schemes=("http",))

    client, recorder = client_for(ok())
    async with client:
        with pytest.raises(FetchRefused):
            await fetch(client, url, max_bytes=1000, timeout=5, schemes=("http",))
    assert recorder.requests == []


# ---------------------------------------------------------------- fetch: the happy path


async def test_fetch_connects_to_the_checked_address_with_the_original_host_and_sni() -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC)
    client, recorder = client_for(ok(content_type="image/png"))
    async with client:
        fetched = await fetch(
            client,
            f"https://cdn.example.com/img/a.png?signature={SECRET}",
            max_bytes=10_000,
            timeout=5,
            resolver=resolver,
            headers={"User-Agent": "postengine-test"},
        )
    assert fetched.data == PNG_ISH
    assert fetched.content_type == "image/png"
    assert fetched.url == f"https://cdn.example.com/img/a.png?signature={SECRET}"
    [request] = recorder.requests
    assert request.method == "GET"
    assert request.url.host == PUBLIC
    assert request.url.scheme == "https"
    assert request.url.path == "/img/a.png"
    assert request.url.query == f"signature={SECRET}".encode()
    assert request.headers["host"] == "cdn.example.com"
    assert request.headers["user-agent"] == "postengine-test"
    assert request.extensions["sni_hostname"] == "cdn.example.com"
    assert resolver.calls == [("cdn.example.com", 443)]


async def test_fetch_keeps_a_non_default_port_in_the_url_and_the_host_header() -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC)
    client, recorder = client_for(ok())
    async with client:
        await fetch(
            client, "https://cdn.example.com:8443/a.png", max_bytes=10_000, timeout=5, resolver=resolver
        )
    [request] = recorder.requests
    assert request.url.host == PUBLIC
    assert request.url.port == 8443
    assert request.headers["host"] == "cdn.example.com:8443"
    assert request.extensions["sni_hostname"] == "cdn.example.com"
    assert resolver.calls == [("cdn.example.com", 8443)]


async def test_fetch_to_an_ipv6_address() -> None:
    resolver = resolver_for(cdn_example_com=PUBLIC_V6)
    client, recorder = client_for(ok())
    async with client:
        fetched = await fetch(
            client, "https://cdn.example.com/a.png", max_bytes=10_000, timeout=5, resolver=resolver
        )
    assert fetched.data == PNG_ISH
    [request] = recorder.requests
    assert ipaddress.ip_address(request.url.host) == ipaddress.ip_address(PUBLIC_V6)
    assert request.headers["host"] == "cdn.example.com"


async def test_fetch_without_content_type() -> None:
    client, _ = client_for(lambda request: httpx.Response(200, content=b"abc"))
    async with client:
        fetched = await fetch(
            client,
            "https://cdn.example.com/a",
            max_bytes=10,
            timeout=5,
            resolver=resolver_for(cdn_example_com=PUBLIC),
        )
    assert fetched.data == b"abc"
    assert fetched.content_type is None


async def test_a_body_of_exactly_the_cap_is_accepted() -> None:
    client, _ = client_for(lambda request: httpx.Response(200, content=chunks([b"a" * 6, b"b" * 4])))
    async with client:
        fetched = await fetch(
            client,
            "https://cdn.example.com/a",
            max_bytes=10,
            timeout=5,
            resolver=resolver_for(cdn_example_com=PUBLIC),
        )
    assert fetched.data == b"a" * 6 + b"b" * 4


# ---------------------------------------------------------------- fetch: caps


async def test_a_declared_content_length_over_the_cap_is_refused_without_reading() -> None:
    started: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-length": "1000001"}, content=chunks([b"x" * 10], started=started)
        )

    client, _ = client_for(handler)
    async with client:
        with pytest.raises(FetchTooLarge) as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=1_000_000,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert started == []
    assert "1000001" in str(info.value)
    assert SECRET not in str(info.value)


async def test_a_streamed_body_over_the_cap_is_refused() -> None:
    served: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            served.append(1)
            yield b"x" * 400

    client, _ = client_for(lambda request: httpx.Response(200, content=endless()))
    async with client:
        with pytest.raises(FetchTooLarge) as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=1000,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert len(served) == 3  # stops at the first chunk over the cap
    assert SECRET not in str(info.value)


async def test_a_lying_small_content_length_does_not_lift_the_cap() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": "5"}, content=chunks([b"x" * 600, b"y" * 600]))

    client, _ = client_for(handler)
    async with client:
        with pytest.raises(FetchTooLarge):
            await fetch(
                client,
                "https://cdn.example.com/a",
                max_bytes=1000,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )


# ---------------------------------------------------------------- fetch: redirects


async def test_callers_headers_go_to_the_same_origin_only() -> None:
    resolver = FakeResolver({"cdn.example.com": [PUBLIC], "images.example.net": [PUBLIC_2]})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a.png":
            return redirect("/b.png")
        if request.url.path == "/b.png":
            return redirect("https://images.example.net/c.png")
        return httpx.Response(200, content=b"final", headers={"content-type": "image/webp"})

    client, recorder = client_for(handler)
    async with client:
        await fetch(
            client, "https://cdn.example.com/a.png", max_bytes=100, timeout=5, resolver=resolver,
            headers={"Authorization": f"Bearer {SECRET}"},
        )
    assert [r.headers.get("authorization") for r in recorder.requests] == [f"Bearer {SECRET}"] * 2 + [None]


async def test_redirects_are_followed_and_each_hop_is_resolved_and_checked() -> None:
    resolver = FakeResolver({"cdn.example.com": [PUBLIC], "images.example.net": [PUBLIC_2]})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "cdn.example.com":
            return redirect(f"https://images.example.net:8443/final.png?signature={SECRET}", 301)
        return httpx.Response(200, content=b"final", headers={"content-type": "image/webp"})

    client, recorder = client_for(handler)
    async with client:
        fetched = await fetch(
            client, "https://cdn.example.com/a.png", max_bytes=100, timeout=5, resolver=resolver
        )
    assert fetched.data == b"final"
    assert fetched.content_type == "image/webp"
    assert fetched.url == f"https://images.example.net:8443/final.png?signature={SECRET}"
    assert [r.url.host for r in recorder.requests] == [PUBLIC, PUBLIC_2]
    assert [r.headers["host"] for r in recorder.requests] == ["cdn.example.com", "images.example.net:8443"]
    assert [r.extensions["sni_hostname"] for r in recorder.requests] == [
        "cdn.example.com",
        "images.example.net",
    ]
    assert resolver.calls == [("cdn.example.com", 443), ("images.example.net", 8443)]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_relative_location_is_joined_to_the_current_url(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return redirect("/elsewhere/b.png?x=1", status)
        return httpx.Response(200, content=b"done")

    client, recorder = client_for(handler)
    async with client:
        fetched = await fetch(
            client,
            "https://cdn.example.com/start",
            max_bytes=100,
            timeout=5,
            resolver=resolver_for(cdn_example_com=PUBLIC),
        )
    assert fetched.data == b"done"
    assert fetched.url == "https://cdn.example.com/elsewhere/b.png?x=1"
    assert [r.url.path for r in recorder.requests] == ["/start", "/elsewhere/b.png"]
    assert all(r.url.host == PUBLIC and r.headers["host"] == "cdn.example.com" for r in recorder.requests)


@pytest.mark.parametrize(
    "location",
    [
        f"http://cdn.example.com/a.png?signature={SECRET}",
        "ftp://cdn.example.com/a.png",
        "file:///etc/passwd",
        "https://user:pw@cdn.example.com/a.png",
    ],
)
async def test_a_redirect_to_a_refused_scheme_or_credentials_is_refused(location: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return redirect(location)

    client, recorder = client_for(handler)
    async with client:
        with pytest.raises(FetchRefused) as info:
            await fetch(
                client,
                "https://cdn.example.com/a",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert len(recorder.requests) == 1
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "location",
    [
        "https://internal.example.com/admin",  # a name resolving to a private address
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://[::ffff:10.0.0.1]/",
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(location: str) -> None:
    resolver = FakeResolver({"cdn.example.com": [PUBLIC], "internal.example.com": ["10.1.2.3"]})
    client, recorder = client_for(lambda request: redirect(location))
    async with client:
        with pytest.raises(FetchRefused, match="non-public"):
            await fetch(client, "https://cdn.example.com/a", max_bytes=100, timeout=5, resolver=resolver)
    assert [r.url.host for r in recorder.requests] == [PUBLIC]


@pytest.mark.parametrize("max_redirects", [0, 1, 3])
async def test_more_than_max_redirects_is_fetch_failed(max_redirects: int) -> None:
    counter = iter(range(100))

    def handler(request: httpx.Request) -> httpx.Response:
        return redirect(f"/hop{next(counter)}?signature={SECRET}")

    client, recorder = client_for(handler)
    async with client:
        with pytest.raises(FetchFailed, match=f"more than {max_redirects} redirects") as info:
            await fetch(
                client,
                "https://cdn.example.com/a",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
                max_redirects=max_redirects,
            )
    assert len(recorder.requests) == max_redirects + 1
    assert SECRET not in str(info.value)


async def test_exactly_max_redirects_is_allowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.path.removeprefix("/hop"))
        return redirect(f"/hop{hop + 1}") if hop < 3 else httpx.Response(200, content=b"ok")

    client, recorder = client_for(handler)
    async with client:
        fetched = await fetch(
            client,
            "https://cdn.example.com/hop0",
            max_bytes=100,
            timeout=5,
            resolver=resolver_for(cdn_example_com=PUBLIC),
            max_redirects=3,
        )
    assert fetched.data == b"ok"
    assert len(recorder.requests) == 4


async def test_a_redirect_without_location_is_an_error_status() -> None:
    client, _ = client_for(lambda request: httpx.Response(302))
    async with client:
        with pytest.raises(FetchFailed) as info:
            await fetch(
                client,
                "https://cdn.example.com/a",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert info.value.status == 302


# ---------------------------------------------------------------- fetch: DNS rebinding


async def test_dns_rebinding_connects_to_the_checked_address_and_re_resolves_on_redirect() -> None:
    # First answer public, every later answer private (a rebinding attacker's DNS server).
    resolver = FakeResolver({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})

    def handler(request: httpx.Request) -> httpx.Response:
        return redirect(f"https://rebind.example.com/again?signature={SECRET}")

    client, recorder = client_for(handler)
    async with client:
        with pytest.raises(FetchRefused, match="non-public") as info:
            await fetch(
                client, "https://rebind.example.com/first", max_bytes=100, timeout=5, resolver=resolver
            )
    # The only connection went to the address that was checked, never to a second lookup's answer.
    [request] = recorder.requests
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "rebind.example.com"
    assert resolver.calls == [("rebind.example.com", 443), ("rebind.example.com", 443)]
    assert SECRET not in str(info.value)


async def test_dns_rebinding_a_single_fetch_resolves_once() -> None:
    resolver = FakeResolver({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})
    client, recorder = client_for(ok())
    async with client:
        fetched = await fetch(
            client, "https://rebind.example.com/a", max_bytes=1000, timeout=5, resolver=resolver
        )
    assert fetched.data == PNG_ISH
    assert [r.url.host for r in recorder.requests] == [PUBLIC]
    assert len(resolver.calls) == 1


# ---------------------------------------------------------------- fetch: failures


@pytest.mark.parametrize("status", [201, 204, 206, 304, 400, 403, 404, 410, 429, 500, 502, 503, 504])
async def test_a_non_200_status_is_fetch_failed_with_the_status(status: int) -> None:
    client, _ = client_for(lambda request: httpx.Response(status, content=b"nope"))
    async with client:
        with pytest.raises(FetchFailed) as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError],
)
async def test_transport_errors_are_fetch_failed(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"boom while fetching {request.url}", request=request)

    client, _ = client_for(handler)
    async with client:
        with pytest.raises(FetchFailed) as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert info.value.status is None
    assert error.__name__ in str(info.value)
    assert SECRET not in str(info.value)


async def test_an_error_while_reading_the_body_is_fetch_failed() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("connection reset")

    client, _ = client_for(lambda request: httpx.Response(200, content=broken()))
    async with client:
        with pytest.raises(FetchFailed, match="ReadError") as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=100,
                timeout=5,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert SECRET not in str(info.value)


async def test_a_slow_server_times_out() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200, content=b"late")

    client, _ = client_for(slow)
    async with client:
        with pytest.raises(FetchFailed, match="timed out") as info:
            await fetch(
                client,
                f"https://cdn.example.com/a.png?signature={SECRET}",
                max_bytes=100,
                timeout=0.05,
                resolver=resolver_for(cdn_example_com=PUBLIC),
            )
    assert info.value.status is None
    assert SECRET not in str(info.value)


async def test_a_slow_resolver_counts_against_the_timeout() -> None:
    async def slow_resolver(host: str, port: int) -> list[str]:
        await anyio.sleep(5)
        return [PUBLIC]

    client, recorder = client_for(ok())
    async with client:
        with pytest.raises(FetchFailed, match="timed out"):
            await fetch(
                client, "https://cdn.example.com/a", max_bytes=100, timeout=0.05, resolver=slow_resolver
            )
    assert recorder.requests == []


async def test_an_unresolvable_host_is_fetch_failed() -> None:
    client, recorder = client_for(ok())
    async with client:
        with pytest.raises(FetchFailed, match="cannot resolve") as info:
            await fetch(
                client,
                f"https://nowhere.example.com/a?signature={SECRET}",
                max_bytes=100,
                timeout=5,
                resolver=FakeResolver(),
            )
    assert recorder.requests == []
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"http://cdn.example.com/a.png?signature={SECRET}",
        f"https://10.0.0.1/a.png?signature={SECRET}",
        f"https://private.example.com/a.png?signature={SECRET}",
        f"https://user:{SECRET}@cdn.example.com/a.png?signature={SECRET}",
        f"https://[::1/a.png?signature={SECRET}",  # invalid URL
        f"https://0177.0.0.1/a.png?signature={SECRET}",  # invalid for httpx
    ],
)
async def test_refusals_never_connect_and_never_show_the_query(url: str) -> None:
    resolver = FakeResolver({"cdn.example.com": [PUBLIC], "private.example.com": ["192.168.1.10"]})
    client, recorder = client_for(ok())
    async with client:
        with pytest.raises(FetchRefused) as info:
            await fetch(client, url, max_bytes=100, timeout=5, resolver=resolver)
    assert recorder.requests == []
    assert SECRET not in str(info.value)


async def test_fetch_errors_share_one_base() -> None:
    for error in (FetchRefused, FetchTooLarge, FetchFailed):
        assert issubclass(error, FetchError)
    assert netguard.FetchFailed("x", 404).status == 404
