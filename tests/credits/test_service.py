"""Credit rules at the service level, against the real database: periods, packs, refunds, races."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from postengine.credits import repository
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.errors import InsufficientCredits
from postengine.kit.clock import to_datetime
from postengine.kit.ids import new_id
from postengine.orgs import service as orgs


async def new_org(db, plan: Plan, now) -> str:
    async with db.write() as session:
        return (await orgs.create_org(session, name="Credits Co", plan=plan, now=now)).id


async def state(db, org_id: str) -> tuple[int, int, int]:
    """(monthly allowance left, bonus, sum of the ledger)."""

    def read(conn):
        account = repository.get_account(conn, org_id)
        assert account is not None
        return account.allowance - account.allowance_used, account.bonus, repository.ledger_sum(conn, org_id)

    return await db.run_read(read)


async def test_period_rolls_over_and_allowance_does_not_carry(db, clock) -> None:
    now = to_datetime(clock.time())
    org_id = await new_org(db, Plan.STARTER, now)

    def spend_and_grant(conn) -> None:
        credits.reserve(conn, org_id=org_id, cost=15, generation_id=new_id("gen"), now=now)
        credits.grant_pack(conn, org_id=org_id, amount=7, now=now)

    await db.run(spend_and_grant)
    assert await state(db, org_id) == (35, 7, 42)
    later = now + timedelta(days=40)  # one full period later
    await db.run(lambda conn: credits.reserve(conn, org_id=org_id, cost=1, generation_id=new_id("gen"), now=later))
    monthly, bonus, total = await state(db, org_id)
    assert (monthly, bonus) == (49, 7)  # fresh allowance of 50, minus 1; bonus kept
    assert total == monthly + bonus
    account = await db.run_read(lambda conn: repository.get_account(conn, org_id))
    assert account is not None and account.period_start <= later < account.period_end


async def test_refund_returns_credits_to_their_buckets_once(db, clock) -> None:
    now = to_datetime(clock.time())
    org_id = await new_org(db, Plan.NONE, now)
    gen = new_id("gen")

    def grant_and_reserve(conn) -> credits.Reservation:
        credits.grant_pack(conn, org_id=org_id, amount=20, now=now)
        return credits.reserve(conn, org_id=org_id, cost=15, generation_id=gen, now=now)

    reservation = await db.run(grant_and_reserve)
    assert await state(db, org_id) == (0, 5, 5)

    def refund(conn) -> credits.Balance:
        return credits.refund(
            conn, org_id=org_id, generation_id=gen, allowance_part=reservation.allowance_part,
            bonus_part=reservation.bonus_part, period_start=reservation.period_start, now=now,
        )

    assert (await db.run(refund)).remaining == 20
    assert await state(db, org_id) == (0, 20, 20)
    with pytest.raises(IntegrityError):  # the ledger's unique index refuses a second refund
        await db.run(refund)
    assert await state(db, org_id) == (0, 20, 20)  # and the failed transaction changed nothing


async def test_refund_after_rollover_becomes_bonus(db, clock) -> None:
    now = to_datetime(clock.time())
    org_id = await new_org(db, Plan.STARTER, now)
    gen = new_id("gen")
    reservation = await db.run(lambda conn: credits.reserve(conn, org_id=org_id, cost=5, generation_id=gen, now=now))
    later = now + timedelta(days=32)
    await db.run(
        lambda conn: credits.refund(
            conn, org_id=org_id, generation_id=gen, allowance_part=reservation.allowance_part,
            bonus_part=reservation.bonus_part, period_start=reservation.period_start, now=later,
        )
    )
    monthly, bonus, total = await state(db, org_id)
    assert (monthly, bonus) == (50, 5)
    assert total == 55


async def test_concurrent_reservations_never_overdraw(db, clock) -> None:
    """40 reservations of 3 credits at once against 50 credits: exactly 16 succeed, never below zero."""
    now = to_datetime(clock.time())
    org_id = await new_org(db, Plan.STARTER, now)

    async def one() -> bool:
        try:
            await db.run(lambda conn: credits.reserve(conn, org_id=org_id, cost=3, generation_id=new_id("gen"), now=now))
            return True
        except InsufficientCredits:
            return False

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert results.count(True) == 16
    assert await state(db, org_id) == (2, 0, 2)


async def test_insufficient_reports_the_balance(db, clock) -> None:
    now = to_datetime(clock.time())
    org_id = await new_org(db, Plan.NONE, now)
    with pytest.raises(InsufficientCredits) as caught:
        await db.run(lambda conn: credits.reserve(conn, org_id=org_id, cost=1, generation_id=new_id("gen"), now=now))
    assert caught.value.fields == {"credits_remaining": 0, "credits_required": 1}


async def test_periods_keep_the_anniversary_day(db) -> None:
    from datetime import UTC, datetime

    created = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    org_id = await new_org(db, Plan.STARTER, created)
    for now, expected_start in [
        (datetime(2026, 2, 28, 13, 0, tzinfo=UTC), datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
        (datetime(2026, 4, 1, 0, 0, tzinfo=UTC), datetime(2026, 3, 31, 12, 0, tzinfo=UTC)),  # not Mar 28
    ]:
        await db.run(lambda conn, now=now: credits.reserve(conn, org_id=org_id, cost=1, generation_id=new_id("gen"), now=now))
        account = await db.run_read(lambda conn: repository.get_account(conn, org_id))
        assert account is not None and account.period_start == expected_start
    monthly, bonus, total = await state(db, org_id)
    assert (monthly, bonus, total) == (49, 0, 49)
