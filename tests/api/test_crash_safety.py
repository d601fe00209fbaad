"""Generations that never finish: deadlines, cancellation, and the sweeper for crashed processes."""

import asyncio
from datetime import timedelta

import httpx
from PIL import Image
from sqlalchemy import select

from postengine.credits import service as credits
from postengine.generation import repository as generation_repo
from postengine.generation import service as generation_service
from postengine.generation.providers import ImageRequest
from postengine.kit.clock import to_datetime
from postengine.kit.ids import new_id
from postengine.models import CreditAccount, CreditLedgerEntry, Generation
from tests.api.helpers import client_with
from tests.api.test_conventions import assert_envelope

GEN = "/api/v1/ai/generate-image"


class HangingProvider:
    name = "hanging"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def generate(self, request: ImageRequest) -> Image.Image:
        self.started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def leave_reservation(db, tenant, *, cost: int, model: str, at) -> str:
    """What a process that died right after reserving leaves behind: a `reserved` generation."""
    gen_id = new_id("gen")

    def half_done(conn) -> None:
        reservation = credits.reserve(conn, org_id=tenant.org_id, cost=cost, generation_id=gen_id, now=at)
        generation_repo.insert_generation(
            conn, id=gen_id, org_id=tenant.org_id, api_key_id=tenant.key_id, model=model, aspect_ratio="1:1",
            prompt="x", status="reserved", credits=cost, allowance_part=reservation.allowance_part,
            bonus_part=reservation.bonus_part, period_start=reservation.period_start, created_at=at,
            deadline_at=at + timedelta(seconds=120),
        )

    await db.run(half_done)
    return gen_id


async def remaining(db, org_id: str) -> int:
    async with db.read() as session:
        account = await session.get(CreditAccount, org_id)
    assert account is not None
    return account.allowance - account.allowance_used + account.bonus


async def test_deadline_fails_and_refunds(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    settings.generation_deadline_seconds = 0.2
    async with client_with(settings, clock, HangingProvider()) as client:
        response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
    body = assert_envelope(response, 500, "generation_failed")
    assert body["error"]["credits_refunded"] == 5 and body["error"]["credits_remaining"] == 500
    assert await remaining(db, tenant.org_id) == 500


async def test_cancelled_request_is_refunded(settings, clock, make_tenant, db) -> None:
    tenant = await make_tenant()
    provider = HangingProvider()
    async with client_with(settings, clock, provider) as client:
        task = asyncio.create_task(
            client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
        )
        await asyncio.wait_for(provider.started.wait(), 10)
        assert await remaining(db, tenant.org_id) == 495  # reserved while the provider runs
        task.cancel()  # the client goes away
        await asyncio.gather(task, return_exceptions=True)
    assert await remaining(db, tenant.org_id) == 500
    async with db.read() as session:
        statuses = [g.status for g in (await session.execute(select(Generation).where(Generation.org_id == tenant.org_id))).scalars()]
    assert statuses == ["failed"]


async def test_sweeper_refunds_reservations_left_by_a_dead_process(app, client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    ctx = app.state.ctx
    gen_id = await leave_reservation(db, tenant, cost=15, model="nano-banana-pro", at=to_datetime(clock.time()))
    assert await remaining(db, tenant.org_id) == 485
    assert await generation_service.sweep_expired(ctx) == 0  # not past its deadline yet
    clock.advance(120 + 29)
    assert await generation_service.sweep_expired(ctx) == 0  # past it, but within the grace (30 s)
    clock.advance(2)
    assert await generation_service.sweep_expired(ctx) >= 1
    assert await remaining(db, tenant.org_id) == 500
    assert await generation_service.sweep_expired(ctx) == 0  # never refunded twice
    async with db.read() as session:
        refunds = (await session.execute(
            select(CreditLedgerEntry).where(CreditLedgerEntry.generation_id == gen_id, CreditLedgerEntry.kind == "refund")
        )).scalars().all()
        generation = await session.get(Generation, gen_id)
    assert len(refunds) == 1 and refunds[0].amount == 15
    assert generation is not None and generation.status == "failed"


async def test_failure_to_record_the_result_refunds_at_once(client: httpx.AsyncClient, make_tenant, db, settings, monkeypatch) -> None:
    from postengine.generation import repository

    tenant = await make_tenant()

    def broken_add_media(conn, **values) -> None:
        raise RuntimeError("disk full")  # stands in for any database error while recording

    monkeypatch.setattr(repository, "add_media", broken_add_media)
    response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
    body = assert_envelope(response, 500, "generation_failed")
    assert body["error"]["credits_refunded"] == 5
    assert await remaining(db, tenant.org_id) == 500
    async with db.read() as session:
        generation = (await session.execute(select(Generation).where(Generation.org_id == tenant.org_id))).scalar_one()
    assert generation.status == "failed"
    assert not list((settings.media_root / "media").glob("*/original.webp"))  # no orphaned bytes


class BuggyProvider:
    name = "buggy"

    async def generate(self, request: ImageRequest) -> Image.Image:
        raise RuntimeError("a bug, not an upstream failure")


async def test_a_bug_is_an_enveloped_500_and_still_refunds(settings, clock, make_tenant, db, caplog) -> None:
    tenant = await make_tenant()
    async with client_with(settings, clock, BuggyProvider()) as client:
        response = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "flux-schnell"})
    body = assert_envelope(response, 500, "internal_error")
    assert "RuntimeError" not in response.text and "Traceback" not in response.text  # nothing internal leaks
    assert await remaining(db, tenant.org_id) == 500
    assert any(body["meta"]["request_id"] == getattr(r, "request_id", None) for r in caplog.records)


async def test_startup_settles_what_a_dead_process_left(settings, clock, make_tenant, db) -> None:
    from postengine.app import create_app

    tenant = await make_tenant()
    await leave_reservation(db, tenant, cost=8, model="ideogram-v2", at=to_datetime(clock.time() - 3600))
    assert await remaining(db, tenant.org_id) == 492
    app = create_app(settings, clock=clock, background=True)
    async with app.router.lifespan_context(app):
        assert await remaining(db, tenant.org_id) == 500  # refunded before the first request
