"""API.md §3 over HTTP with `PE_REDIS_URL` set: the same headers and 429s as the in-process store,
limits shared by two servers, and the outage policy when Redis is unreachable."""

import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from postengine.app import create_app
from postengine.config import Settings
from postengine.kit.clock import FakeClock
from tests.api.test_conventions import assert_envelope

GEN = "/api/v1/ai/generate-image"
BAD_BODY = {"prompt": "", "model": "flux-schnell"}  # admitted, then rejected by validation: cheap
ServerFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def server(settings: Settings, clock: FakeClock) -> ServerFactory:
    """`server(**settings)`: an app (its own lifespan, rate-limit store and Redis client) and a client."""

    @asynccontextmanager
    async def serve(**changes: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=changes), clock=clock, background=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http

    return serve


def _comparable(headers: httpx.Headers) -> dict[str, str]:
    """The rate-limit headers less their clock readings (`X-RateLimit-Reset`, the `t=` of `RateLimit`)."""
    return {
        "limit": headers["x-ratelimit-limit"],
        "remaining": headers["x-ratelimit-remaining"],
        "policy": headers["ratelimit-policy"],
        "current": re.sub(r";t=\d+", "", headers["ratelimit"]),
    }


async def test_same_headers_as_the_memory_store_and_limits_shared_by_two_servers(
    server: ServerFactory, make_tenant, redis_url: str, redis_prefix: str
) -> None:
    tenant = await make_tenant()
    other = await make_tenant()  # the memory-store twin runs the same requests on its own key
    shared = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    async with server(**shared) as a, server(**shared) as b, server() as memory:
        seen: list[dict[str, str]] = []
        twin: list[dict[str, str]] = []
        for http, path in ((a, "/api/v1/me"), (b, GEN), (a, GEN)):
            method = http.get if path.endswith("/me") else http.post
            kwargs = {} if path.endswith("/me") else {"json": BAD_BODY}
            seen.append(_comparable((await method(path, headers=tenant.headers, **kwargs)).headers))
            mem_method = memory.get if path.endswith("/me") else memory.post
            twin.append(_comparable((await mem_method(path, headers=other.headers, **kwargs)).headers))
        assert seen == twin
        assert [h["remaining"] for h in seen] == ["59", "49", "48"]  # b and a count in one Redis log

        for i in range(48):  # the two servers share one limit: 50 AI requests per 5 minutes
            response = await (a if i % 2 else b).post(GEN, headers=tenant.headers, json=BAD_BODY)
            assert response.status_code == 400, (i, response.text)
        assert response.headers["x-ratelimit-remaining"] == "0"
        blocked = await b.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell"})
        error = assert_envelope(blocked, 429, "rate_limit_exceeded")["error"]
        assert error["details"]["scope"] == "ai" and error["details"]["limit"] == 50
        assert error["details"]["window_seconds"] == 300
        assert 1 <= error["retry_after"] <= 300 and blocked.headers["retry-after"] == str(error["retry_after"])
        assert blocked.headers["x-ratelimit-remaining"] == "0"

        me = assert_envelope(await a.get("/api/v1/me", headers=tenant.headers), 200)["data"]
        ai_5m = next(w for w in me["rate_limits"] if w["scope"] == "ai" and w["window_seconds"] == 300)
        assert ai_5m["remaining"] == 0
        assert me["quota"]["ai_credits"]["used"] == 0  # the refused generation cost nothing


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


async def test_redis_down_refuses_ai_and_posts_and_keeps_other_limits_per_process(
    server: ServerFactory, make_tenant, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant()
    with caplog.at_level(logging.WARNING, logger="postengine.ratelimit"):
        async with server(redis_url=f"redis://127.0.0.1:{_closed_port()}/0", redis_prefix=redis_prefix) as http:
            me = await http.get("/api/v1/me", headers=tenant.headers)  # start-up did not fail either
            assert_envelope(me, 200)
            assert me.headers["x-ratelimit-remaining"] == "59"

            for path, body, scope in ((GEN, {"prompt": "a cat", "model": "flux-schnell"}, "ai"), ("/api/v1/posts", {}, "posts")):
                refused = await http.post(path, headers=tenant.headers, json=body)
                error = assert_envelope(refused, 503, "rate_limit_unavailable")["error"]
                assert error["retryable"] is True
                assert error["retry_after"] == 5 and refused.headers["retry-after"] == "5"
                assert error["details"] == {"scope": scope, "retry_after": 5}
                assert "unreachable" in error["message"] and "redis://" not in error["message"]

            data = assert_envelope(await http.get("/api/v1/me", headers=tenant.headers), 200)["data"]
            assert data["quota"]["ai_credits"]["used"] == 0
            for _ in range(58):  # this process still enforces 60 per minute on its own
                assert (await http.get("/api/v1/me", headers=tenant.headers)).status_code == 200
            assert_envelope(await http.get("/api/v1/me", headers=tenant.headers), 429, "rate_limit_exceeded")
    outage = [r for r in caplog.records if r.name == "postengine.ratelimit" and "unavailable" in r.getMessage()]
    assert len(outage) == 1  # one warning for the whole outage, not one per request
