"""Connected social accounts (API.md §6): connecting them (the operator, on the command line),
reading them and their health (HTTP), the sandbox outbox.

For the posts domain:

    accounts = await get_accounts_for_post(db, org_id, account_ids)   # dict[int, AccountRow]
        The caller's accounts among `account_ids`, in one query. Unknown ids and other
        organisations' ids are simply absent (→ 404 for the post). Each `AccountRow` has `id`,
        `platform`, `account_name`, `is_active` (an inactive account cannot be targeted by new
        posts), `is_sandbox` (→ `Connectors.for_account(platform, is_sandbox)`), and the rest of
        the row.
    health.assess(account, now).can_post
        Whether the account can take a post now (active, token valid, a connector exists).

Every function runs one short transaction through `Database.run`/`run_read`; none commits or
reads the clock itself (`now` is passed in).
"""

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from postengine.accounts import repository as repo
from postengine.accounts.errors import (
    AccountLimitReached,
    AccountNotFound,
    DuplicateAccount,
    InvalidAccountName,
    UnknownPlatform,
)
from postengine.accounts.health import assess
from postengine.accounts.repository import AccountRow, OutboxRow
from postengine.accounts.schemas import Platform
from postengine.credits.plans import PLANS, Plan
from postengine.db import Database
from postengine.kit.clock import iso
from postengine.orgs.service import OrganizationNotFound

RECENT_FAILURES_WINDOW = timedelta(hours=24)
MAX_NAME_CHARS = 200
_ACCOUNT_ID = re.compile(r"[0-9]{1,10}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

__all__ = [
    "AccountRow",
    "OutboxRow",
    "account_health",
    "account_json",
    "connect_account",
    "get_account",
    "get_accounts_for_post",
    "list_accounts",
    "list_for_admin",
    "outbox",
    "parse_account_id",
    "set_account_active",
]


# ---------------------------------------------------------------- reading (HTTP)


def parse_account_id(raw: str) -> int:
    """A path segment → an account id. Anything that is not one is an account that does not exist
    (404, like any other id that is not the caller's): ids are positive integers (API.md §1.2)."""
    if not _ACCOUNT_ID.fullmatch(raw) or not repo.in_range(int(raw)):
        raise AccountNotFound(raw)
    return int(raw)


def account_json(account: AccountRow, now: datetime) -> dict[str, Any]:
    """The account object of API.md §6."""
    return {
        "id": account.id,
        "account_id": account.id,
        "platform": account.platform,
        "account_name": account.account_name,
        "display_name": account.display_name,
        "avatar_url": account.avatar_url,
        "is_active": account.is_active,
        "created_at": iso(account.created_at),
        "health": assess(account, now).summary(),
    }


async def list_accounts(db: Database, org_id: str, now: datetime) -> dict[str, Any]:
    accounts = await db.run_read(lambda conn: repo.list_for_org(conn, org_id))
    return {
        "accounts": [account_json(account, now) for account in accounts],
        "account_ids": [account.id for account in accounts],
        "total": len(accounts),
    }


async def get_account(db: Database, org_id: str, account_id: int, now: datetime) -> dict[str, Any]:
    account = await db.run_read(lambda conn: repo.get_for_org(conn, org_id, account_id))
    if account is None:
        raise AccountNotFound(account_id)
    return account_json(account, now)


async def account_health(db: Database, org_id: str, account_id: int, now: datetime) -> dict[str, Any]:
    since = now - RECENT_FAILURES_WINDOW

    def read(conn: Connection) -> tuple[AccountRow | None, int, datetime | None]:
        account = repo.get_for_org(conn, org_id, account_id)
        if account is None:
            return None, 0, None
        return (
            account,
            repo.failures_since(conn, org_id, account_id, since),
            repo.last_published(conn, org_id, account_id),
        )

    account, failures, last_destination = await db.run_read(read)
    if account is None:
        raise AccountNotFound(account_id)
    health = assess(account, now)
    known = [at for at in (account.last_published_at, last_destination) if at is not None]
    return {
        "account_id": account.id,
        "platform": account.platform,
        "status": health.status.value,
        "can_post": health.can_post,
        "needs_reconnection": health.needs_reconnection,
        "token_expires_at": iso(account.token_expires_at),
        "recent_failures": failures,
        "last_published_at": iso(max(known)) if known else None,
        "message": health.message,
    }


async def get_accounts_for_post(db: Database, org_id: str, account_ids: list[int]) -> dict[int, AccountRow]:
    """See the module's docstring."""
    return await db.run_read(lambda conn: repo.get_many_for_org(conn, org_id, account_ids))


# ---------------------------------------------------------------- administration (CLI)


def _platform(value: str) -> Platform:
    try:
        return Platform(value.strip().lower())
    except ValueError:
        raise UnknownPlatform(
            f"unknown platform {value!r}; use one of: {', '.join(p.value for p in Platform)}"
        ) from None


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME_CHARS or _CONTROL.search(value):
        raise InvalidAccountName(
            f"{what} must have 1 to {MAX_NAME_CHARS} characters and no control characters"
        )
    return value


def _check_limit(conn: Connection, org_id: str, plan: str) -> None:
    limit = PLANS[Plan(plan)].accounts
    if repo.count_active(conn, org_id) >= limit:
        raise AccountLimitReached(
            f"the {plan} plan includes {limit} active accounts and {org_id} has them all; "
            "disable one (postengine accounts disable ID) or change the plan"
        )


def _lock_plan(conn: Connection, org_id: str) -> str:
    plan = repo.lock_org(conn, org_id)
    if plan is None:
        raise OrganizationNotFound(f"no organization {org_id!r}")
    return plan


async def connect_account(
    db: Database,
    *,
    org_id: str,
    platform: str,
    account_name: str,
    display_name: str | None,
    sandbox: bool,
    now: datetime,
) -> AccountRow:
    """Connect an account to an organisation, within its plan's limit of active accounts.

    A name is unique per platform in an organisation, ignoring case (`@Acme` is `@acme`)."""
    chosen = _platform(platform)
    name = _name(account_name, "an account name")
    shown = _name(display_name, "a display name") if display_name is not None else name

    def write(conn: Connection) -> AccountRow:
        plan = _lock_plan(conn, org_id)
        existing = repo.find_by_name(conn, org_id, chosen.value, name)
        if existing is not None:
            state = "" if existing.is_active else " (disabled; enable it with postengine accounts enable)"
            raise DuplicateAccount(
                f"{org_id} already has the {chosen.value} account {existing.account_name!r}: "
                f"account {existing.id}{state}"
            )
        _check_limit(conn, org_id, plan)
        account_id = repo.insert_account(
            conn,
            org_id=org_id,
            platform=chosen.value,
            account_name=name,
            display_name=shown,
            is_active=True,
            is_sandbox=sandbox,
            health_status="healthy",
            created_at=now,
        )
        account = repo.get_any(conn, account_id)
        assert account is not None
        return account

    try:
        return await db.run(write)
    except IntegrityError:  # the same name, connected by a concurrent command
        raise DuplicateAccount(f"{org_id} already has the {chosen.value} account {name!r}") from None


async def list_for_admin(db: Database, org_id: str) -> list[AccountRow]:
    return await db.run_read(lambda conn: repo.list_for_org(conn, org_id))


async def set_account_active(db: Database, account_id: int, active: bool) -> AccountRow:
    """Disable an account (posts can no longer target it) or enable it again (within the plan's
    limit). Doing it twice is harmless."""

    def write(conn: Connection) -> AccountRow:
        account = repo.get_any(conn, account_id)
        if account is None:
            raise AccountNotFound(account_id, f"no account {account_id}")
        if account.is_active == active:
            return account
        if active:
            _check_limit(conn, account.org_id, _lock_plan(conn, account.org_id))
        repo.set_active(conn, account_id, active)
        changed = repo.get_any(conn, account_id)
        assert changed is not None
        return changed

    return await db.run(write)


async def outbox(db: Database, account_id: int, limit: int) -> tuple[AccountRow, list[OutboxRow]]:
    """What a sandbox account has "published", newest first."""

    def read(conn: Connection) -> tuple[AccountRow | None, list[OutboxRow]]:
        account = repo.get_any(conn, account_id)
        return account, ([] if account is None else repo.outbox(conn, account_id, limit))

    account, rows = await db.run_read(read)
    if account is None:
        raise AccountNotFound(account_id, f"no account {account_id}")
    return account, rows
