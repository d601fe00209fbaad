"""Every SQL statement that touches credit balances and the ledger.

Synchronous Core statements on a `Connection`, run inside one transaction by `Database.run`: this
is the hot path of every generation, where per-statement round trips through an async driver would
cost more than the SQL itself.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from postengine.models import CreditAccount, CreditLedgerEntry, Organization


@dataclass(frozen=True, slots=True)
class AccountRow:
    org_id: str
    plan: str
    period_start: datetime
    period_end: datetime
    allowance: int
    allowance_used: int
    bonus: int
    anchor: datetime  # billing periods start on this date's day of the month (the organisation's creation)


ACCOUNT_COLUMNS = (
    CreditAccount.org_id,
    Organization.plan,
    CreditAccount.period_start,
    CreditAccount.period_end,
    CreditAccount.allowance,
    CreditAccount.allowance_used,
    CreditAccount.bonus,
    Organization.created_at,
)


# Hot-path statements are built once, with bind parameters: building a statement per call costs
# more than running it.
_SELECT_ACCOUNT = (
    select(*ACCOUNT_COLUMNS)
    .join(Organization, Organization.id == CreditAccount.org_id)
    .where(CreditAccount.org_id == bindparam("b_org_id"))
)
_SELECT_ACCOUNT_LOCKED = _SELECT_ACCOUNT.with_for_update(of=CreditAccount)
_SET_ACCOUNT = (
    update(CreditAccount)
    .where(
        CreditAccount.org_id == bindparam("b_org_id"),
        CreditAccount.allowance_used == bindparam("b_old_used"),
        CreditAccount.bonus == bindparam("b_old_bonus"),
        CreditAccount.period_start == bindparam("b_period_start"),
    )
    .values(allowance_used=bindparam("b_used"), bonus=bindparam("b_bonus"))
)
_INSERT_LEDGER = insert(CreditLedgerEntry)


def get_account(conn: Connection, org_id: str, *, lock: bool = False) -> AccountRow | None:
    """The account with its organisation's plan. `lock`: a row lock on PostgreSQL (SQLite writers
    are serialised by `BEGIN IMMEDIATE` anyway)."""
    row = conn.execute(_SELECT_ACCOUNT_LOCKED if lock else _SELECT_ACCOUNT, {"b_org_id": org_id}).first()
    return None if row is None else AccountRow(*row)


def insert_account(
    conn: Connection, *, org_id: str, period_start: datetime, period_end: datetime, allowance: int
) -> None:
    conn.execute(
        insert(CreditAccount).values(
            org_id=org_id,
            period_start=period_start,
            period_end=period_end,
            allowance=allowance,
            allowance_used=0,
            bonus=0,
        )
    )


def set_account(conn: Connection, account: AccountRow, *, allowance_used: int, bonus: int) -> bool:
    """Write new bucket values only if the row still holds the values we read: a guard behind the row
    lock, so that no interleaving we did not foresee can overdraw a balance."""
    result = conn.execute(
        _SET_ACCOUNT,
        {
            "b_org_id": account.org_id,
            "b_old_used": account.allowance_used,
            "b_old_bonus": account.bonus,
            "b_period_start": account.period_start,
            "b_used": allowance_used,
            "b_bonus": bonus,
        },
    )
    return result.rowcount == 1


def roll_period(
    conn: Connection, account: AccountRow, *, period_start: datetime, period_end: datetime, allowance: int
) -> bool:
    result = conn.execute(
        update(CreditAccount)
        .where(CreditAccount.org_id == account.org_id, CreditAccount.period_end == account.period_end)
        .values(period_start=period_start, period_end=period_end, allowance=allowance, allowance_used=0)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def add_ledger(
    conn: Connection,
    *,
    org_id: str,
    kind: str,
    allowance_delta: int,
    bonus_delta: int,
    at: datetime,
    generation_id: str | None = None,
    note: str | None = None,
) -> None:
    conn.execute(
        _INSERT_LEDGER,
        {
            "org_id": org_id,
            "kind": kind,
            "amount": allowance_delta + bonus_delta,
            "allowance_delta": allowance_delta,
            "bonus_delta": bonus_delta,
            "generation_id": generation_id,
            "note": note,
            "created_at": at,
        },
    )


def ledger(
    conn: Connection, org_id: str, limit: int = 50
) -> list[Row[tuple[int, str, int, int, int, str | None, str | None, datetime]]]:
    result = conn.execute(
        select(
            CreditLedgerEntry.id,
            CreditLedgerEntry.kind,
            CreditLedgerEntry.amount,
            CreditLedgerEntry.allowance_delta,
            CreditLedgerEntry.bonus_delta,
            CreditLedgerEntry.generation_id,
            CreditLedgerEntry.note,
            CreditLedgerEntry.created_at,
        )
        .where(CreditLedgerEntry.org_id == org_id)
        .order_by(CreditLedgerEntry.id.desc())
        .limit(limit)
    )
    return list(result.all())


def ledger_sum(conn: Connection, org_id: str) -> int:
    result = conn.execute(
        select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(CreditLedgerEntry.org_id == org_id)
    )
    return int(result.scalar_one())
