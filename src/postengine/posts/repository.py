"""Every SQL statement of the posts API: synchronous Core, run through `Database.run`/`run_read`.

Lock order, everywhere a post is changed: the post row first, then its destinations. The publisher's
claim takes both with `SKIP LOCKED` and never waits, so the two cannot deadlock (see `queue.py`).
`FOR UPDATE`/`FOR SHARE` are PostgreSQL's; on SQLite `BEGIN IMMEDIATE` already serialises writers.
"""

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import sqlite

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


# A row of _POST_COLUMNS, _DESTINATION_COLUMNS or _MEDIA_OF: a Row, or a plain tuple from the
# SQLite list path (`_list_sqlite`). Read by position; datetimes are always timezone-aware UTC.
PostRow = Sequence[Any]


@dataclass(frozen=True, slots=True)
class PostRows:
    """A page of posts with everything their API objects show."""

    posts: list[PostRow]
    destinations: dict[str, list[PostRow]]
    media: dict[str, list[PostRow]]


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
    """One page in the requested order, and the total that matches the filters (one snapshot: the
    caller's transaction)."""
    statements = _list_statements(
        bool(filters.statuses),
        bool(filters.platforms),
        filters.account_id is not None,
        filters.scheduled_after is not None,
        filters.scheduled_before is not None,
        bool(filters.search),
        filters.sort,
        filters.order,
    )
    params: dict[str, Any] = {"b_org_id": org_id}
    if filters.statuses:
        params["b_statuses"] = list(filters.statuses)
    if filters.platforms:
        params["b_platforms"] = list(filters.platforms)
    if filters.account_id is not None:
        params["b_account_id"] = filters.account_id
    if filters.scheduled_after is not None:
        params["b_after"] = filters.scheduled_after
    if filters.scheduled_before is not None:
        params["b_before"] = filters.scheduled_before
    if filters.search:
        params["b_search"] = _like_escaped(filters.search)
    # One row past the page: without it the page is the last one, and its end is the total.
    page_params = {**params, "b_limit": limit + 1, "b_offset": offset}

    sqlite_path = conn.dialect.name == "sqlite"
    if sqlite_path:
        rows = [_sqlite_post(row) for row in _sqlite_rows(conn, statements.page, page_params)]
    else:
        rows = list(conn.execute(statements.page, page_params).all())
    if len(rows) <= limit and (rows or offset == 0):
        total = offset + len(rows)
    elif sqlite_path:
        total = _sqlite_rows(conn, statements.count, params)[0][0]
    else:
        total = conn.execute(statements.count, params).scalar_one()
    rows = rows[:limit]
    if sqlite_path:
        return total, _with_children_sqlite(conn, rows)
    return total, _with_children(conn, rows)


@dataclass(frozen=True, slots=True)
class _ListStatements:
    count: Select[Any]
    page: Select[Any]


@functools.cache
def _list_statements(
    by_status: bool,
    by_platform: bool,
    by_account: bool,
    after: bool,
    before: bool,
    search: bool,
    sort: PostSort,
    order: SortOrder,
) -> _ListStatements:
    """Built once per shape of query (which filters, which order): SQLAlchemy then reuses the
    statement's cache key and compiled form, which costs more than the query itself when built per
    request. The values are bound parameters (`b_…`), set by `list_posts`."""
    conditions: list[Any] = [Post.org_id == bindparam("b_org_id")]
    if by_status:
        conditions.append(Post.status.in_(bindparam("b_statuses", expanding=True)))
    if by_platform or by_account:
        inner = [PostDestination.post_id == Post.id]
        if by_platform:
            inner.append(PostDestination.platform.in_(bindparam("b_platforms", expanding=True)))
        if by_account:
            inner.append(PostDestination.account_id == bindparam("b_account_id"))
        conditions.append(exists().where(*inner))
    if after:
        conditions.append(Post.scheduled_for >= bindparam("b_after", type_=Post.scheduled_for.type))
    if before:
        conditions.append(Post.scheduled_for <= bindparam("b_before", type_=Post.scheduled_for.type))
    if search:
        # Same SQL as `icontains(search, autoescape=True)`; `_like_escaped` escapes the value.
        conditions.append(Post.content.icontains(bindparam("b_search"), escape=_LIKE_ESCAPE))

    key = Post.created_at if sort == PostSort.CREATED_AT else Post.scheduled_for
    ordering = key.asc() if order == SortOrder.ASC else key.desc()
    if sort == PostSort.SCHEDULED_FOR:
        ordering = ordering.nulls_last()
    tie = Post.id.asc() if order == SortOrder.ASC else Post.id.desc()
    page = (
        select(*_POST_COLUMNS)
        .where(*conditions)
        .order_by(ordering, tie)
        .limit(bindparam("b_limit"))
        .offset(bindparam("b_offset"))
    )
    return _ListStatements(select(func.count()).select_from(Post).where(*conditions), page)


_LIKE_ESCAPE = "/"


def _like_escaped(text: str) -> str:
    """`text` as a LIKE pattern that matches it literally (what SQLAlchemy's `autoescape` does)."""
    e = _LIKE_ESCAPE
    return text.replace(e, e + e).replace("%", e + "%").replace("_", e + "_")


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


def _with_children(conn: Connection, posts: list[PostRow]) -> PostRows:
    ids = [row[0] for row in posts]
    destinations: dict[str, list[PostRow]] = {i: [] for i in ids}
    media_rows: dict[str, list[PostRow]] = {i: [] for i in ids}
    if ids:
        for row in conn.execute(_DESTINATIONS_OF, {"b_ids": ids}):
            destinations[row.post_id].append(row)
        for row in conn.execute(_MEDIA_OF, {"b_ids": ids}):
            media_rows[row.post_id].append(row)
    return PostRows(posts, destinations, media_rows)


# ---------------------------------------------------------------- the list on SQLite
#
# `GET /posts` is the embedded mode's hottest uncached read. On SQLite it runs on the plain sqlite3
# connection: SQLAlchemy's per-execution work (about 0.1 ms a statement) and its per-value result
# processing cost several times the queries themselves here. The SQL is still the Core statements
# above, compiled once per shape; only the conversion of values is by hand, the way SQLAlchemy's
# SQLite types store them (datetimes as UTC text, JSON as text).

_SQLITE = sqlite.dialect()


@dataclass(frozen=True, slots=True)
class _SqliteForm:
    """A statement compiled for sqlite3, and where each `?` takes its value from: (parameter name,
    index in the list for an expanding parameter or None, the type's bind processor or None)."""

    sql: str
    sources: tuple[tuple[str, int | None, Callable[[Any], Any] | None], ...]

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, index, process in self.sources:
            value = params[name] if index is None else params[name][index]
            values.append(value if process is None else process(value))
        return tuple(values)


@functools.lru_cache(maxsize=1024)
def _sqlite_form(statement: Select[Any], shape: tuple[tuple[str, int | None], ...]) -> _SqliteForm:
    """`statement` (one of this module's, built once) for parameters of `shape`: each name with,
    for an expanding parameter, the length of its list, written out as as many `?`."""
    expanding = {name for name, size in shape if size is not None}
    placeholders = {name: None if size is None else [None] * size for name, size in shape}
    compiled = statement.params(placeholders).compile(
        dialect=_SQLITE, compile_kwargs={"render_postcompile": True}
    )
    sources: list[tuple[str, int | None, Callable[[Any], Any] | None]] = []
    for position in compiled.positiontup or ():
        base, _, number = position.rpartition("_")
        name, index = (base, int(number) - 1) if base in expanding else (position, None)
        sources.append((name, index, compiled.binds[name].type.bind_processor(_SQLITE)))
    return _SqliteForm(str(compiled), tuple(sources))


def _sqlite_rows(conn: Connection, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
    shape = tuple((name, len(value) if isinstance(value, list) else None) for name, value in params.items())
    form = _sqlite_form(statement, shape)
    driver = conn.connection.driver_connection
    assert driver is not None
    rows: list[Any] = driver.execute(form.sql, form.arguments(params)).fetchall()
    return rows


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _sqlite_post(row: Sequence[Any]) -> PostRow:
    """A row of _POST_COLUMNS: scheduled_for, platform_content (JSON), created_at, updated_at."""
    id_, status, content, scheduled_for, timezone, platform_content, created_at, updated_at = row
    return (
        id_,
        status,
        content,
        _sqlite_datetime(scheduled_for),
        timezone,
        None if platform_content is None else json.loads(platform_content),
        _sqlite_datetime(created_at),
        _sqlite_datetime(updated_at),
    )


def _with_children_sqlite(conn: Connection, posts: list[PostRow]) -> PostRows:
    ids = [row[0] for row in posts]
    destinations: dict[str, list[PostRow]] = {i: [] for i in ids}
    media_rows: dict[str, list[PostRow]] = {i: [] for i in ids}
    if ids:
        params = {"b_ids": ids}
        for row in _sqlite_rows(conn, _DESTINATIONS_OF, params):
            # _DESTINATION_COLUMNS: published_at (8) and next_retry_at (11) are datetimes.
            destinations[row[1]].append(
                (*row[:8], _sqlite_datetime(row[8]), row[9], row[10], _sqlite_datetime(row[11]))
            )
        for row in _sqlite_rows(conn, _MEDIA_OF, params):
            media_rows[row[0]].append(row)
    return PostRows(posts, destinations, media_rows)
