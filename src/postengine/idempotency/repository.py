"""Every SQL statement on `idempotency_keys`: synchronous Core, run through `Database.run`/`run_read`.

Every statement is scoped by the organisation; only the sweeper deletes by expiry alone."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select
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


def find(conn: Connection, org_id: str, key: str, now: datetime) -> Stored | None:
    """The key's stored response, unless it has expired."""
    row = conn.execute(
        _SELECT.where(
            IdempotencyKey.org_id == org_id, IdempotencyKey.key == key, IdempotencyKey.expires_at > now
        )
    ).first()
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
    statement = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(IdempotencyKey).values(
        values
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[IdempotencyKey.org_id, IdempotencyKey.key],
        set_={name: statement.excluded[name] for name in values if name not in ("org_id", "key")},
        where=IdempotencyKey.expires_at <= statement.excluded.created_at,
    )
    return conn.execute(upsert).rowcount == 1


def delete_expired(conn: Connection, now: datetime) -> int:
    result = conn.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(result.rowcount or 0)
