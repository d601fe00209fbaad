"""An in-process snapshot of each organisation and its credit account, for `GET /me`.

Reads of quotas must not cost a database round trip per request. The snapshot is dropped
- by this process whenever it changes the organisation's credits or storage (generation, refund),
- by every process when the shared epoch file changes (the CLI bumps it after grants and keys),
- after `ttl` seconds, which bounds staleness from writers that reach neither (other machines).
Decisions that spend credits never read it: they run on the database with a row lock.
"""

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from postengine.credits.repository import ACCOUNT_COLUMNS, AccountRow
from postengine.db import Database
from postengine.kit.epoch import Epoch, EpochCache
from postengine.models import CreditAccount, Organization, SocialAccount


@dataclass(frozen=True, slots=True)
class OrgSnapshot:
    org_id: str
    name: str
    plan: str
    subscription_status: str
    storage_used_bytes: int
    active_accounts: int
    account: AccountRow


class OrgCache:
    def __init__(self, db: Database, epoch: Epoch, ttl: float) -> None:
        self._db = db
        self._entries: EpochCache[str, OrgSnapshot] = EpochCache(epoch, ttl)
        self._versions: dict[str, int] = {}

    def invalidate(self, org_id: str) -> None:
        self._entries.drop(org_id)
        self._versions[org_id] = self._versions.get(org_id, 0) + 1

    async def get(self, org_id: str) -> OrgSnapshot | None:
        cached = self._entries.lookup(org_id)
        if cached is not None:
            return cached[0]
        version = self._versions.get(org_id, 0)
        snapshot = await self._load(org_id)
        # A write that happened while we were reading makes this snapshot old already: don't keep it.
        if snapshot is not None and self._versions.get(org_id, 0) == version:
            self._entries.store(org_id, snapshot)
        return snapshot

    async def _load(self, org_id: str) -> OrgSnapshot | None:
        async with self._db.read_engine.connect() as conn:
            row = (await conn.execute(_SELECT_SNAPSHOT, {"b_org_id": org_id})).first()
        if row is None:
            return None
        name, status, storage, active_accounts, *account = row
        return OrgSnapshot(org_id, name, account[1], status, storage, active_accounts, AccountRow(*account))


_ACTIVE_ACCOUNTS = (
    select(func.count())
    .select_from(SocialAccount)
    .where(SocialAccount.org_id == Organization.id, SocialAccount.is_active.is_(True))
    .scalar_subquery()
)

_SELECT_SNAPSHOT = (
    select(
        Organization.name,
        Organization.subscription_status,
        Organization.storage_used_bytes,
        _ACTIVE_ACCOUNTS,
        *ACCOUNT_COLUMNS,
    )
    .join(Organization, Organization.id == CreditAccount.org_id)
    .where(CreditAccount.org_id == bindparam("b_org_id"))
)
