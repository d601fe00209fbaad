"""The rules of `/posts` (API.md §7): creating, changing, deleting and retrying posts.

Every change runs as one short transaction that validates before it writes, so a rejected request
leaves nothing behind. Publishing itself is the publisher's (`publisher.py`); this module only puts
destinations in its queue and wakes it.

PATCH and drafts: a draft stays a draft until a PATCH sends `"draft": false` (a `scheduled_at` alone
does not publish a draft), and `"draft": true` takes a scheduled post back to draft. Per-platform
rules are checked whenever a post is (or becomes) a non-draft; a draft may hold work in progress
that does not fit yet, but its accounts and media must exist.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from postengine.auth.authenticator import Caller
from postengine.context import AppContext
from postengine.errors import ValidationFailed
from postengine.idempotency import Recorder
from postengine.kit import listcache
from postengine.kit.clock import to_datetime
from postengine.kit.pagination import pagination
from postengine.posts import presenter, publisher, repository
from postengine.posts.errors import (
    MEDIA_FIELD_MISSPELLINGS,
    AccountsNotFound,
    InvalidFieldName,
    MediaNotFound,
    MediaNotReady,
    PostAlreadyPublished,
    PostNotFound,
    PostValidationFailed,
)
from postengine.posts.repository import EDITABLE, PostFilters
from postengine.posts.schemas import CreatePostRequest, Platform, PlatformOverride, UpdatePostRequest
from postengine.posts.validation import MediaFacts, Target, validate_post


def reject_misspellings(payload: dict[str, Any]) -> None:
    """`media` and friends instead of `media_ids` would otherwise be silently ignored (API.md §1.4)."""
    if "media_ids" in payload:
        return
    for name in MEDIA_FIELD_MISSPELLINGS:
        if name in payload:
            raise InvalidFieldName(name, "media_ids")


def parse_post_id(value: str) -> str:
    """A post id is a UUID; anything else names no post (404, as for another org's post)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise PostNotFound() from None


@dataclass(frozen=True, slots=True)
class _Draft:
    """The post as it will be written: after a POST, or after a PATCH applied to the stored post."""

    content: str | None
    account_ids: list[int]
    media_ids: list[str]
    scheduled_for: datetime | None
    timezone: str
    platform_content: dict[Platform, PlatformOverride]
    draft: bool

    @property
    def status(self) -> str:
        if self.draft:
            return "draft"
        return "scheduled" if self.scheduled_for is not None else "publishing"

    def due_at(self, now: datetime) -> datetime | None:
        return None if self.draft else (self.scheduled_for or now)

    def platform_content_json(self) -> dict[str, Any]:
        return {str(k): v.model_dump(exclude_none=True) for k, v in self.platform_content.items()}


def _check_shape(post: _Draft, now: datetime, *, schedule_changed: bool) -> None:
    errors: list[dict[str, str]] = []
    if not post.draft and not post.account_ids:
        errors.append(
            {
                "field": "account_ids",
                "message": "account_ids must list at least one account (or send draft: true)",
            }
        )
    has_text = bool(post.content and post.content.strip()) or any(
        o.content and o.content.strip() for o in post.platform_content.values()
    )
    if not has_text and not post.media_ids:
        errors.append(
            {
                "field": "content",
                "message": "content is required unless media_ids or platform_content gives content",
            }
        )
    if not post.draft and schedule_changed and post.scheduled_for is not None and post.scheduled_for <= now:
        errors.append(
            {
                "field": "scheduled_at",
                "message": "scheduled_at must be in the future (omit it to publish now)",
            }
        )
    if errors:
        raise ValidationFailed(errors)


def _check_references(conn: Connection, org_id: str, post: _Draft) -> dict[int, Any]:
    """Accounts and media exist in the caller's organisation and can be used; then, for a post that
    will publish, every platform rule. Returns the accounts by id."""
    accounts = repository.accounts(conn, org_id, post.account_ids)
    missing_accounts = [i for i in post.account_ids if i not in accounts]
    if missing_accounts:
        raise AccountsNotFound(missing_accounts)
    media = repository.media(conn, org_id, post.media_ids)
    missing_media = [i for i in post.media_ids if i not in media]
    if missing_media:
        raise MediaNotFound(missing_media)
    not_ready = [(i, media[i].status) for i in post.media_ids if media[i].status != "ready"]
    if not_ready:
        raise MediaNotReady(not_ready)
    inactive = [accounts[i] for i in post.account_ids if not accounts[i].is_active]
    if inactive:
        raise ValidationFailed(
            [
                {
                    "field": "account_ids",
                    "message": f"Account {a.id} ({a.account_name} on {a.platform}) is disabled; "
                    "enable or reconnect it, or leave it out.",
                }
                for a in inactive
            ]
        )
    if not post.draft:
        problems = validate_post(
            post.content,
            [Target(i, Platform(accounts[i].platform)) for i in post.account_ids],
            [MediaFacts(m.id, m.type, m.size, m.width, m.height) for m in (media[i] for i in post.media_ids)],
            post.platform_content,
        )
        if problems:
            raise PostValidationFailed(problems)
    return accounts


def _destination_rows(
    post_id: str, org_id: str, post: _Draft, accounts: dict[int, Any], account_ids: list[int], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "post_id": post_id,
            "org_id": org_id,
            "account_id": account_id,
            "platform": accounts[account_id].platform,
            "status": "queued",
            "due_at": post.due_at(now),
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for account_id in account_ids
    ]


def _message(status: str, count: int) -> str:
    accounts = f"{count} account{'s' if count != 1 else ''}"
    if status == "draft":
        return f"Draft saved for {accounts}"
    if status == "publishing":
        return f"Post is publishing to {accounts}"
    return f"Post scheduled for {accounts}"


async def create_post(
    ctx: AppContext, caller: Caller, body: CreatePostRequest, record: Recorder | None = None
) -> dict[str, Any]:
    now = to_datetime(ctx.clock.time())
    post = _Draft(
        content=body.content,
        account_ids=body.account_ids or [],
        media_ids=body.media_ids or [],
        scheduled_for=body.scheduled_at,
        timezone=body.timezone or "UTC",
        platform_content=body.platform_content or {},
        draft=bool(body.draft),
    )
    _check_shape(post, now, schedule_changed=True)
    post_id = str(uuid.uuid4())
    count = len(post.account_ids)

    def write(conn: Connection) -> dict[str, Any]:
        accounts = _check_references(conn, caller.org_id, post)
        repository.insert_post(
            conn,
            id=post_id,
            org_id=caller.org_id,
            api_key_id=caller.key_id,
            status=post.status,
            content=post.content,
            scheduled_for=post.scheduled_for,
            timezone=post.timezone,
            platform_content=post.platform_content_json(),
            created_at=now,
            updated_at=now,
        )
        repository.replace_post_media(conn, post_id, post.media_ids, fresh=True)
        repository.insert_destinations(
            conn, _destination_rows(post_id, caller.org_id, post, accounts, post.account_ids, now)
        )
        rows = repository.load_posts(conn, caller.org_id, [post_id])
        data = presenter.post(rows.posts[0], rows, ctx.settings.media_base_url)
        data = {**data, "accounts_count": count, "message": _message(post.status, count)}
        if record is not None:  # the Idempotency-Key's response, committed with the post
            record(conn, 201, data)
        return data

    data = await ctx.db.run(write)
    listcache.invalidate(ctx.db, listcache.POSTS, caller.org_id)
    if post.status == "publishing":
        publisher.wake(ctx.db)
    return data


async def get_post(ctx: AppContext, caller: Caller, post_id: str) -> dict[str, Any]:
    post_id = parse_post_id(post_id)
    rows = await ctx.db.run_read(lambda conn: repository.load_posts(conn, caller.org_id, [post_id]))
    if not rows.posts:
        raise PostNotFound()
    return presenter.post(rows.posts[0], rows, ctx.settings.media_base_url)


async def list_posts(
    ctx: AppContext, caller: Caller, filters: PostFilters, limit: int, offset: int
) -> orjson.Fragment:
    """`{posts, pagination}`, already serialised; from `listcache` when fresh."""

    async def compute() -> orjson.Fragment:
        total, rows = await ctx.db.run_read(
            lambda conn: repository.list_posts(conn, caller.org_id, filters, limit, offset)
        )
        posts = presenter.posts(rows, ctx.settings.media_base_url)
        return orjson.Fragment(orjson.dumps({"posts": posts, "pagination": pagination(limit, offset, total)}))

    return await listcache.for_db(ctx.db, listcache.POSTS).page(
        caller.org_id, (filters, limit, offset), compute
    )


async def update_post(
    ctx: AppContext, caller: Caller, post_id: str, body: UpdatePostRequest
) -> dict[str, Any]:
    post_id = parse_post_id(post_id)
    now = to_datetime(ctx.clock.time())
    sent = body.model_fields_set

    def write(conn: Connection) -> tuple[str, repository.PostRows]:
        stored = repository.post_for_update(conn, caller.org_id, post_id)
        if stored is None:
            raise PostNotFound()
        if stored.status not in EDITABLE:
            raise PostAlreadyPublished(stored.status)
        current_accounts = [row.account_id for row in repository.destination_accounts(conn, post_id)]
        overrides = {
            Platform(k): PlatformOverride.model_validate(v)
            for k, v in (stored.platform_content or {}).items()
        }
        was_draft = stored.status == "draft"
        post = _Draft(
            content=body.content if "content" in sent else stored.content,
            account_ids=(body.account_ids or []) if "account_ids" in sent else current_accounts,
            media_ids=(body.media_ids or [])
            if "media_ids" in sent
            else repository.post_media_ids(conn, post_id),
            scheduled_for=body.scheduled_at if "scheduled_at" in sent else stored.scheduled_for,
            timezone=(body.timezone or "UTC") if "timezone" in sent else stored.timezone,
            platform_content=(body.platform_content or {}) if "platform_content" in sent else overrides,
            draft=body.draft if body.draft is not None else was_draft,
        )
        _check_shape(post, now, schedule_changed="scheduled_at" in sent or (was_draft and not post.draft))
        accounts = _check_references(conn, caller.org_id, post)

        removed = [i for i in current_accounts if i not in post.account_ids]
        added = [i for i in post.account_ids if i not in current_accounts]
        repository.delete_destinations(conn, post_id, removed)
        repository.reschedule_destinations(conn, post_id, post.due_at(now), now)
        repository.insert_destinations(
            conn, _destination_rows(post_id, caller.org_id, post, accounts, added, now)
        )
        if "media_ids" in sent:
            repository.replace_post_media(conn, post_id, post.media_ids)
        repository.update_post(
            conn,
            post_id,
            status=post.status,
            content=post.content,
            scheduled_for=post.scheduled_for,
            timezone=post.timezone,
            platform_content=post.platform_content_json(),
            updated_at=now,
        )
        return post.status, repository.load_posts(conn, caller.org_id, [post_id])

    status, rows = await ctx.db.run(write)
    listcache.invalidate(ctx.db, listcache.POSTS, caller.org_id)
    if status == "publishing":
        publisher.wake(ctx.db)
    return presenter.post(rows.posts[0], rows, ctx.settings.media_base_url)


async def delete_post(ctx: AppContext, caller: Caller, post_id: str) -> dict[str, Any]:
    post_id = parse_post_id(post_id)

    def write(conn: Connection) -> None:
        stored = repository.post_for_update(conn, caller.org_id, post_id)
        if stored is None:
            raise PostNotFound()
        if not repository.delete_editable_post(conn, caller.org_id, post_id):
            raise PostAlreadyPublished(stored.status)

    await ctx.db.run(write)
    listcache.invalidate(ctx.db, listcache.POSTS, caller.org_id)
    return {"post_id": post_id, "deleted": True}


async def post_results(ctx: AppContext, caller: Caller, post_id: str) -> dict[str, Any]:
    post = await get_post(ctx, caller, post_id)
    return {"post_id": post["id"], "post_status": post["status"], "results": post["destinations"]}


async def retry_post(ctx: AppContext, caller: Caller, post_id: str) -> dict[str, Any]:
    post_id = parse_post_id(post_id)
    now = to_datetime(ctx.clock.time())

    def write(conn: Connection) -> list[Any]:
        stored = repository.post_for_update(conn, caller.org_id, post_id)
        if stored is None:
            raise PostNotFound()
        retried = repository.retry_failed(conn, post_id, now)
        if retried:
            repository.update_post(conn, post_id, status="publishing", updated_at=now)
        return retried

    retried = await ctx.db.run(write)
    if retried:
        listcache.invalidate(ctx.db, listcache.POSTS, caller.org_id)
        publisher.wake(ctx.db)
    return {
        "retried_count": len(retried),
        "destinations": [{"id": row.id, "platform": row.platform, "new_status": "queued"} for row in retried],
    }
