"""API.md §2: keys, scopes, 401/403, GET /me."""

import httpx
import pytest

from postengine.auth import keys as key_service
from postengine.auth.authenticator import bump_epoch
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.kit.clock import to_datetime
from tests.api.test_conventions import assert_envelope
from tests.conftest import SECRET

GEN = "/api/v1/ai/generate-image"
BODY = {"prompt": "a lighthouse at dawn", "model": "flux-schnell"}


async def test_missing_key(client: httpx.AsyncClient) -> None:
    body = assert_envelope(await client.get("/api/v1/me"), 401, "unauthorized")
    assert body["error"]["message"] == "Missing API key. Send it as: Authorization: Bearer pe_live_…"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer pe_live_0123",  # malformed
        "Basic pe_live_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",  # wrong scheme
        "Bearer pe_live_ffffffffffffffffffffffffffffffff",  # unknown
        "Bearer pe_test_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
        "pe_live_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
    ],
)
async def test_invalid_keys_all_look_the_same(client: httpx.AsyncClient, header: str) -> None:
    body = assert_envelope(await client.get("/api/v1/me", headers={"Authorization": header}), 401, "unauthorized")
    assert body["error"]["message"] == "Invalid or expired API key"
    assert "x-ratelimit-limit" not in {k.lower() for k in (await client.get("/api/v1/me")).headers}


async def test_me(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    body = assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 200)
    data = body["data"]
    assert data["api_key"]["id"] == tenant.key_id
    assert data["api_key"]["key_prefix"] == tenant.secret[:12]
    assert tenant.secret not in str(body)
    assert data["scopes"] == ["read", "write", "ai"]
    assert data["organization"]["id"] == tenant.org_id
    assert data["organization"]["subscription_plan"] == "growth"
    assert data["organization"]["entitled"] is True
    assert data["quota"]["ai_credits"] == {"used": 0, "limit": 500, "bonus": 0, "remaining": 500}
    assert data["quota"]["storage_bytes"]["used"] == 0
    api = [w for w in data["rate_limits"] if w["scope"] == "api"]
    assert {(w["limit"], w["window_seconds"]) for w in api} == {(60, 60), (1000, 3600), (10000, 86400)}
    assert next(w for w in api if w["window_seconds"] == 60)["remaining"] == 59


async def test_scope_missing_is_403_and_uses_no_slot(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant(scopes=frozenset({Scope.READ}))
    body = assert_envelope(await client.post(GEN, json=BODY, headers=tenant.headers), 403, "insufficient_scope")
    assert body["error"]["details"]["required_scope"] == "ai"
    assert "ai scope" in body["error"]["message"]
    me = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    minute = next(w for w in me["rate_limits"] if w["scope"] == "api" and w["window_seconds"] == 60)
    assert minute["remaining"] == 59  # only the /me call itself was counted


async def test_revocation_is_immediate_despite_cache(
    client: httpx.AsyncClient, make_tenant, db, settings: Settings, clock
) -> None:
    tenant = await make_tenant()
    assert (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200  # now cached
    async with db.write() as session:
        await key_service.revoke_key(session, tenant.key_id, to_datetime(clock.time()))
    bump_epoch(settings)  # what the CLI does after every key change
    assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 401, "unauthorized")


async def test_expired_key_is_401(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    now = to_datetime(clock.time())
    async with db.write() as session:
        from datetime import timedelta

        _, secret = await key_service.create_key(
            session, secret_key=SECRET.encode(), org_id=tenant.org_id, name="short", scopes=frozenset(Scope),
            now=now, expires_at=now + timedelta(seconds=60),
        )
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    clock.advance(61)
    assert_envelope(await client.get("/api/v1/me", headers=headers), 401, "unauthorized")


async def test_at_most_ten_active_keys(make_tenant, db, clock) -> None:
    tenant = await make_tenant()  # one key already
    now = to_datetime(clock.time())
    async with db.write() as session:
        for i in range(9):
            await key_service.create_key(
                session, secret_key=SECRET.encode(), org_id=tenant.org_id, name=f"k{i}", scopes=frozenset(Scope), now=now
            )
    with pytest.raises(key_service.KeyLimitReached):
        async with db.write() as session:
            await key_service.create_key(
                session, secret_key=SECRET.encode(), org_id=tenant.org_id, name="eleventh", scopes=frozenset(Scope), now=now
            )
    async with db.write() as session:  # revoking one frees a place
        await key_service.revoke_key(session, tenant.key_id, now)
        await key_service.create_key(
            session, secret_key=SECRET.encode(), org_id=tenant.org_id, name="replacement", scopes=frozenset(Scope), now=now
        )


async def test_only_a_keyed_hash_is_stored(make_tenant, db) -> None:
    from sqlalchemy import select

    from postengine.models import ApiKey

    tenant = await make_tenant()
    async with db.read() as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == tenant.key_id))).scalar_one()
    assert tenant.secret not in (row.key_hash, row.key_prefix, row.name)
    assert row.key_hash == key_service.hash_key(SECRET.encode(), tenant.secret)
    assert row.key_hash != key_service.hash_key(b"another server secret", tenant.secret)


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, app, make_tenant, db) -> None:
    from postengine.models import ApiKey

    tenant = await make_tenant()
    await client.get("/api/v1/me", headers=tenant.headers)
    await app.state.ctx.authenticator.flush_last_used()
    async with db.read() as session:
        key = await session.get(ApiKey, tenant.key_id)
    assert key is not None and key.last_used_at is not None


async def test_me_quota_follows_generations_and_grants(
    client: httpx.AsyncClient, make_tenant, db, settings: Settings, clock
) -> None:
    from postengine.credits import service as credits

    tenant = await make_tenant()

    async def ai_credits() -> dict:
        return (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]["quota"]["ai_credits"]

    assert (await ai_credits())["remaining"] == 500  # now a cached snapshot
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
    assert response.status_code == 200
    assert await ai_credits() == {"used": 5, "limit": 500, "bonus": 0, "remaining": 495}
    # What `postengine credits grant` does, from another process:
    await db.run(lambda conn: credits.grant_pack(conn, org_id=tenant.org_id, amount=40, now=to_datetime(clock.time())))
    bump_epoch(settings)
    assert await ai_credits() == {"used": 5, "limit": 500, "bonus": 40, "remaining": 535}


async def test_me_without_a_plan_is_not_entitled(client: httpx.AsyncClient, make_tenant) -> None:
    from postengine.credits.plans import Plan

    tenant = await make_tenant(plan=Plan.NONE, bonus=12)
    data = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert data["organization"]["entitled"] is False
    assert data["organization"]["subscription_status"] == "none"
    assert data["quota"]["ai_credits"] == {"used": 0, "limit": 0, "bonus": 12, "remaining": 12}


async def test_me_shows_the_new_period_before_any_write(client: httpx.AsyncClient, make_tenant, clock) -> None:
    tenant = await make_tenant()
    assert (await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "ideogram-v2"})).status_code == 200
    before = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert before["quota"]["ai_credits"]["used"] == 8
    clock.advance(32 * 86400)  # past the end of the billing period: the allowance resets, unused credits lapse
    after = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert after["quota"]["ai_credits"] == {"used": 0, "limit": 500, "bonus": 0, "remaining": 500}
    assert after["organization"]["current_period_start"] == before["organization"]["current_period_end"]
