"""API key lifecycle: create (secret shown once), list, revoke. Only keyed hashes are stored."""

import re
import secrets
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postengine.auth.scopes import Scope, format_scopes
from postengine.kit.crypto import keyed_hash
from postengine.kit.ids import new_id
from postengine.models import ApiKey, Organization

KEY_PATTERN = re.compile(r"pe_live_[0-9a-f]{32}")
MAX_ACTIVE_KEYS = 10
_HASH_PURPOSE = "api-key"


class KeyLimitReached(Exception):
    pass


class KeyNotFound(LookupError):
    pass


def hash_key(secret_key: bytes, secret: str) -> str:
    return keyed_hash(secret_key, secret, purpose=_HASH_PURPOSE)


def new_secret() -> str:
    return f"pe_live_{secrets.token_hex(16)}"


def _active(now: datetime) -> ColumnElement[bool]:
    return (ApiKey.revoked_at.is_(None)) & ((ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))


async def create_key(
    session: AsyncSession,
    *,
    secret_key: bytes,
    org_id: str,
    name: str,
    scopes: frozenset[Scope],
    now: datetime,
    expires_at: datetime | None = None,
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Returns the key row and its secret; the secret is never stored and cannot be read back."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("a key name must have 1 to 200 characters")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must be in the future")
    secret = secret or new_secret()
    if not KEY_PATTERN.fullmatch(secret):
        raise ValueError("an API key is pe_live_ followed by 32 lowercase hex characters")
    # Lock the organisation row so two concurrent creations cannot both pass the limit check.
    org = (
        await session.execute(select(Organization).where(Organization.id == org_id).with_for_update())
    ).scalar_one_or_none()
    if org is None:
        raise KeyNotFound(f"no organization {org_id!r}")
    active = (
        await session.execute(
            select(func.count()).select_from(ApiKey).where(ApiKey.org_id == org_id, _active(now))
        )
    ).scalar_one()
    if active >= MAX_ACTIVE_KEYS:
        raise KeyLimitReached(
            f"organization {org_id} already has {MAX_ACTIVE_KEYS} active keys; revoke one first"
        )
    key = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        name=name,
        key_hash=hash_key(secret_key, secret),
        key_prefix=secret[:12],
        scopes=format_scopes(scopes),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def list_keys(session: AsyncSession, org_id: str) -> list[ApiKey]:
    result = await session.execute(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at))
    return list(result.scalars())


async def find_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
    return result.scalar_one_or_none()


async def revoke_key(session: AsyncSession, key_id: str, now: datetime) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise KeyNotFound(f"no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
    return key


async def record_last_used(session: AsyncSession, used: dict[str, datetime]) -> None:
    for key_id, at in used.items():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < at))
            .values(last_used_at=at)
            .execution_options(synchronize_session=False)
        )
