"""Every SQL statement of the media library: synchronous Core, run through `Database.run`/`run_read`.

Every statement that a client's request leads to is scoped by `org_id`; only the signed upload URL
(which carries no API key: its signature is the authority) and the sweeper look media up by id alone.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, case, delete, func, insert, select, update

from postengine.credits.plans import PLANS, Plan
from postengine.media.kinds import MediaStatus
from postengine.models import Media, Organization, Post, PostMedia

# The columns of the media object (API.md §5.1), in the order `views.media_object` reads them.
OBJECT_COLUMNS = (
    Media.id,
    Media.type,
    Media.status,
    Media.filename,
    Media.content_type,
    Media.size,
    Media.width,
    Media.height,
    Media.duration,
    Media.storage_key,
    Media.thumbnail_key,
    Media.source,
    Media.ai_model,
    Media.ai_prompt,
    Media.ai_aspect_ratio,
    Media.created_at,
)
MediaRow = Row[Any]
ObjectRow = Sequence[Any]  # a row of OBJECT_COLUMNS: a Row, or a plain tuple from `_list_sqlite`
# Posts in these states still need their media (API.md §5.2, §7.4).
POST_STATES_USING_MEDIA = ("scheduled", "publishing")

_GET = select(*OBJECT_COLUMNS).where(Media.org_id == bindparam("b_org_id"), Media.id == bindparam("b_id"))
_ADD_STORAGE = (
    update(Organization)
    .where(
        Organization.id == bindparam("b_org_id"),
        Organization.storage_used_bytes + bindparam("b_size") <= bindparam("b_limit"),
    )
    .values(storage_used_bytes=Organization.storage_used_bytes + bindparam("b_size"))
)
_RELEASE_STORAGE = (
    update(Organization)
    .where(Organization.id == bindparam("b_org_id"))
    .values(
        # Never below zero, whatever happened to the count before (GREATEST is not in SQLite).
        storage_used_bytes=case(
            (
                Organization.storage_used_bytes >= bindparam("b_size"),
                Organization.storage_used_bytes - bindparam("b_size"),
            ),
            else_=0,
        )
    )
)


def insert_media(conn: Connection, **values: Any) -> None:
    conn.execute(insert(Media), values)


def get_media(conn: Connection, org_id: str, media_id: str) -> MediaRow | None:
    return conn.execute(_GET, {"b_org_id": org_id, "b_id": media_id}).first()


def get_upload(conn: Connection, media_id: str) -> Row[tuple[str, str, str, str, int, str]] | None:
    """An upload in any organization, by id: for the signed upload URL only."""
    return conn.execute(
        select(Media.id, Media.org_id, Media.storage_key, Media.content_type, Media.size, Media.status).where(
            Media.id == media_id
        )
    ).first()


def list_media(
    conn: Connection,
    org_id: str,
    *,
    media_type: str | None,
    source: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ObjectRow], int]:
    """One page, newest first, and the total that matches the filters (one snapshot: the caller's
    transaction)."""
    statements = _list_statements(media_type is not None, source is not None, status is not None)
    params = {
        "b_org_id": org_id,
        "b_type": media_type,
        "b_source": source,
        "b_status": status,
        "b_limit": limit,
        "b_offset": offset,
    }
    if conn.dialect.name == "sqlite":
        return _list_sqlite(conn, statements, params, limit, offset)
    rows: list[ObjectRow] = list(conn.execute(statements.page, params).all())
    if _page_gives_total(rows, limit, offset):
        return rows, offset + len(rows)
    total: int = conn.execute(statements.count, params).scalar_one()
    return rows, total


def _page_gives_total(rows: Sequence[Any], limit: int, offset: int) -> bool:
    """A short page that is not past the end is the last one: its end is the total (same snapshot),
    and the COUNT can be skipped."""
    return len(rows) < limit and (len(rows) > 0 or offset == 0)


@dataclass
class _ListStatements:
    count: Select[Any]
    page: Select[Any]
    # SQLite: (SQL, parameter names in order), compiled once; see `_list_sqlite`.
    sqlite: tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] | None = None


@functools.cache
def _list_statements(by_type: bool, by_source: bool, by_status: bool) -> _ListStatements:
    """Built once per combination of filters: SQLAlchemy then reuses the statement's cache key and
    compiled form, which costs more than the SQLite query itself when built per request."""
    conditions = [Media.org_id == bindparam("b_org_id")]
    if by_type:
        conditions.append(Media.type == bindparam("b_type"))
    if by_source:
        conditions.append(Media.source == bindparam("b_source"))
    if by_status:
        conditions.append(Media.status == bindparam("b_status"))
    count = select(func.count()).select_from(Media).where(*conditions)
    page = (
        select(*OBJECT_COLUMNS)
        .where(*conditions)
        .order_by(Media.created_at.desc(), Media.id.desc())
        .limit(bindparam("b_limit"))
        .offset(bindparam("b_offset"))
    )
    return _ListStatements(count, page)


def _list_sqlite(
    conn: Connection, statements: _ListStatements, params: dict[str, Any], limit: int, offset: int
) -> tuple[list[ObjectRow], int]:
    """The embedded mode's hottest read (`GET /media`), on the plain sqlite3 connection: SQLAlchemy's
    per-execution work (about 0.1 ms a statement) is several times the query's own cost here. The
    SQL is still the Core statements above, compiled once; only the row conversion is by hand
    (`created_at` is stored as SQLAlchemy's SQLite DateTime text, always UTC)."""
    if statements.sqlite is None:
        compiled = [s.compile(dialect=conn.dialect) for s in (statements.count, statements.page)]
        statements.sqlite = (
            (str(compiled[0]), tuple(compiled[0].positiontup or ())),
            (str(compiled[1]), tuple(compiled[1].positiontup or ())),
        )
    (count_sql, count_names), (page_sql, page_names) = statements.sqlite
    driver = conn.connection.driver_connection
    assert driver is not None
    found = driver.execute(page_sql, tuple(params[n] for n in page_names)).fetchall()
    rows: list[ObjectRow] = [(*row[:-1], _sqlite_datetime(row[-1])) for row in found]
    if _page_gives_total(rows, limit, offset):
        return rows, offset + len(rows)
    total: int = driver.execute(count_sql, tuple(params[n] for n in count_names)).fetchone()[0]
    return rows, total


def _sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def storage_of(conn: Connection, org_id: str) -> tuple[int, int]:
    """(bytes used, the plan's limit)."""
    plan, used = conn.execute(
        select(Organization.plan, Organization.storage_used_bytes).where(Organization.id == org_id)
    ).one()
    return used, PLANS[Plan(plan)].storage_bytes


def add_storage(conn: Connection, org_id: str, size: int) -> tuple[bool, int, int]:
    """Count `size` more bytes for the organization if that stays within its plan: (done, used, limit).
    A conditional UPDATE, so concurrent completions cannot together pass the limit."""
    used, limit = storage_of(conn, org_id)
    result = conn.execute(_ADD_STORAGE, {"b_org_id": org_id, "b_size": size, "b_limit": limit})
    return result.rowcount == 1, used, limit


def release_storage(conn: Connection, org_id: str, size: int) -> None:
    conn.execute(_RELEASE_STORAGE, {"b_org_id": org_id, "b_size": size})


def mark_ready(conn: Connection, org_id: str, media_id: str, **values: Any) -> bool:
    """`uploading` → `ready`, once; False if another request completed (or failed) it first.
    `upload_expires_at` stays: the sweeper deletes the staging key after it (`finished_uploads`)."""
    result = conn.execute(
        update(Media)
        .where(Media.org_id == org_id, Media.id == media_id, Media.status == MediaStatus.UPLOADING)
        .values(status=MediaStatus.READY, **values)
    )
    return result.rowcount == 1


def mark_failed(conn: Connection, org_id: str, media_id: str) -> bool:
    result = conn.execute(
        update(Media)
        .where(Media.org_id == org_id, Media.id == media_id, Media.status == MediaStatus.UPLOADING)
        .values(status=MediaStatus.FAILED)
    )
    return result.rowcount == 1


def finished_uploads(conn: Connection, cutoff: datetime, limit: int = 100) -> list[Row[tuple[str, str]]]:
    """Completed or failed uploads whose URL expired before `cutoff` and whose staging key has not
    been cleared yet: (id, storage_key)."""
    rows = conn.execute(
        select(Media.id, Media.storage_key)
        .where(Media.status != MediaStatus.UPLOADING, Media.upload_expires_at < cutoff)
        .order_by(Media.upload_expires_at)
        .limit(limit)
    ).all()
    return list(rows)


def forget_upload(conn: Connection, media_id: str) -> None:
    """The staging key of this finished upload is gone: the sweeper need not look at it again."""
    conn.execute(
        update(Media)
        .where(Media.id == media_id, Media.status != MediaStatus.UPLOADING)
        .values(upload_expires_at=None)
    )


def lock_media(conn: Connection, org_id: str, media_id: str) -> Row[tuple[str, int, str, str | None]] | None:
    """The row to delete, locked on PostgreSQL until the transaction ends: a post being created with
    it either committed before (and is seen by `posts_using`) or waits and then fails its foreign key."""
    return conn.execute(
        select(Media.status, Media.size, Media.storage_key, Media.thumbnail_key)
        .where(Media.org_id == org_id, Media.id == media_id)
        .with_for_update()
    ).first()


def posts_using(conn: Connection, org_id: str, media_id: str) -> list[str]:
    rows = conn.execute(
        select(Post.id)
        .join(PostMedia, PostMedia.post_id == Post.id)
        .where(
            PostMedia.media_id == media_id,
            Post.org_id == org_id,
            Post.status.in_(POST_STATES_USING_MEDIA),
        )
        .distinct()
        .limit(20)
    ).all()
    return [row[0] for row in rows]


def delete_media(conn: Connection, org_id: str, media_id: str) -> bool:
    result = conn.execute(delete(Media).where(Media.org_id == org_id, Media.id == media_id))
    return result.rowcount == 1


def abandoned_uploads(
    conn: Connection, cutoff: datetime, limit: int = 100
) -> list[Row[tuple[str, str, str, str | None]]]:
    rows = conn.execute(
        select(Media.id, Media.org_id, Media.storage_key, Media.thumbnail_key)
        .where(Media.status == MediaStatus.UPLOADING, Media.upload_expires_at < cutoff)
        .order_by(Media.upload_expires_at)
        .limit(limit)
    ).all()
    return list(rows)


def delete_abandoned(conn: Connection, media_id: str, cutoff: datetime) -> bool:
    """Delete an upload that is still unfinished past `cutoff` (a concurrent completion wins)."""
    result = conn.execute(
        delete(Media).where(
            Media.id == media_id,
            Media.status == MediaStatus.UPLOADING,
            Media.upload_expires_at < cutoff,
        )
    )
    return result.rowcount == 1
