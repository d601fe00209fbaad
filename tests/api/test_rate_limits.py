"""API.md §3 over HTTP: headers on every authenticated response, 429s, order of checks."""

import httpx

from tests.api.test_conventions import assert_envelope

GEN = "/api/v1/ai/generate-image"
BAD_BODY = {"prompt": "", "model": "flux-schnell"}  # admitted, then rejected by validation: cheap


async def test_headers_on_success_and_on_later_errors(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    me = await client.get("/api/v1/me", headers=tenant.headers)
    assert me.headers["x-ratelimit-limit"] == "60"
    assert me.headers["x-ratelimit-remaining"] == "59"
    assert int(me.headers["x-ratelimit-reset"]) > 0
    assert '"api-1m";q=60;w=60' in me.headers["ratelimit-policy"]
    bad = await client.post(GEN, headers=tenant.headers, json=BAD_BODY)
    assert_envelope(bad, 400, "validation_error")
    assert bad.headers["x-ratelimit-limit"] == "50"
    assert bad.headers["x-ratelimit-remaining"] == "49"
    assert '"ai-5m";q=50;w=300' in bad.headers["ratelimit-policy"]


async def test_ai_limit_50_per_5_minutes(client: httpx.AsyncClient, make_tenant, clock) -> None:
    tenant = await make_tenant()
    for i in range(50):
        response = await client.post(GEN, headers=tenant.headers, json=BAD_BODY)
        assert response.status_code == 400, (i, response.text)
        clock.advance(1)
    blocked = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell"})
    body = assert_envelope(blocked, 429, "rate_limit_exceeded")
    error = body["error"]
    assert error["retry_after"] == 250  # the first request (t=0) leaves the 5-minute window at t=300; now t=50
    assert blocked.headers["retry-after"] == "250"
    assert error["details"] == {"scope": "ai", "limit": 50, "window_seconds": 300, "retry_after": 250}
    assert error["message"] == "AI rate limit exceeded: 50 requests per 5 minutes. Retry after 250 seconds."
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    me = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert me["quota"]["ai_credits"]["used"] == 0  # the rejected generation cost nothing
    # Other endpoints of the same key still work: only the ai scope is exhausted.
    assert (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200
    clock.advance(250)
    assert (await client.post(GEN, headers=tenant.headers, json=BAD_BODY)).status_code == 400


async def test_api_limit_60_per_minute(client: httpx.AsyncClient, make_tenant, clock) -> None:
    tenant = await make_tenant()
    other = await make_tenant()
    for _ in range(60):
        assert (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200
    blocked = await client.get("/api/v1/me", headers=tenant.headers)
    assert_envelope(blocked, 429, "rate_limit_exceeded")
    assert blocked.json()["error"]["details"]["scope"] == "api"
    assert blocked.headers["retry-after"] == "60"
    assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200  # per key
    clock.advance(60)
    assert (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200


async def test_401_uses_no_slot_and_rate_limit_precedes_validation(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    bad_key = {"Authorization": "Bearer pe_live_00000000000000000000000000000000"}
    for _ in range(3):
        assert (await client.post(GEN, headers=bad_key, content=b"{broken")).status_code == 401
    me = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert next(w for w in me["rate_limits"] if w["scope"] == "ai" and w["window_seconds"] == 300)["remaining"] == 50
