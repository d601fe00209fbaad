"""Every SQL statement of the posts API: synchronous Core, run through `Database.run`/`run_read`.

Lock order, everywhere a post is changed: the post row first, then its destinations. The publisher's
claim takes both with `SKIP LOCKED` and never waits, so the two cannot deadlock (see `queue.py`).
`FOR UPDATE`/`FOR SHARE` are PostgreSQL's; on SQLite `BEGIN IMMEDIATE` already serialises writers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, exists, func, insert, select, update

from postengine.models import Media, Post, PostDestination, PostMedia, SocialAccount
from postengine.posts.schemas import PostSort, SortOrder

EDITABLE = ("draft", "scheduled")

_DESTINATION_COLUMNS = (
    PostDestination.id,
    PostDestination.post_id,
    PostDestination.account_id,
    SocialAccount.account_name,
    PostDestination.platform,
    PostDestination.status,
    PostDestination.platform_post_id,
    PostDestination.platform_post_url,
    PostDestination.published_at,
    PostDestination.error,
    PostDestination.attempts,
    PostDestination.next_retry_at,
)
_POST_COLUMNS = (
    Post.id,
    Post.status,
    Post.content,
    Post.scheduled_for,
    Post.timezone,
    Post.platform_content,
    Post.created_at,
    Post.updated_at,
)


@dataclass(frozen=True, slots=True)
class PostFilters:
    statuses: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    account_id: int | None = None
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None
    search: str | None = None
    sort: PostSort = PostSort.CREATED_AT
    order: SortOrder = SortOrder.DESC


@dataclass(frozen=True, slots=True)
class PostRows:
    """A page of posts with everything their API objects show."""

    posts: list[Row[Any]]
    destinations: dict[str, list[Row[Any]]]
    media: dict[str, list[Row[Any]]]


# ---------------------------------------------------------------- reads for validation


def accounts(conn: Connection, org_id: str, account_ids: Sequence[int]) -> dict[int, Row[Any]]:
    if not account_ids:
        return {}
    rows = conn.execute(
        select(
            SocialAccount.id, SocialAccount.platform, SocialAccount.account_name, SocialAccount.is_active
        ).where(SocialAccount.org_id == org_id, SocialAccount.id.in_(account_ids))
    )
    return {row.id: row for row in rows}


def media(conn: Connection, org_id: str, media_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """The caller's media among `media_ids`, share-locked on PostgreSQL so that a concurrent delete
    waits for this post (and then sees it in `post_media`) instead of removing it under us."""
    if not media_ids:
        return {}
    query = (
        select(Media.id, Media.type, Media.status, Media.size, Media.width, Media.height)
        .where(Media.org_id == org_id, Media.id.in_(media_ids))
        .with_for_update(read=True)
    )
    return {row.id: row for row in conn.execute(query)}


# ---------------------------------------------------------------- writes


def insert_post(conn: Connection, **values: Any) -> None:
    conn.execute(insert(Post), values)


def replace_post_media(
    conn: Connection, post_id: str, media_ids: Sequence[str], *, fresh: bool = False
) -> None:
    if not fresh:
        conn.execute(delete(PostMedia).where(PostMedia.post_id == post_id))
    if media_ids:
        conn.execute(
            insert(PostMedia),
            [
                {"post_id": post_id, "position": i, "media_id": media_id}
                for i, media_id in enumerate(media_ids)
            ],
        )


def insert_destinations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(PostDestination), rows)


def delete_destinations(conn: Connection, post_id: str, account_ids: Sequence[int]) -> None:
    if account_ids:
        conn.execute(
            delete(PostDestination).where(
                PostDestination.post_id == post_id, PostDestination.account_id.in_(account_ids)
            )
        )


def reschedule_destinations(conn: Connection, post_id: str, due_at: datetime | None, now: datetime) -> None:
    conn.execute(
        update(PostDestination)
        .where(PostDestination.post_id == post_id, PostDestination.status == "queued")
        .values(due_at=due_at, updated_at=now)
    )


def update_post(conn: Connection, post_id: str, **values: Any) -> None:
    conn.execute(update(Post).where(Post.id == post_id).values(**values))


def delete_editable_post(conn: Connection, org_id: str, post_id: str) -> bool:
    """Delete (and with it, by cascade, its destinations and media links) only while nothing of it
    can have been published: the condition is part of the DELETE, so it cannot race the claim."""
    result = conn.execute(
        delete(Post).where(Post.id == post_id, Post.org_id == org_id, Post.status.in_(EDITABLE))
    )
    return result.rowcount == 1


def retry_failed(conn: Connection, post_id: str, now: datetime) -> list[Row[Any]]:
    """Failed destinations back to the queue, due now, with a fresh budget of attempts."""
    failed = list(
        conn.execute(
            select(PostDestination.id, PostDestination.platform)
            .where(PostDestination.post_id == post_id, PostDestination.status == "failed")
            .order_by(PostDestination.created_at, PostDestination.id)
            .with_for_update()
        )
    )
    if failed:
        conn.execute(
            update(PostDestination)
            .where(PostDestination.id.in_([row.id for row in failed]), PostDestination.status == "failed")
            .values(
                status="queued",
                due_at=now,
                attempts=0,
                next_retry_at=None,
                error=None,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )
    return failed


# ---------------------------------------------------------------- reads for responses


def post_for_update(conn: Connection, org_id: str, post_id: str) -> Row[Any] | None:
    return conn.execute(
        select(*_POST_COLUMNS).where(Post.id == post_id, Post.org_id == org_id).with_for_update()
    ).first()


def destination_accounts(conn: Connection, post_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(PostDestination.account_id, PostDestination.status).where(
                PostDestination.post_id == post_id
            )
        )
    )


def post_media_ids(conn: Connection, post_id: str) -> list[str]:
    return list(
        conn.execute(
            select(PostMedia.media_id).where(PostMedia.post_id == post_id).order_by(PostMedia.position)
        ).scalars()
    )


def load_posts(conn: Connection, org_id: str, post_ids: Sequence[str]) -> PostRows:
    """The posts among `post_ids` that belong to `org_id`, in the order given."""
    if not post_ids:
        return PostRows([], {}, {})
    rows = {
        row.id: row
        for row in conn.execute(select(*_POST_COLUMNS).where(Post.org_id == org_id, Post.id.in_(post_ids)))
    }
    return _with_children(conn, [rows[i] for i in post_ids if i in rows])


def list_posts(
    conn: Connection, org_id: str, filters: PostFilters, limit: int, offset: int
) -> tuple[int, PostRows]:
    conditions: list[Any] = [Post.org_id == org_id]
    if filters.statuses:
        conditions.append(Post.status.in_(filters.statuses))
    if filters.platforms or filters.account_id is not None:
        inner = [PostDestination.post_id == Post.id]
        if filters.platforms:
            inner.append(PostDestination.platform.in_(filters.platforms))
        if filters.account_id is not None:
            inner.append(PostDestination.account_id == filters.account_id)
        conditions.append(exists().where(*inner))
    if filters.scheduled_after is not None:
        conditions.append(Post.scheduled_for >= filters.scheduled_after)
    if filters.scheduled_before is not None:
        conditions.append(Post.scheduled_for <= filters.scheduled_before)
    if filters.search:
        conditions.append(Post.content.icontains(filters.search, autoescape=True))

    total = conn.execute(select(func.count()).select_from(Post).where(*conditions)).scalar_one()
    if total <= offset:
        return total, PostRows([], {}, {})
    key = Post.created_at if filters.sort == PostSort.CREATED_AT else Post.scheduled_for
    ordering = key.asc() if filters.order == SortOrder.ASC else key.desc()
    if filters.sort == PostSort.SCHEDULED_FOR:
        ordering = ordering.nulls_last()
    tie = Post.id.asc() if filters.order == SortOrder.ASC else Post.id.desc()
    rows = list(
        conn.execute(
            select(*_POST_COLUMNS).where(*conditions).order_by(ordering, tie).limit(limit).offset(offset)
        )
    )
    return total, _with_children(conn, rows)


# Built once (with an expanding IN): a page's children are read on every uncached list request.
_DESTINATIONS_OF = (
    select(*_DESTINATION_COLUMNS)
    .join(SocialAccount, SocialAccount.id == PostDestination.account_id)
    .where(PostDestination.post_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(PostDestination.post_id, PostDestination.created_at, PostDestination.account_id)
)
_MEDIA_OF = (
    select(PostMedia.post_id, Media.id, Media.type, Media.width, Media.height, Media.storage_key)
    .join(Media, Media.id == PostMedia.media_id)
    .where(PostMedia.post_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(PostMedia.post_id, PostMedia.position)
)


def _with_children(conn: Connection, posts: list[Row[Any]]) -> PostRows:
    ids = [row.id for row in posts]
    destinations: dict[str, list[Row[Any]]] = {i: [] for i in ids}
    media_rows: dict[str, list[Row[Any]]] = {i: [] for i in ids}
    if ids:
        for row in conn.execute(_DESTINATIONS_OF, {"b_ids": ids}):
            destinations[row.post_id].append(row)
        for row in conn.execute(_MEDIA_OF, {"b_ids": ids}):
            media_rows[row.post_id].append(row)
    return PostRows(posts, destinations, media_rows)
