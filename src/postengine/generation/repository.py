"""Every SQL statement of the generation flow: synchronous Core, run through `Database.run`."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from postengine.models import Generation, Media, Organization

_INSERT_GENERATION = insert(Generation)
_MARK = (
    update(Generation)
    .where(Generation.id == bindparam("b_id"), Generation.status == "reserved")
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_at"),
        media_id=bindparam("b_media_id"),
        error=bindparam("b_error"),
        provider=bindparam("b_provider"),
    )
)
_INSERT_MEDIA = insert(Media)
_ADD_STORAGE = (
    update(Organization)
    .where(Organization.id == bindparam("b_org_id"))
    .values(storage_used_bytes=Organization.storage_used_bytes + bindparam("b_size"))
)


def insert_generation(conn: Connection, **values: Any) -> None:
    conn.execute(_INSERT_GENERATION, values)


def mark(
    conn: Connection,
    generation_id: str,
    *,
    status: str,
    at: datetime,
    media_id: str | None = None,
    error: str | None = None,
    provider: str | None = None,
) -> bool:
    """Move a generation out of `reserved`. False if it already left it (completed or refunded):
    this conditional update is what makes every generation settle exactly once."""
    result = conn.execute(
        _MARK,
        {
            "b_id": generation_id,
            "b_status": status,
            "b_at": at,
            "b_media_id": media_id,
            "b_error": error,
            "b_provider": provider,
        },
    )
    return result.rowcount == 1


def add_media(conn: Connection, **values: Any) -> None:
    conn.execute(_INSERT_MEDIA, values)
    conn.execute(_ADD_STORAGE, {"b_org_id": values["org_id"], "b_size": values["size"]})


def expired_reservations(
    conn: Connection, now: datetime, limit: int = 100
) -> list[Row[tuple[str, str, int, int, datetime]]]:
    result = conn.execute(
        select(
            Generation.id,
            Generation.org_id,
            Generation.allowance_part,
            Generation.bonus_part,
            Generation.period_start,
        )
        .where(Generation.status == "reserved", Generation.deadline_at < now)
        .order_by(Generation.deadline_at)
        .limit(limit)
    )
    return list(result.all())
