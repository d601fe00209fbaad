"""What the fake providers and their tests share: responses, scripted steps, host routing, a clock.

The fakes (fake_fal.py, fake_replicate.py, fake_ideogram.py, fake_gemini.py) keep what is their
provider's own: hosts, keys, the shapes of answers and errors. What is the same for every one of them
lives here.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from PIL import Image

from postengine.generation.providers.upstream import UpstreamOptions

CDN_IP = "93.184.216.34"  # example.com's public address: passes the SSRF check, never dialled
PRIVATE_IP = "10.0.0.7"

Step = Callable[..., httpx.Response]
Resolver = Callable[[str, int], Awaitable[list[str]]]


# --- bodies and responses --------------------------------------------------------------------------


def png(width: int, height: int, colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def json_response(
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"content-type": content_type, **(headers or {})}
    )


def html_response(status: int, title: str) -> httpx.Response:
    """A web page where JSON was expected (a proxy, a login wall)."""
    return httpx.Response(
        status,
        content=f"<!doctype html><title>{title}</title>".encode(),
        headers={"content-type": "text/html"},
    )


def bad_gateway() -> httpx.Response:
    """The load balancer's 502 page, not JSON."""
    return httpx.Response(502, content=b"<html><body><h1>502 Bad Gateway</h1></body></html>")


def retry_after(value: str | None) -> dict[str, str]:
    return {"retry-after": value} if value is not None else {}


# --- scripted steps --------------------------------------------------------------------------------


def answer(response: httpx.Response | Callable[[], httpx.Response]) -> Step:
    def step(*_: Any) -> httpx.Response:
        return response() if callable(response) else response

    return step


def raises(exc: Exception) -> Step:
    """A scripted step that fails at the transport (`httpx.ReadTimeout`, `httpx.ConnectError`)."""

    def step(*_: Any) -> httpx.Response:
        raise exc

    return step


# --- routing ---------------------------------------------------------------------------------------


class RoutedByHost:
    """A fake behind one `httpx.MockTransport` that routes requests by their `Host` header.

    `download_image` connects to the address the resolver gave (the URL's host is the IP) and keeps
    the original host name in `Host`, so routing by the URL's host would miss the CDN.
    """

    def routes(self) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
        raise NotImplementedError

    def record(self, request: httpx.Request) -> None:
        """Called with every request before it is routed."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.record(request)
        host = request.headers.get("host")
        route = self.routes().get(host)
        if route is None:
            raise AssertionError(f"request to an unexpected host {host!r}: {request.method} {request.url}")
        return route(request)


def check_cdn_request(request: httpx.Request, secret_header: str, message: str) -> None:
    """What every fake CDN insists on: a GET, to the address that was checked, with no credentials."""
    assert request.method == "GET"
    assert request.url.host == CDN_IP, "download_image connects to the address it checked"
    assert secret_header not in request.headers, message


# --- the injected clock and resolvers --------------------------------------------------------------


class Clock:
    """A fake `now` and `sleep`: sleeping records the delay and moves the clock on."""

    def __init__(self) -> None:
        self.time = 5000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.time += delay

    def options(self, **options: Any) -> UpstreamOptions:
        """`UpstreamOptions` that sleep and tell the time on this clock, with no jitter."""
        return UpstreamOptions(sleep=self.sleep, jitter=lambda: 0.0, now=self.now, **options)


def public_resolver_for(cdn_host: str) -> Resolver:
    """A resolver that puts the CDN at a public address, and fails for any other host."""

    async def public_resolver(host: str, port: int) -> list[str]:
        assert host == cdn_host, f"only result URLs are resolved by us, not {host}"
        return [CDN_IP]

    return public_resolver


async def private_resolver(host: str, port: int) -> list[str]:
    return [PRIVATE_IP]
