"""Every SQL statement of the generation flow."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from postengine.models import Generation, Media, Organization


async def mark(
    session: AsyncSession,
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
    result = await session.execute(
        update(Generation)
        .where(Generation.id == generation_id, Generation.status == "reserved")
        .values(status=status, finished_at=at, media_id=media_id, error=error, provider=provider)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def add_media(session: AsyncSession, media: Media) -> None:
    session.add(media)
    await session.execute(
        update(Organization)
        .where(Organization.id == media.org_id)
        .values(storage_used_bytes=Organization.storage_used_bytes + media.size)
        .execution_options(synchronize_session=False)
    )
    await session.flush()


async def expired_reservations(session: AsyncSession, now: datetime, limit: int = 100) -> list[Generation]:
    result = await session.execute(
        select(Generation)
        .where(Generation.status == "reserved", Generation.deadline_at < now)
        .order_by(Generation.deadline_at)
        .limit(limit)
    )
    return list(result.scalars())
