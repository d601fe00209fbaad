"""Every SQL statement on `idempotency_keys`: synchronous Core, run through `Database.run`.

Every statement is scoped by the organisation; the sweeper alone deletes by expiry."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from postengine.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Stored:
    endpoint: str
    fingerprint: str
    token: str
    status_code: int | None
    body: bytes | None
    locked_until: datetime
    expires_at: datetime


_SELECT = select(
    IdempotencyKey.endpoint,
    IdempotencyKey.fingerprint,
    IdempotencyKey.token,
    IdempotencyKey.status_code,
    IdempotencyKey.body,
    IdempotencyKey.locked_until,
    IdempotencyKey.expires_at,
)


def find(conn: Connection, org_id: str, key: str) -> Stored | None:
    query = _SELECT.where(IdempotencyKey.org_id == org_id, IdempotencyKey.key == key)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()  # SQLite's BEGIN IMMEDIATE already serialises writers
    row = conn.execute(query).first()
    return None if row is None else Stored(*row)


@dataclass(frozen=True, slots=True)
class NewClaim:
    org_id: str
    key: str
    endpoint: str
    fingerprint: str
    token: str
    created_at: datetime
    locked_until: datetime
    expires_at: datetime


def insert_new(conn: Connection, claim: NewClaim) -> bool:
    """Insert a `running` row; False when the key already exists (another request got there first)."""
    values = {
        "org_id": claim.org_id,
        "key": claim.key,
        "endpoint": claim.endpoint,
        "fingerprint": claim.fingerprint,
        "token": claim.token,
        "created_at": claim.created_at,
        "locked_until": claim.locked_until,
        "expires_at": claim.expires_at,
    }
    if conn.dialect.name == "postgresql":
        result = conn.execute(pg_insert(IdempotencyKey).values(values).on_conflict_do_nothing())
        return result.rowcount == 1
    conn.execute(insert(IdempotencyKey).values(values))  # SQLite: the find above ran under the write lock
    return True


def restart(conn: Connection, claim: NewClaim, old_token: str) -> bool:
    """Reuse an expired row as a new `running` claim."""
    result = conn.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.org_id == claim.org_id,
            IdempotencyKey.key == claim.key,
            IdempotencyKey.token == old_token,
        )
        .values(
            endpoint=claim.endpoint,
            fingerprint=claim.fingerprint,
            token=claim.token,
            status_code=None,
            body=None,
            created_at=claim.created_at,
            locked_until=claim.locked_until,
            expires_at=claim.expires_at,
        )
    )
    return result.rowcount == 1


def take_over(
    conn: Connection, *, org_id: str, key: str, old_token: str, token: str, locked_until: datetime
) -> bool:
    """Take a `running` row whose holder's lease ran out (that process died)."""
    result = conn.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.org_id == org_id,
            IdempotencyKey.key == key,
            IdempotencyKey.token == old_token,
            IdempotencyKey.status_code.is_(None),
        )
        .values(token=token, locked_until=locked_until)
    )
    return result.rowcount == 1


def finish(conn: Connection, *, org_id: str, key: str, token: str, status_code: int, body: bytes) -> bool:
    """Store the response of the attempt that holds the key; False if it no longer does."""
    result = conn.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.org_id == org_id,
            IdempotencyKey.key == key,
            IdempotencyKey.token == token,
            IdempotencyKey.status_code.is_(None),
        )
        .values(status_code=status_code, body=body)
    )
    return result.rowcount == 1


def release(conn: Connection, *, org_id: str, key: str, token: str) -> None:
    """Forget a claim whose request did not succeed, so that a retry runs again."""
    conn.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.org_id == org_id,
            IdempotencyKey.key == key,
            IdempotencyKey.token == token,
            IdempotencyKey.status_code.is_(None),
        )
    )


def delete_expired(conn: Connection, now: datetime) -> int:
    """Delete every expired row (running ones too: their lease ended long before)."""
    result = conn.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(result.rowcount or 0)
