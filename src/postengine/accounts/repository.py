"""Every SQL statement of the accounts domain: synchronous Core, run through `Database.run`/`run_read`.

Each function that serves a request takes the caller's `org_id` and filters on it: another
organisation's account is simply not found. The functions without one (`get_any`, `set_active`,
`outbox`) are for the operator's command line, which has no organisation to be scoped to.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from postengine.models import Organization, PostDestination, SandboxOutboxEntry, SocialAccount

# The largest value of the `social_accounts.id` column (INTEGER on both databases): bigger numbers
# are never an account, and PostgreSQL would refuse them as a bind parameter instead of finding nothing.
MAX_ACCOUNT_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    org_id: str
    platform: str
    account_name: str
    display_name: str
    avatar_url: str | None
    is_active: bool
    is_sandbox: bool
    health_status: str
    health_message: str | None
    token_expires_at: datetime | None
    last_published_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    destination_id: str
    account_id: int
    platform: str
    platform_post_id: str
    content: str
    media: list[Any]
    settings: dict[str, Any]
    published_at: datetime


_COLUMNS = (
    SocialAccount.id,
    SocialAccount.org_id,
    SocialAccount.platform,
    SocialAccount.account_name,
    SocialAccount.display_name,
    SocialAccount.avatar_url,
    SocialAccount.is_active,
    SocialAccount.is_sandbox,
    SocialAccount.health_status,
    SocialAccount.health_message,
    SocialAccount.token_expires_at,
    SocialAccount.last_published_at,
    SocialAccount.created_at,
)
_SELECT = select(*_COLUMNS)
_LIST = _SELECT.where(SocialAccount.org_id == bindparam("b_org_id")).order_by(SocialAccount.id)
_GET = _SELECT.where(SocialAccount.org_id == bindparam("b_org_id"), SocialAccount.id == bindparam("b_id"))
_COUNT_ACTIVE = select(func.count()).where(
    SocialAccount.org_id == bindparam("b_org_id"), SocialAccount.is_active.is_(True)
)


def _row(values: Any) -> AccountRow:
    return AccountRow(*values)


def in_range(account_id: int) -> bool:
    return 1 <= account_id <= MAX_ACCOUNT_ID


def list_for_org(conn: Connection, org_id: str) -> list[AccountRow]:
    """An organisation's accounts, in the order they were connected."""
    return [_row(r) for r in conn.execute(_LIST, {"b_org_id": org_id})]


def get_for_org(conn: Connection, org_id: str, account_id: int) -> AccountRow | None:
    if not in_range(account_id):
        return None
    found = conn.execute(_GET, {"b_org_id": org_id, "b_id": account_id}).first()
    return None if found is None else _row(found)


def get_many_for_org(conn: Connection, org_id: str, account_ids: Iterable[int]) -> dict[int, AccountRow]:
    ids = sorted({i for i in account_ids if in_range(i)})
    if not ids:
        return {}
    result = conn.execute(_SELECT.where(SocialAccount.org_id == org_id, SocialAccount.id.in_(ids)))
    return {row.id: row for row in map(_row, result)}


def get_any(conn: Connection, account_id: int) -> AccountRow | None:
    if not in_range(account_id):
        return None
    found = conn.execute(_SELECT.where(SocialAccount.id == account_id)).first()
    return None if found is None else _row(found)


def count_active(conn: Connection, org_id: str) -> int:
    return int(conn.execute(_COUNT_ACTIVE, {"b_org_id": org_id}).scalar_one())


def lock_org(conn: Connection, org_id: str) -> str | None:
    """The organisation's plan, locking the organisation for the rest of the transaction, so that
    account changes of one organisation (the plan's limit is a count, checked then written) run one
    at a time: a row lock on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises all writers.
    None if there is no such organisation."""
    query = select(Organization.plan).where(Organization.id == org_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    plan: str | None = conn.execute(query).scalar_one_or_none()
    return plan


def find_by_name(conn: Connection, org_id: str, platform: str, account_name: str) -> AccountRow | None:
    """The account of that name on that platform, ignoring case (handles are case-insensitive)."""
    found = conn.execute(
        _SELECT.where(
            SocialAccount.org_id == org_id,
            SocialAccount.platform == platform,
            func.lower(SocialAccount.account_name) == account_name.lower(),
        ).limit(1)
    ).first()
    return None if found is None else _row(found)


def insert_account(conn: Connection, **values: Any) -> int:
    result = conn.execute(insert(SocialAccount).values(**values).returning(SocialAccount.id))
    return int(result.scalar_one())


def set_active(conn: Connection, account_id: int, active: bool) -> None:
    conn.execute(update(SocialAccount).where(SocialAccount.id == account_id).values(is_active=active))


def failures_since(conn: Connection, org_id: str, account_id: int, since: datetime) -> int:
    query = select(func.count()).where(
        PostDestination.account_id == account_id,
        PostDestination.org_id == org_id,
        PostDestination.status == "failed",
        PostDestination.updated_at >= since,
    )
    return int(conn.execute(query).scalar_one())


def last_published(conn: Connection, org_id: str, account_id: int) -> datetime | None:
    query = select(func.max(PostDestination.published_at)).where(
        PostDestination.account_id == account_id, PostDestination.org_id == org_id
    )
    value: datetime | None = conn.execute(query).scalar_one()
    return value


def outbox(conn: Connection, account_id: int, limit: int) -> list[OutboxRow]:
    query = (
        select(
            SandboxOutboxEntry.destination_id,
            SandboxOutboxEntry.account_id,
            SandboxOutboxEntry.platform,
            SandboxOutboxEntry.platform_post_id,
            SandboxOutboxEntry.content,
            SandboxOutboxEntry.media,
            SandboxOutboxEntry.settings,
            SandboxOutboxEntry.published_at,
        )
        .where(SandboxOutboxEntry.account_id == account_id)
        .order_by(SandboxOutboxEntry.published_at.desc(), SandboxOutboxEntry.destination_id)
        .limit(limit)
    )
    return [OutboxRow(*row) for row in conn.execute(query)]
