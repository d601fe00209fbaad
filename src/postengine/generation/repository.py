"""Every SQL statement of the generation flow: synchronous Core, run through `Database.run`."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from postengine.models import Generation, Media, Organization


def insert_generation(conn: Connection, **values: Any) -> None:
    conn.execute(insert(Generation).values(**values))


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
        update(Generation)
        .where(Generation.id == generation_id, Generation.status == "reserved")
        .values(status=status, finished_at=at, media_id=media_id, error=error, provider=provider)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def add_media(conn: Connection, **values: Any) -> None:
    conn.execute(insert(Media).values(**values))
    conn.execute(
        update(Organization)
        .where(Organization.id == values["org_id"])
        .values(storage_used_bytes=Organization.storage_used_bytes + values["size"])
        .execution_options(synchronize_session=False)
    )


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
