"""Every SQL statement that touches credit balances and the ledger."""

from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postengine.models import CreditAccount, CreditLedgerEntry


async def get_account(session: AsyncSession, org_id: str, *, lock: bool = False) -> CreditAccount | None:
    stmt = select(CreditAccount).where(CreditAccount.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()  # row lock on PostgreSQL; SQLite writers are serialised anyway
    result = await session.execute(stmt.execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def set_account(
    session: AsyncSession,
    account: CreditAccount,
    *,
    allowance_used: int,
    bonus: int,
) -> bool:
    """Write new bucket values only if the row still holds the values we read: a guard behind the row
    lock, so that no interleaving we did not foresee can overdraw a balance."""
    result = await session.execute(
        update(CreditAccount)
        .where(
            CreditAccount.org_id == account.org_id,
            CreditAccount.allowance_used == account.allowance_used,
            CreditAccount.bonus == account.bonus,
            CreditAccount.period_start == account.period_start,
        )
        .values(allowance_used=allowance_used, bonus=bonus)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def roll_period(
    session: AsyncSession,
    account: CreditAccount,
    *,
    period_start: datetime,
    period_end: datetime,
    allowance: int,
) -> bool:
    result = await session.execute(
        update(CreditAccount)
        .where(CreditAccount.org_id == account.org_id, CreditAccount.period_end == account.period_end)
        .values(period_start=period_start, period_end=period_end, allowance=allowance, allowance_used=0)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def add_ledger(
    session: AsyncSession,
    *,
    org_id: str,
    kind: str,
    allowance_delta: int,
    bonus_delta: int,
    at: datetime,
    generation_id: str | None = None,
    note: str | None = None,
) -> None:
    await session.execute(
        insert(CreditLedgerEntry).values(
            org_id=org_id,
            kind=kind,
            amount=allowance_delta + bonus_delta,
            allowance_delta=allowance_delta,
            bonus_delta=bonus_delta,
            generation_id=generation_id,
            note=note,
            created_at=at,
        )
    )


async def ledger(session: AsyncSession, org_id: str, limit: int = 50) -> list[CreditLedgerEntry]:
    result = await session.execute(
        select(CreditLedgerEntry)
        .where(CreditLedgerEntry.org_id == org_id)
        .order_by(CreditLedgerEntry.id.desc())
        .limit(limit)
    )
    return list(result.scalars())


async def ledger_sum(session: AsyncSession, org_id: str) -> int:
    result = await session.execute(
        select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(CreditLedgerEntry.org_id == org_id)
    )
    return int(result.scalar_one())
