"""Credit rules: reserve before generating, refund on any failure, never below zero.

Balance = monthly allowance left in the current period + bonus credits from packs. The allowance
is spent first; bonus credits never expire. Periods roll over lazily, on the first write after the
period ended: the unused allowance expires and the new allowance is granted, each as a ledger row,
so `sum(ledger.amount) == balance` holds at every commit.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from postengine.credits import repository
from postengine.credits.errors import UnknownOrganization
from postengine.credits.plans import PLANS, Plan
from postengine.credits.repository import AccountRow
from postengine.errors import InsufficientCredits
from postengine.kit.clock import add_months


class ConcurrentUpdate(Exception):
    """The guarded UPDATE matched no row: the balance changed under us. Never expected while the row
    lock holds; raised rather than risk a wrong balance."""


@dataclass(frozen=True, slots=True)
class Balance:
    allowance: int
    allowance_used: int
    bonus: int
    period_start: datetime
    period_end: datetime

    @property
    def allowance_remaining(self) -> int:
        return self.allowance - self.allowance_used

    @property
    def remaining(self) -> int:
        return self.allowance_remaining + self.bonus


@dataclass(frozen=True, slots=True)
class Reservation:
    credits: int
    allowance_part: int
    bonus_part: int
    period_start: datetime
    balance: Balance


def _balance(account: AccountRow) -> Balance:
    return Balance(
        account.allowance, account.allowance_used, account.bonus, account.period_start, account.period_end
    )


def _period_containing(anchor: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The monthly period that contains `now`, counted from `anchor` (not from the previous period,
    which would drift: Jan 31 → Feb 28 → Mar 28; counted from the anchor it is → Mar 31)."""
    months = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    while months > 0 and add_months(anchor, months) > now:
        months -= 1
    while add_months(anchor, months + 1) <= now:
        months += 1
    return add_months(anchor, months), add_months(anchor, months + 1)


def project(account: AccountRow, plan: Plan, now: datetime) -> Balance:
    """The balance as it is at `now`, counting a period rollover that no write has recorded yet."""
    if account.period_end > now:
        return _balance(account)
    start, end = _period_containing(account.anchor, now)
    return Balance(PLANS[plan].monthly_credits, 0, account.bonus, start, end)


def open_account(conn: Connection, org_id: str, plan: Plan, now: datetime) -> None:
    allowance = PLANS[plan].monthly_credits
    repository.insert_account(
        conn, org_id=org_id, period_start=now, period_end=add_months(now, 1), allowance=allowance
    )
    if allowance:
        repository.add_ledger(
            conn,
            org_id=org_id,
            kind="allowance",
            allowance_delta=allowance,
            bonus_delta=0,
            at=now,
            note=f"{plan} plan monthly allowance",
        )


def _current(conn: Connection, org_id: str, now: datetime) -> AccountRow:
    """The locked account row, rolled into the period that contains `now`."""
    account = repository.get_account(conn, org_id, lock=True)
    if account is None:
        raise UnknownOrganization("No such organization.")
    if account.period_end > now:
        return account
    plan = Plan(account.plan)
    start, end = _period_containing(account.anchor, now)
    expired = account.allowance - account.allowance_used
    allowance = PLANS[plan].monthly_credits
    if not repository.roll_period(conn, account, period_start=start, period_end=end, allowance=allowance):
        raise ConcurrentUpdate(org_id)
    if expired:
        repository.add_ledger(
            conn,
            org_id=org_id,
            kind="expiry",
            allowance_delta=-expired,
            bonus_delta=0,
            at=now,
            note="unused monthly allowance expired",
        )
    if allowance:
        repository.add_ledger(
            conn,
            org_id=org_id,
            kind="allowance",
            allowance_delta=allowance,
            bonus_delta=0,
            at=now,
            note=f"{plan} plan monthly allowance",
        )
    return AccountRow(org_id, account.plan, start, end, allowance, 0, account.bonus, account.anchor)


def reserve(conn: Connection, *, org_id: str, cost: int, generation_id: str, now: datetime) -> Reservation:
    """Take `cost` credits (allowance first, then bonus) or raise `InsufficientCredits`."""
    account = _current(conn, org_id, now)
    balance = _balance(account)
    if balance.remaining < cost:
        raise InsufficientCredits(required=cost, remaining=balance.remaining)
    from_allowance = min(cost, balance.allowance_remaining)
    from_bonus = cost - from_allowance
    if not repository.set_account(
        conn,
        account,
        allowance_used=account.allowance_used + from_allowance,
        bonus=account.bonus - from_bonus,
    ):
        raise ConcurrentUpdate(org_id)
    repository.add_ledger(
        conn,
        org_id=org_id,
        kind="generation",
        allowance_delta=-from_allowance,
        bonus_delta=-from_bonus,
        at=now,
        generation_id=generation_id,
    )
    after = Balance(
        balance.allowance,
        balance.allowance_used + from_allowance,
        balance.bonus - from_bonus,
        balance.period_start,
        balance.period_end,
    )
    return Reservation(cost, from_allowance, from_bonus, account.period_start, after)


def refund(
    conn: Connection,
    *,
    org_id: str,
    generation_id: str,
    allowance_part: int,
    bonus_part: int,
    period_start: datetime,
    now: datetime,
) -> Balance:
    """Return a reservation's credits to the buckets they came from. If the period has rolled over
    since, the allowance part would already have expired; it is returned as bonus credits instead,
    so a failed generation never costs anything. The caller guarantees (by a conditional status
    change of the generation) that this runs at most once; the ledger's unique index backs that."""
    account = _current(conn, org_id, now)
    if account.period_start == period_start:
        back_allowance, back_bonus = allowance_part, bonus_part
    else:
        back_allowance, back_bonus = 0, allowance_part + bonus_part
    if not repository.set_account(
        conn,
        account,
        allowance_used=account.allowance_used - back_allowance,
        bonus=account.bonus + back_bonus,
    ):
        raise ConcurrentUpdate(org_id)
    repository.add_ledger(
        conn,
        org_id=org_id,
        kind="refund",
        allowance_delta=back_allowance,
        bonus_delta=back_bonus,
        at=now,
        generation_id=generation_id,
    )
    return Balance(
        account.allowance,
        account.allowance_used - back_allowance,
        account.bonus + back_bonus,
        account.period_start,
        account.period_end,
    )


def grant_pack(conn: Connection, *, org_id: str, amount: int, now: datetime) -> Balance:
    if amount <= 0:
        raise ValueError("a credit pack must be a positive number of credits")
    account = _current(conn, org_id, now)
    if not repository.set_account(
        conn, account, allowance_used=account.allowance_used, bonus=account.bonus + amount
    ):
        raise ConcurrentUpdate(org_id)
    repository.add_ledger(
        conn, org_id=org_id, kind="pack", allowance_delta=0, bonus_delta=amount, at=now, note="credit pack"
    )
    return Balance(
        account.allowance,
        account.allowance_used,
        account.bonus + amount,
        account.period_start,
        account.period_end,
    )


__all__ = [
    "Balance",
    "Reservation",
    "grant_pack",
    "open_account",
    "project",
    "refund",
    "reserve",
]
