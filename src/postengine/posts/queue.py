"""The publishing queue's SQL: claim due destinations under a lease, record each outcome, derive the
post's status. Synchronous Core, each function one short transaction through `Database.run`.

Claim (`claim`): `queued` destinations whose time has come and whose lease is free or expired, oldest
first, a batch at a time. On PostgreSQL the rows of the destination *and* its post are taken with
`FOR UPDATE … SKIP LOCKED`: several workers never wait for one another, and a post that an API
request is changing or deleting (which lock the post first) is skipped until that request commits.
On SQLite `BEGIN IMMEDIATE` serialises the whole claim across processes.

Renew (`renew_lease`): a claimed batch larger than the publisher's concurrency waits for free
slots, so a destination may start its send late; the publisher renews a lease that would run out
during the send, and sends nothing when the lease is no longer ours (another worker took it over).

Record (`record_*`): the post row is locked first (the same order as the API's changes), so two
workers finishing destinations of one post derive its status one after the other from committed
rows. Every update is conditional on our lease and on no `platform_post_id` being recorded: a worker
whose lease expired and was taken over records nothing.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from postengine.models import Media, Post, PostDestination, PostMedia, SocialAccount


@dataclass(frozen=True, slots=True)
class ClaimedMedia:
    id: str
    type: str
    content_type: str
    storage_key: str
    size: int
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A destination this worker holds the lease on, with everything needed to publish it."""

    id: str
    post_id: str
    org_id: str
    account_id: int
    platform: str
    attempts: int  # of the current budget, including this claim
    claims: int  # ever, including this one: > 1 means an earlier claim may have sent it already
    lease_until: datetime  # as claimed; `renew_lease` moves it
    account_name: str
    is_sandbox: bool
    is_active: bool
    content: str | None
    platform_content: dict[str, Any]
    media: tuple[ClaimedMedia, ...]


def claim(conn: Connection, *, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
    D = PostDestination
    due = (
        select(D.id, D.post_id)
        .join(Post, Post.id == D.post_id)
        .where(
            D.status == "queued",
            D.due_at <= now,
            D.platform_post_id.is_(None),
            or_(D.lease_until.is_(None), D.lease_until < now),
        )
        .order_by(D.due_at, D.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=[D, Post])
    )
    rows = list(conn.execute(due))
    if not rows:
        return []
    ids = [row.id for row in rows]
    post_ids = sorted({row.post_id for row in rows})
    conn.execute(
        update(D)
        .where(D.id.in_(ids))
        .values(
            lease_owner=owner,
            lease_until=lease_until,
            attempts=D.attempts + 1,
            claims=D.claims + 1,
            updated_at=now,
        )
    )
    conn.execute(
        update(Post)
        .where(Post.id.in_(post_ids), Post.status == "scheduled")
        .values(status="publishing", updated_at=now)
    )
    media: dict[str, list[ClaimedMedia]] = {post_id: [] for post_id in post_ids}
    for m in conn.execute(
        select(
            PostMedia.post_id,
            Media.id,
            Media.type,
            Media.content_type,
            Media.storage_key,
            Media.size,
            Media.width,
            Media.height,
        )
        .join(Media, Media.id == PostMedia.media_id)
        .where(PostMedia.post_id.in_(post_ids))
        .order_by(PostMedia.post_id, PostMedia.position)
    ):
        media[m.post_id].append(
            ClaimedMedia(m.id, m.type, m.content_type, m.storage_key, m.size, m.width, m.height)
        )
    details = conn.execute(
        select(
            D.id,
            D.post_id,
            D.org_id,
            D.account_id,
            D.platform,
            D.attempts,
            D.claims,
            SocialAccount.account_name,
            SocialAccount.is_sandbox,
            SocialAccount.is_active,
            Post.content,
            Post.platform_content,
        )
        .join(Post, Post.id == D.post_id)
        .join(SocialAccount, SocialAccount.id == D.account_id)
        .where(D.id.in_(ids))
        .order_by(D.due_at, D.id)
    )
    return [
        Claimed(
            id=row.id,
            post_id=row.post_id,
            org_id=row.org_id,
            account_id=row.account_id,
            platform=row.platform,
            attempts=row.attempts,
            claims=row.claims,
            lease_until=lease_until,
            account_name=row.account_name,
            is_sandbox=row.is_sandbox,
            is_active=row.is_active,
            content=row.content,
            platform_content=row.platform_content or {},
            media=tuple(media[row.post_id]),
        )
        for row in details
    ]


# Built once: these run once per destination, where building and cache-keying a statement would
# cost more than executing it.
_D = PostDestination
_OURS = (
    _D.id == bindparam("b_id"),
    _D.lease_owner == bindparam("b_owner"),
    _D.status == "queued",
    _D.platform_post_id.is_(None),
)
_LOCK_POST = select(Post.id).where(Post.id == bindparam("b_post_id")).with_for_update()
_PUBLISHED = (
    update(_D)
    .where(*_OURS)
    .values(
        status="published",
        platform_post_id=bindparam("b_platform_post_id"),
        platform_post_url=bindparam("b_platform_post_url"),
        published_at=bindparam("b_now"),
        error=None,
        next_retry_at=None,
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
_RENEW = update(_D).where(*_OURS).values(lease_until=bindparam("b_lease_until"))
_RETRY = (
    update(_D)
    .where(*_OURS)
    .values(
        due_at=bindparam("b_due_at"),
        next_retry_at=bindparam("b_due_at"),
        error=bindparam("b_error"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
_FAILED = (
    update(_D)
    .where(*_OURS)
    .values(
        status="failed",
        error=bindparam("b_error"),
        next_retry_at=None,
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
_ACCOUNT_PUBLISHED = (
    update(SocialAccount)
    .where(SocialAccount.id == bindparam("b_account_id"))
    .values(last_published_at=bindparam("b_now"))
)
_COUNTS = (
    select(_D.status, func.count().label("n")).where(_D.post_id == bindparam("b_post_id")).group_by(_D.status)
)
_SET_POST_STATUS = (
    update(Post)
    .where(Post.id == bindparam("b_post_id"), Post.status.not_in(("draft", "scheduled")))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)


def record_published(
    conn: Connection,
    claimed: Claimed,
    *,
    owner: str,
    now: datetime,
    platform_post_id: str,
    platform_post_url: str | None,
) -> bool:
    conn.execute(_LOCK_POST, {"b_post_id": claimed.post_id})
    result = conn.execute(
        _PUBLISHED,
        {
            "b_id": claimed.id,
            "b_owner": owner,
            "b_platform_post_id": platform_post_id,
            "b_platform_post_url": platform_post_url,
            "b_now": now,
        },
    )
    if result.rowcount != 1:
        return False
    conn.execute(_ACCOUNT_PUBLISHED, {"b_account_id": claimed.account_id, "b_now": now})
    derive_status(conn, claimed.post_id, now)
    return True


def renew_lease(conn: Connection, claimed: Claimed, *, owner: str, lease_until: datetime) -> bool:
    """Extend our lease; False when it is no longer ours (taken over, or already recorded)."""
    result = conn.execute(_RENEW, {"b_id": claimed.id, "b_owner": owner, "b_lease_until": lease_until})
    return result.rowcount == 1


def record_retry(
    conn: Connection, claimed: Claimed, *, owner: str, now: datetime, due_at: datetime, error: str
) -> bool:
    result = conn.execute(
        _RETRY, {"b_id": claimed.id, "b_owner": owner, "b_due_at": due_at, "b_error": error, "b_now": now}
    )
    return result.rowcount == 1


def record_failed(conn: Connection, claimed: Claimed, *, owner: str, now: datetime, error: str) -> bool:
    conn.execute(_LOCK_POST, {"b_post_id": claimed.post_id})
    result = conn.execute(_FAILED, {"b_id": claimed.id, "b_owner": owner, "b_error": error, "b_now": now})
    if result.rowcount != 1:
        return False
    derive_status(conn, claimed.post_id, now)
    return True


def derive_status(conn: Connection, post_id: str, now: datetime) -> str | None:
    """The post's status from its destinations: any queued → publishing; all published → published;
    all failed → failed; otherwise partially_failed."""
    counts: dict[str, int] = {row.status: row.n for row in conn.execute(_COUNTS, {"b_post_id": post_id})}
    if not counts:
        return None
    if counts.get("queued"):
        status = "publishing"
    elif not counts.get("failed"):
        status = "published"
    elif not counts.get("published"):
        status = "failed"
    else:
        status = "partially_failed"
    conn.execute(_SET_POST_STATUS, {"b_post_id": post_id, "b_status": status, "b_now": now})
    return status
