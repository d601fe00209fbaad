"""API.md §5.2: POST /media/upload-from-url, safe against SSRF. No network: a fixed resolver table
(the module attribute `media.fetch.resolver`) and an `httpx.MockTransport` as the app's client."""

import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from postengine.kit import netguard
from postengine.media import fetch
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import BASE, storage_used

URL = "/api/v1/media/upload-from-url"
HOSTS = {
    "images.example.com": ["93.184.216.34"],
    "cdn.example.net": ["151.101.1.69"],
    "internal.example.com": ["10.1.2.3"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],  # one private answer is enough to refuse
    "localhost": ["127.0.0.1", "::1"],
}


async def _resolve(host: str, port: int) -> list[str]:
    if host.isdigit():  # numeric spellings of an address: glibc parses them without any lookup
        return await netguard.system_resolver(host, port)
    if host not in HOSTS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return HOSTS[host]


class Upstream:
    """The remote servers, by Host header; records every request that reached them."""

    def __init__(self, routes: dict[str, Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        target = f"{request.headers['host']}{request.url.path}"
        self.seen.append(target)
        handler = self.routes.get(target)
        return handler(request) if handler else httpx.Response(404)


@pytest.fixture
async def upstream(app, monkeypatch) -> AsyncIterator[Upstream]:
    png = files.png(800, 600)
    remote = Upstream(
        {
            "images.example.com/photos/launch.png": lambda r: httpx.Response(200, content=png),
            "images.example.com/page.html": lambda r: httpx.Response(200, content=b"<html></html>".ljust(80)),
            "images.example.com/huge.jpg": lambda r: httpx.Response(
                200, headers={"content-length": str(26 * 1024 * 1024)}, content=b"\xff\xd8\xff"
            ),
            "images.example.com/endless.jpg": lambda r: httpx.Response(200, content=_endless()),
            "images.example.com/to-metadata": lambda r: httpx.Response(
                302, headers={"location": "https://169.254.169.254/latest/meta-data/"}
            ),
            "images.example.com/to-internal": lambda r: httpx.Response(
                301, headers={"location": "https://internal.example.com/x.png"}
            ),
            "images.example.com/to-cdn": lambda r: httpx.Response(
                302, headers={"location": "https://cdn.example.net/real.png"}
            ),
            "cdn.example.net/real.png": lambda r: httpx.Response(200, content=png),
            "cdn.example.net/clip.mp4": lambda r: httpx.Response(200, content=files.mp4(640, 360, 4.0)),
        }
    )
    monkeypatch.setattr(fetch, "resolver", _resolve)
    ctx = app.state.ctx
    original = ctx.http
    ctx.http = httpx.AsyncClient(transport=httpx.MockTransport(remote))
    try:
        yield remote
    finally:
        await ctx.http.aclose()
        ctx.http = original


async def _endless() -> AsyncIterator[bytes]:
    yield b"\xff\xd8\xff" + b"\0" * 1021
    for _ in range(26 * 1024):  # 26 MiB in 1 KiB chunks, no Content-Length
        yield b"\0" * 1024


async def test_fetches_a_public_image(client: httpx.AsyncClient, make_tenant, upstream: Upstream) -> None:
    tenant = await make_tenant()
    response = await client.post(
        URL, headers=tenant.headers, json={"url": "https://images.example.com/photos/launch.png"}
    )
    media = assert_envelope(response, 200)["data"]
    assert (media["status"], media["source"], media["type"], media["content_type"]) == (
        "ready",
        "upload",
        "image",
        "image/png",
    )
    assert (media["filename"], media["width"], media["height"]) == ("launch.png", 800, 600)
    assert media["thumbnail_url"] is not None
    stored = await client.get(media["url"].removeprefix(BASE))
    assert stored.status_code == 200 and stored.content == files.png(800, 600)
    assert await storage_used(client, tenant.headers) == media["size"]
    listed = assert_envelope(await client.get(f"/api/v1/media/{media['id']}", headers=tenant.headers), 200)[
        "data"
    ]
    assert listed == media


async def test_public_redirect_and_video_and_filename(client, make_tenant, upstream: Upstream) -> None:
    tenant = await make_tenant()
    response = await client.post(
        URL, headers=tenant.headers, json={"url": "https://images.example.com/to-cdn", "filename": "mine.png"}
    )
    media = assert_envelope(response, 200)["data"]
    assert media["filename"] == "mine.png"
    assert upstream.seen[-2:] == ["images.example.com/to-cdn", "cdn.example.net/real.png"]
    response = await client.post(
        URL, headers=tenant.headers, json={"url": "https://cdn.example.net/clip.mp4"}
    )
    video = assert_envelope(response, 200)["data"]
    assert (video["type"], video["width"], video["height"], video["duration"]) == ("video", 640, 360, 4.0)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x.png",
        "https://10.0.0.5/x.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x.png",
        "https://[::ffff:127.0.0.1]/x.png",
        "https://2130706433/x.png",  # 127.0.0.1 as one decimal number
        "https://localhost/x.png",
        "https://internal.example.com/x.png",
        "https://rebind.example.com/x.png",
        "http://images.example.com/photos/launch.png",  # plain http
        "file:///etc/passwd",
        "ftp://images.example.com/x.png",
        "https://user:pw@images.example.com/photos/launch.png",
        "https://images.example.com/to-metadata",  # redirect to the metadata address
        "https://images.example.com/to-internal",  # redirect to a host with a private address
    ],
)
async def test_refuses_private_addresses(client, make_tenant, upstream: Upstream, url: str) -> None:
    tenant = await make_tenant()
    response = await client.post(URL, headers=tenant.headers, json={"url": url})
    assert_envelope(response, 400, "url_not_allowed")
    assert all(
        not seen.startswith(("127.", "10.", "169.254", "internal", "rebind", "[")) for seen in upstream.seen
    )
    assert await storage_used(client, tenant.headers) == 0


@pytest.mark.parametrize("path", ["huge.jpg", "endless.jpg"])
async def test_oversized_files_are_refused(client, make_tenant, upstream: Upstream, path: str) -> None:
    tenant = await make_tenant()
    response = await client.post(
        URL, headers=tenant.headers, json={"url": f"https://images.example.com/{path}"}
    )
    assert_envelope(response, 413, "payload_too_large")


async def test_other_failures(client: httpx.AsyncClient, make_tenant, upstream: Upstream) -> None:
    tenant = await make_tenant()
    missing = await client.post(
        URL, headers=tenant.headers, json={"url": "https://images.example.com/nope.png"}
    )
    assert assert_envelope(missing, 400, "fetch_failed")["error"]["details"]["status"] == 404
    unknown = await client.post(
        URL, headers=tenant.headers, json={"url": "https://no-such-host.example/x.png"}
    )
    assert_envelope(unknown, 400, "fetch_failed")
    html = await client.post(
        URL, headers=tenant.headers, json={"url": "https://images.example.com/page.html"}
    )
    assert_envelope(html, 415, "unsupported_media_type")
    for body in ({}, {"url": ""}, {"url": 5}, {"url": "https://x/" + "a" * 3000}):
        assert_envelope(await client.post(URL, headers=tenant.headers, json=body), 400, "validation_error")
    listed = assert_envelope(await client.get("/api/v1/media", headers=tenant.headers), 200)["data"]
    assert listed["media"] == []


async def test_a_storage_failure_leaves_no_bytes_behind(
    client: httpx.AsyncClient, make_tenant, upstream: Upstream, app, settings, monkeypatch
) -> None:
    tenant = await make_tenant()
    storage = app.state.ctx.storage
    put = storage.put

    async def put_failing_thumbnails(key: str, data: bytes, content_type: str):
        if key.endswith("/thumb.webp"):
            raise OSError("disk full")
        return await put(key, data, content_type)

    monkeypatch.setattr(storage, "put", put_failing_thumbnails)
    response = await client.post(
        URL, headers=tenant.headers, json={"url": "https://images.example.com/photos/launch.png"}
    )
    assert_envelope(response, 500, "internal_error")
    assert [p for p in settings.media_root.rglob("*") if p.is_file()] == []  # the original is gone too
    listed = assert_envelope(await client.get("/api/v1/media", headers=tenant.headers), 200)["data"]
    assert listed["media"] == []
    assert await storage_used(client, tenant.headers) == 0
