"""Every SQL statement on `idempotency_keys`: synchronous Core, run through `Database.run`/`run_read`.

Every statement is scoped by the organisation; only the sweeper deletes by expiry alone."""

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from postengine.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Stored:
    endpoint: str
    fingerprint: str
    status_code: int
    body: bytes
    expires_at: datetime


_SELECT = select(
    IdempotencyKey.endpoint,
    IdempotencyKey.fingerprint,
    IdempotencyKey.status_code,
    IdempotencyKey.body,
    IdempotencyKey.expires_at,
)


# Built once, with bind parameters: statements built per call cost more than running them (SQLite).
_FIND = _SELECT.where(
    IdempotencyKey.org_id == bindparam("b_org_id"),
    IdempotencyKey.key == bindparam("b_key"),
    IdempotencyKey.expires_at > bindparam("b_now"),
)


def find(conn: Connection, org_id: str, key: str, now: datetime) -> Stored | None:
    """The key's stored response, unless it has expired."""
    row = conn.execute(_FIND, {"b_org_id": org_id, "b_key": key, "b_now": now}).first()
    return None if row is None else Stored(*row)


@dataclass(frozen=True, slots=True)
class Response:
    org_id: str
    key: str
    endpoint: str
    fingerprint: str
    status_code: int
    body: bytes
    created_at: datetime
    expires_at: datetime


_REPLACED = ("endpoint", "fingerprint", "status_code", "body", "created_at", "expires_at")


@functools.cache
def _upsert(dialect: str) -> Any:
    """INSERT …, or replace the row under the key if it has expired; touches no live row."""
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(IdempotencyKey)
    return statement.on_conflict_do_update(
        index_elements=[IdempotencyKey.org_id, IdempotencyKey.key],
        set_={name: statement.excluded[name] for name in _REPLACED},
        where=IdempotencyKey.expires_at <= statement.excluded.created_at,
    )


def insert(conn: Connection, response: Response) -> bool:
    """Store a response; False when the key already has a live one (another attempt committed
    first), in which case the caller's transaction must roll back. An expired response under the key
    is replaced. One statement: an upsert whose update only applies to an expired row."""
    values = {
        "org_id": response.org_id,
        "key": response.key,
        "endpoint": response.endpoint,
        "fingerprint": response.fingerprint,
        "status_code": response.status_code,
        "body": response.body,
        "created_at": response.created_at,
        "expires_at": response.expires_at,
    }
    return conn.execute(_upsert(conn.dialect.name), values).rowcount == 1


def delete_expired(conn: Connection, now: datetime) -> int:
    result = conn.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(result.rowcount or 0)
