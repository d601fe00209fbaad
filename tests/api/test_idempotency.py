"""`Idempotency-Key` on POST /ai/generate-image, POST /posts and POST /media/upload (issue 6).

A retry with the key gets the first response byte for byte and is never run or charged again; a
different body is a 422, a retry while the first still runs a 409; failures store nothing; keys are
per organisation and last 24 hours. Runs on SQLite and PostgreSQL (the conftest parametrisation).
"""

import asyncio
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest
from PIL import Image
from sqlalchemy import func, select

from postengine.app import create_app
from postengine.generation.models import ImageModel
from postengine.generation.providers import ImageRequest, ProviderError
from postengine.kit.clock import to_datetime
from postengine.models import CreditLedgerEntry, Generation, IdempotencyKey, Media, Post
from postengine.ratelimit.rules import RateLimitScope, windows_for
from tests.api.helpers import ScriptedProvider, client_with
from tests.api.test_conventions import assert_envelope
from tests.posts.helpers import add_account

GEN = "/api/v1/ai/generate-image"
POSTS = "/api/v1/posts"
UPLOAD = "/api/v1/media/upload"
PROMPT = {"prompt": "a lighthouse at dawn", "model": "gemini-3-pro", "aspect_ratio": "1:1"}


class GatedProvider:
    """Returns an image once `release` is set; `started` tells the test the provider was reached."""

    name = "gated"

    def __init__(self, expect: int = 1) -> None:
        self.started = asyncio.Event()  # set once `expect` calls have arrived
        self.release = asyncio.Event()
        self.expect = expect
        self.calls = 0

    async def generate(self, request: ImageRequest) -> Image.Image:
        self.calls += 1
        if self.calls >= self.expect:
            self.started.set()
        await self.release.wait()
        return Image.new("RGB", (request.width, request.height), (10, 120, 200))


async def count(db, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    async with db.read() as session:
        return int((await session.execute(query)).scalar_one())


def keyed(tenant, key: str) -> dict[str, str]:
    return {**tenant.headers, "Idempotency-Key": key}


async def test_generation_replay_is_byte_for_byte_and_charges_once(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    provider = ScriptedProvider()
    async with client_with(settings, clock, provider) as client:
        first = await client.post(GEN, headers=keyed(tenant, "gen-1"), json=PROMPT)
        data = assert_envelope(first, 200)["data"]
        assert "idempotent-replayed" not in first.headers
        # The same body, written differently (key order, spacing), is the same request.
        again = await client.post(
            GEN,
            headers={**keyed(tenant, "gen-1"), "Content-Type": "application/json"},
            content=b'{ "aspect_ratio": "1:1",  "model": "gemini-3-pro", "prompt": "a lighthouse at dawn" }',
        )
        me = (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]
    assert again.status_code == 200
    assert again.content == first.content  # the first body, request id and timestamp included
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]  # this request's own id
    assert "x-ratelimit-remaining" in again.headers
    assert len(provider.calls) == 1
    assert data["credits_remaining"] == 495
    assert me["quota"]["ai_credits"]["remaining"] == 495
    assert await count(db, Generation, org_id=tenant.org_id) == 1
    assert await count(db, Media, org_id=tenant.org_id) == 1
    assert await count(db, CreditLedgerEntry, org_id=tenant.org_id, kind="generation") == 1


async def test_same_key_different_body_or_endpoint_is_422(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    async with client_with(settings, clock, ScriptedProvider()) as client:
        assert_envelope(await client.post(GEN, headers=keyed(tenant, "k"), json=PROMPT), 200)
        other = await client.post(GEN, headers=keyed(tenant, "k"), json={**PROMPT, "prompt": "a different one"})
        body = assert_envelope(other, 422, "idempotency_key_mismatch")
        assert body["error"]["details"]["endpoint"] == f"POST {GEN}"
        elsewhere = await client.post(
            UPLOAD, headers=keyed(tenant, "k"), json={"filename": "a.png", "content_type": "image/png", "size": 10}
        )
        assert_envelope(elsewhere, 422, "idempotency_key_mismatch")
    assert await count(db, Generation, org_id=tenant.org_id) == 1
    assert await count(db, Media, org_id=tenant.org_id) == 1


async def test_keys_belong_to_one_organization(settings, clock, make_tenant, db) -> None:
    first_org, second_org = await make_tenant(name="A"), await make_tenant(name="B")
    async with client_with(settings, clock, ScriptedProvider()) as client:
        a = assert_envelope(await client.post(GEN, headers=keyed(first_org, "shared"), json=PROMPT), 200)
        b = assert_envelope(await client.post(GEN, headers=keyed(second_org, "shared"), json=PROMPT), 200)
    assert a["data"]["media_id"] != b["data"]["media_id"]  # B ran its own generation: A's is not visible
    assert await count(db, Generation, org_id=second_org.org_id) == 1


async def test_another_key_of_the_same_organization_replays(settings, clock, make_tenant, db) -> None:
    from postengine.auth import keys as key_service
    from tests.conftest import SECRET

    tenant = await make_tenant()
    async with db.write() as session:
        _, second_secret = await key_service.create_key(
            session, secret_key=SECRET.encode(), org_id=tenant.org_id, name="second",
            scopes=frozenset(key_service.Scope), now=to_datetime(clock.time()),
        )
    async with client_with(settings, clock, ScriptedProvider()) as client:
        first = await client.post(GEN, headers=keyed(tenant, "org-wide"), json=PROMPT)
        second = await client.post(
            GEN, headers={"Authorization": f"Bearer {second_secret}", "Idempotency-Key": "org-wide"}, json=PROMPT
        )
    assert second.content == first.content and second.headers["idempotent-replayed"] == "true"


async def test_duplicate_while_running_is_409_then_replays(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    provider = GatedProvider()
    async with client_with(settings, clock, provider) as client:
        first = asyncio.create_task(client.post(GEN, headers=keyed(tenant, "slow"), json=PROMPT))
        await asyncio.wait_for(provider.started.wait(), 10)
        duplicate = await client.post(GEN, headers=keyed(tenant, "slow"), json=PROMPT)
        body = assert_envelope(duplicate, 409, "idempotency_in_progress")
        assert 1 <= int(duplicate.headers["retry-after"]) <= 2
        assert body["error"]["retry_after"] == int(duplicate.headers["retry-after"])
        # A different body is still a mismatch, not "in progress".
        assert_envelope(
            await client.post(GEN, headers=keyed(tenant, "slow"), json={**PROMPT, "model": "flux-schnell"}), 422,
            "idempotency_key_mismatch",
        )
        provider.release.set()
        done = await asyncio.wait_for(first, 30)
        replay = await client.post(GEN, headers=keyed(tenant, "slow"), json=PROMPT)
    assert_envelope(done, 200)
    assert replay.content == done.content
    assert provider.calls == 1
    assert await count(db, Generation, org_id=tenant.org_id) == 1


async def test_a_client_that_goes_away_frees_its_key(settings, clock, make_tenant, db) -> None:
    """Cancelled mid-generation: refunded, nothing stored, the lock let go, so the retry runs at once."""
    tenant = await make_tenant()
    provider = GatedProvider()
    async with client_with(settings, clock, provider) as client:
        first = asyncio.create_task(client.post(GEN, headers=keyed(tenant, "gone"), json=PROMPT))
        await asyncio.wait_for(provider.started.wait(), 10)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        provider.release.set()
        retry = await client.post(GEN, headers=keyed(tenant, "gone"), json=PROMPT)
    assert assert_envelope(retry, 200)["data"]["credits_remaining"] == 495
    assert "idempotent-replayed" not in retry.headers
    assert await count(db, Generation, org_id=tenant.org_id, status="failed") == 1
    assert await count(db, CreditLedgerEntry, org_id=tenant.org_id, kind="refund") == 1


async def test_concurrent_duplicates_run_once(settings, clock, make_tenant, db) -> None:
    """Twelve identical requests at once: one generation, one charge; every other answer is a 409 or,
    once the first has finished, its replay."""
    tenant = await make_tenant()
    provider = ScriptedProvider()
    async with client_with(settings, clock, provider) as client:
        responses = await asyncio.gather(
            *(client.post(GEN, headers=keyed(tenant, "burst"), json=PROMPT) for _ in range(12))
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, statuses
    successes = [r for r in responses if r.status_code == 200]
    assert len({r.content for r in successes}) == 1  # every 200 is the same response
    assert len(provider.calls) == 1
    assert await count(db, Generation, org_id=tenant.org_id) == 1
    assert await count(db, CreditLedgerEntry, org_id=tenant.org_id, kind="generation") == 1


async def test_a_failure_stores_nothing_and_the_retry_runs(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    provider = ScriptedProvider(ProviderError("upstream 500"))
    async with client_with(settings, clock, provider) as client:
        failed = await client.post(GEN, headers=keyed(tenant, "retry-me"), json=PROMPT)
        assert_envelope(failed, 500, "generation_failed")
        provider.error = None
        retried = await client.post(GEN, headers=keyed(tenant, "retry-me"), json=PROMPT)
        assert "idempotent-replayed" not in retried.headers
        # A 400 stores nothing either: fixing the body and retrying with the same key runs it.
        bad = await client.post(GEN, headers=keyed(tenant, "fix-me"), json={**PROMPT, "aspect_ratio": "7:3"})
        assert_envelope(bad, 400, "validation_error")
        fixed = await client.post(GEN, headers=keyed(tenant, "fix-me"), json=PROMPT)
    assert assert_envelope(retried, 200)["data"]["credits_remaining"] == 495
    assert_envelope(fixed, 200)
    assert len(provider.calls) == 3
    assert await count(db, IdempotencyKey, org_id=tenant.org_id) == 2  # the two successes


async def test_response_is_stored_with_the_result(settings, clock, make_tenant, db, monkeypatch) -> None:
    """A fault after the generation committed (here: in the cache invalidation that follows) answers a
    500, but the response was committed with the media row: the retry replays it, nothing runs twice."""
    tenant = await make_tenant()
    provider = ScriptedProvider()
    async with client_with(settings, clock, provider) as client:
        from postengine.generation import service as generation_service

        real = generation_service.listcache.invalidate
        calls = {"n": 0}

        def broken(*args, **kwargs):
            calls["n"] += 1
            raise RuntimeError("the process dies here")

        monkeypatch.setattr(generation_service.listcache, "invalidate", broken)
        crashed = await client.post(GEN, headers=keyed(tenant, "atomic"), json=PROMPT)
        assert_envelope(crashed, 500, "internal_error")
        monkeypatch.setattr(generation_service.listcache, "invalidate", real)
        retry = await client.post(GEN, headers=keyed(tenant, "atomic"), json=PROMPT)
    assert calls["n"] == 1
    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert len(provider.calls) == 1
    assert await count(db, Generation, org_id=tenant.org_id, status="completed") == 1
    assert await count(db, CreditLedgerEntry, org_id=tenant.org_id, kind="generation") == 1


async def test_keys_expire_after_24_hours(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    provider = ScriptedProvider()
    async with client_with(settings, clock, provider) as client:
        first = assert_envelope(await client.post(GEN, headers=keyed(tenant, "day"), json=PROMPT), 200)
        clock.advance(24 * 3600 - 1)
        replay = await client.post(GEN, headers=keyed(tenant, "day"), json=PROMPT)
        assert replay.headers.get("idempotent-replayed") == "true"
        clock.advance(1)
        # Expired: the key is free again, even for another body.
        fresh = await client.post(GEN, headers=keyed(tenant, "day"), json={**PROMPT, "prompt": "new"})
    assert assert_envelope(fresh, 200)["data"]["media_id"] != first["data"]["media_id"]
    assert len(provider.calls) == 2


async def test_sweeper_deletes_expired_keys(app, client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    from postengine.idempotency import service as idempotency

    tenant = await make_tenant()
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    assert_envelope(await client.post(UPLOAD, headers=keyed(tenant, "old"), json=body), 201)
    clock.advance(3600)
    assert_envelope(await client.post(UPLOAD, headers=keyed(tenant, "new"), json=body), 201)
    clock.advance(23 * 3600)
    assert await idempotency.sweep_expired(app.state.ctx) >= 1  # other tests' keys may expire too
    async with db.read() as session:
        keys = (await session.execute(select(IdempotencyKey.key).where(IdempotencyKey.org_id == tenant.org_id))).all()
    assert [k for (k,) in keys] == ["new"]


@asynccontextmanager
async def app_and_client(settings, clock, provider):
    providers = {model: [provider] for model in ImageModel}
    app = create_app(settings, clock=clock, providers=providers, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


async def test_a_lock_left_by_a_dead_holder_expires(settings, clock, make_tenant, db) -> None:
    """A holder that never lets go (it hung, or died holding a Redis lock) blocks its key with 409s
    until the lock expires, a minute after the generation deadline; then the key runs."""
    from postengine.idempotency import service as idempotency

    tenant = await make_tenant()
    fingerprint = idempotency.fingerprint_of(f"POST {GEN}", orjson.dumps(PROMPT))
    provider = ScriptedProvider()
    async with app_and_client(settings, clock, provider) as (app, client):
        name = idempotency.lock_name(tenant.org_id, "orphan")
        seconds = idempotency.lock_seconds(settings)
        assert await app.state.ctx.locks.acquire(name, "dead", (fingerprint, f"POST {GEN}"), seconds) is None
        assert_envelope(await client.post(GEN, headers=keyed(tenant, "orphan"), json=PROMPT), 409, "idempotency_in_progress")
        other = await client.post(GEN, headers=keyed(tenant, "orphan"), json={**PROMPT, "prompt": "x"})
        assert assert_envelope(other, 422, "idempotency_key_mismatch")["error"]["details"]["endpoint"] == f"POST {GEN}"
        clock.advance(seconds + 1)
        taken = await client.post(GEN, headers=keyed(tenant, "orphan"), json=PROMPT)
        await app.state.ctx.locks.release(name, "dead")  # the old holder's late release frees nothing
        replay = await client.post(GEN, headers=keyed(tenant, "orphan"), json=PROMPT)
    assert_envelope(taken, 200)
    assert replay.content == taken.content
    assert len(provider.calls) == 1


class NoLocks:
    """Locks that never hold (as when Redis is unreachable and they fail open, or a lock expired)."""

    async def acquire(self, name, token, request, seconds):
        return None

    async def release(self, name, token):
        return None


async def test_without_locks_the_database_still_lets_one_attempt_commit(settings, clock, make_tenant, db) -> None:
    """Two attempts with one key both run; the one that commits second is rolled back and refunded,
    and answers with the first one's response: one charge, one media item."""
    tenant = await make_tenant()
    provider = GatedProvider(expect=2)
    async with app_and_client(settings, clock, provider) as (app, client):
        app.state.ctx.locks = NoLocks()
        first = asyncio.create_task(client.post(GEN, headers=keyed(tenant, "both"), json=PROMPT))
        second = asyncio.create_task(client.post(GEN, headers=keyed(tenant, "both"), json=PROMPT))
        await asyncio.wait_for(provider.started.wait(), 10)  # both are at the provider
        provider.release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    assert await count(db, Generation, org_id=tenant.org_id, status="completed") == 1
    assert await count(db, Generation, org_id=tenant.org_id, status="failed") == 1
    assert await count(db, Media, org_id=tenant.org_id) == 1
    assert await count(db, CreditLedgerEntry, org_id=tenant.org_id, kind="refund") == 1
    me = (await _me(settings, clock, tenant))["quota"]["ai_credits"]["remaining"]
    assert me == 495


async def _me(settings, clock, tenant) -> dict:
    async with client_with(settings, clock, ScriptedProvider()) as client:
        return (await client.get("/api/v1/me", headers=tenant.headers)).json()["data"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("Idempotency-Key", "")], "1 to 255"),
        ([("Idempotency-Key", "x" * 256)], "1 to 255"),
        ([("Idempotency-Key", "caf\u00e9".encode())], "printable ASCII"),
        ([("Idempotency-Key", "tab\there")], "printable ASCII"),
        ([("Idempotency-Key", "a"), ("Idempotency-Key", "b")], "one Idempotency-Key"),
    ],
)
async def test_bad_keys_are_400(client: httpx.AsyncClient, make_tenant, db, headers, message: str) -> None:
    tenant = await make_tenant()
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    response = await client.post(UPLOAD, headers=[*tenant.headers.items(), *headers], json=body)
    error = assert_envelope(response, 400, "validation_error")["error"]
    assert error["details"]["errors"][0]["field"] == "Idempotency-Key"
    assert message in error["message"]
    assert await count(db, Media, org_id=tenant.org_id) == 0


async def test_longest_key_is_accepted(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    first = await client.post(UPLOAD, headers=keyed(tenant, "k" * 255), json=body)
    again = await client.post(UPLOAD, headers=keyed(tenant, "k" * 255), json=body)
    assert_envelope(first, 201)
    assert again.content == first.content


async def test_posts_and_uploads_replay(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id, "x")
    post = {"content": "Launch", "account_ids": [account], "draft": True}
    created = await client.post(POSTS, headers=keyed(tenant, "post-1"), json=post)
    replayed = await client.post(POSTS, headers=keyed(tenant, "post-1"), json=post)
    assert assert_envelope(created, 201)["data"]["status"] == "draft"
    assert replayed.status_code == 201 and replayed.content == created.content
    assert await count(db, Post, org_id=tenant.org_id) == 1

    upload = {"filename": "a.png", "content_type": "image/png", "size": 10}
    ticket = await client.post(UPLOAD, headers=keyed(tenant, "up-1"), json=upload)
    again = await client.post(UPLOAD, headers=keyed(tenant, "up-1"), json=upload)
    assert assert_envelope(ticket, 201)["data"]["upload_url"]
    assert again.status_code == 201 and again.content == ticket.content
    assert await count(db, Media, org_id=tenant.org_id) == 1
    # Without a key nothing is deduplicated.
    assert_envelope(await client.post(UPLOAD, headers=tenant.headers, json=upload), 201)
    assert await count(db, Media, org_id=tenant.org_id) == 2


async def test_rate_limits_run_before_replays(client: httpx.AsyncClient, make_tenant, db) -> None:
    """Replays use rate-limit slots like any request; a 429 is not stored, and the key still replays
    once the window has room."""
    tenant = await make_tenant()
    post = {"content": "once", "draft": True}
    limit = min(w.limit for w in windows_for(RateLimitScope.API, RateLimitScope.POSTS) if w.seconds == 60)
    answers = [await client.post(POSTS, headers=keyed(tenant, "rl"), json=post) for _ in range(limit + 1)]
    assert [a.status_code for a in answers[:limit]] == [201] * limit
    assert_envelope(answers[limit], 429, "rate_limit_exceeded")
    remaining = [int(a.headers["x-ratelimit-remaining"]) for a in answers[:limit]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    assert await count(db, Post, org_id=tenant.org_id) == 1


async def test_a_bad_api_key_claims_nothing(client: httpx.AsyncClient, make_tenant, db) -> None:
    tenant = await make_tenant()
    body = {"filename": "a.png", "content_type": "image/png", "size": 10}
    bad = await client.post(UPLOAD, headers={"Authorization": "Bearer pe_live_" + "0" * 32, "Idempotency-Key": "z"}, json=body)
    assert_envelope(bad, 401, "unauthorized")
    assert_envelope(await client.post(UPLOAD, headers=keyed(tenant, "z"), json=body), 201)


async def test_openapi_documents_the_header(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in (GEN, POSTS, UPLOAD):
        operation = schema["paths"][path]["post"]
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
        assert {"409", "422"} <= set(operation["responses"]), path
