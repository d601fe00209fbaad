"""API.md §7.1: POST /posts — immediate, scheduled and draft posts, and every way to get it wrong
(nothing of a rejected post is left behind)."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from postengine.auth.scopes import Scope
from postengine.models import Post, PostDestination, PostMedia
from postengine.posts.publisher import Publisher
from tests.api.test_conventions import TIMESTAMP, assert_envelope
from tests.posts.helpers import add_account, add_media

POSTS = "/api/v1/posts"


def at(clock, seconds: float) -> str:
    return datetime.fromtimestamp(clock.time() + seconds, UTC).isoformat().replace("+00:00", "Z")


async def row_counts(db, org_id: str) -> tuple[int, int, int]:
    async with db.read() as session:
        posts = (await session.execute(select(func.count()).select_from(Post).where(Post.org_id == org_id))).scalar_one()
        dests = (
            await session.execute(select(func.count()).select_from(PostDestination).where(PostDestination.org_id == org_id))
        ).scalar_one()
        links = (
            await session.execute(
                select(func.count()).select_from(PostMedia).join(Post, Post.id == PostMedia.post_id).where(Post.org_id == org_id)
            )
        ).scalar_one()
    return posts, dests, links


async def test_scheduled_post_with_media(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    accounts = [
        await add_account(db, clock, tenant.org_id, "instagram", name="@acme"),
        await add_account(db, clock, tenant.org_id, "x"),
        await add_account(db, clock, tenant.org_id, "linkedin"),
    ]
    media = [await add_media(db, clock, tenant.org_id), await add_media(db, clock, tenant.org_id)]
    when = at(clock, 3600)
    response = await client.post(
        POSTS,
        headers=tenant.headers,
        json={"content": "Launch day", "account_ids": accounts, "media_ids": media, "scheduled_at": when,
              "timezone": "Europe/Lisbon"},
    )
    data = assert_envelope(response, 201)["data"]
    assert data["status"] == "scheduled"
    assert data["post_id"] == data["id"] and uuid.UUID(data["id"]).version == 4
    assert data["accounts_count"] == 3 and data["message"] == "Post scheduled for 3 accounts"
    assert data["account_ids"] == accounts
    assert data["media_ids"] == media  # order kept
    assert data["media"][0]["url"] == f"http://testserver/cdn/media/{media[0]}/original.webp"
    assert (data["media"][0]["width"], data["media"][0]["type"]) == (1080, "image")
    assert data["scheduled_for"] == when.replace("Z", "")[:23] + "Z" and TIMESTAMP.fullmatch(data["scheduled_for"])
    assert data["timezone"] == "Europe/Lisbon"
    dest = data["destinations"][0]
    assert dest["account_name"] == "@acme" and dest["platform"] == "instagram" and dest["status"] == "queued"
    assert dest["attempts"] == 0 and dest["platform_post_id"] is None and dest["published_at"] is None
    assert len({d["id"] for d in data["destinations"]}) == 3
    assert all(uuid.UUID(d["id"]).version == 4 for d in data["destinations"])
    assert response.headers["x-ratelimit-limit"] == "20"  # the posts minute window is the tightest
    assert "posts-1m" in response.headers["ratelimit-policy"]


async def test_immediate_and_draft_posts(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id, "x")
    now_post = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "now", "account_ids": [account]}), 201
    )["data"]
    assert now_post["status"] == "publishing" and now_post["scheduled_for"] is None
    assert now_post["message"] == "Post is publishing to 1 account"

    draft = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "later", "draft": True}), 201
    )["data"]
    assert draft["status"] == "draft" and draft["destinations"] == [] and draft["accounts_count"] == 0
    # A draft can be over a platform's limit: it is checked when it is scheduled.
    long_draft = await client.post(
        POSTS, headers=tenant.headers, json={"content": "x" * 300, "account_ids": [account], "draft": True}
    )
    assert assert_envelope(long_draft, 201)["data"]["destinations"][0]["status"] == "queued"
    async with db.read() as session:
        due = (
            await session.execute(
                select(PostDestination.due_at).where(PostDestination.post_id == long_draft.json()["data"]["id"])
            )
        ).scalar_one()
    assert due is None  # a draft's destinations are never claimed


async def test_scheduled_for_is_an_alias(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    response = await client.post(
        POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], "scheduled_for": at(clock, 60)}
    )
    assert assert_envelope(response, 201)["data"]["status"] == "scheduled"


@pytest.mark.parametrize("field", ["media", "media_id", "mediaId", "attachments", "url"])
async def test_misspelled_media_field(client: httpx.AsyncClient, make_tenant, db, clock, field: str) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    response = await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], field: ["med_x"]})
    body = assert_envelope(response, 400, "invalid_field_name")
    assert "did you mean media_ids?" in body["error"]["message"]
    assert await row_counts(db, tenant.org_id) == (0, 0, 0)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"content": "hi"}, "account_ids"),
        ({"account_ids": ["x"], "content": "hi"}, "account_ids.0"),
        ({"account_ids": [0], "content": "hi"}, "account_ids"),
        ({"account_ids": [2**40], "content": "hi"}, "account_ids"),
        ({"account_ids": [1], "content": "a\u0000b"}, "content"),
        ({"account_ids": [1], "content": "hi", "scheduled_at": "2026-01-01", "scheduled_for": "2027-01-01"}, "body"),
        ({"account_ids": [1]}, "content"),
        ({"account_ids": [1], "content": "hi", "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"account_ids": [1], "content": "hi", "scheduled_at": "0001-01-01T00:00:00+14:00"}, "scheduled_at"),
        ({"account_ids": [1], "content": "hi", "scheduled_for": "9999-12-31T23:59:59-01:00"}, "scheduled_for"),
        ({"account_ids": [1], "content": "hi", "timezone": "Mars/Olympus"}, "timezone"),
        ({"account_ids": [1], "content": "hi", "platform_content": {"myspace": {"content": "x"}}}, "platform_content.myspace.[key]"),
        ({"account_ids": [1], "content": "hi", "draft": "maybe"}, "draft"),
        ({"account_ids": [1], "content": 5}, "content"),
    ],
)
async def test_validation_errors(client: httpx.AsyncClient, make_tenant, payload: dict, field: str) -> None:
    tenant = await make_tenant()
    body = assert_envelope(await client.post(POSTS, headers=tenant.headers, json=payload), 400, "validation_error")
    fields = [e["field"] for e in body["error"]["details"]["errors"]]
    assert any(f == field or f.startswith(field.split(".")[0]) for f in fields), fields


async def test_scheduled_time_in_the_past(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    response = await client.post(
        POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], "scheduled_at": at(clock, -5)}
    )
    body = assert_envelope(response, 400, "validation_error")
    assert body["error"]["details"]["errors"][0]["field"] == "scheduled_at"
    assert "future" in body["error"]["message"]
    assert await row_counts(db, tenant.org_id) == (0, 0, 0)


async def test_unknown_and_foreign_accounts_are_404(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    mine = await add_account(db, clock, tenant.org_id)
    theirs = await add_account(db, clock, other.org_id)
    response = await client.post(
        POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [mine, theirs, 999_999]}
    )
    body = assert_envelope(response, 404, "not_found")
    assert body["error"]["details"]["account_ids"] == [theirs, 999_999]
    assert await row_counts(db, tenant.org_id) == (0, 0, 0)


async def test_media_rules(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    account = await add_account(db, clock, tenant.org_id)
    foreign = await add_media(db, clock, other.org_id)
    uploading = await add_media(db, clock, tenant.org_id, status="uploading")
    body = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], "media_ids": [foreign]}),
        404,
        "not_found",
    )
    assert body["error"]["details"]["media_ids"] == [foreign]
    body = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], "media_ids": [uploading]}),
        400,
        "media_not_ready",
    )
    assert body["error"]["details"]["media_ids"] == [uploading]
    assert await row_counts(db, tenant.org_id) == (0, 0, 0)


async def test_inactive_account_is_refused(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    disabled = await add_account(db, clock, tenant.org_id, active=False, name="@old")
    body = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [disabled]}),
        400,
        "validation_error",
    )
    assert "@old" in body["error"]["message"] and "disabled" in body["error"]["message"]


async def test_per_platform_rules_are_reported_all_at_once(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    ig = await add_account(db, clock, tenant.org_id, "instagram")
    yt = await add_account(db, clock, tenant.org_id, "youtube")
    threads = await add_account(db, clock, tenant.org_id, "threads")
    response = await client.post(
        POSTS,
        headers=tenant.headers,
        json={
            "content": "a" * 282,
            "account_ids": [x, ig, yt, threads],
            "platform_content": {"threads": {"content": "short enough"}},
        },
    )
    body = assert_envelope(response, 400, "post_validation_failed")
    errors = body["error"]["details"]["validation_errors"]
    by_platform = {(e["platform"], e["account_id"]): e["message"] for e in errors}
    assert by_platform[("x", x)] == "X posts are limited to 280 characters (this one has 282)."
    assert "Instagram posts need at least one image or video." in [e["message"] for e in errors if e["platform"] == "instagram"]
    assert "YouTube posts need a video." in [e["message"] for e in errors if e["platform"] == "youtube"]
    assert not [e for e in errors if e["platform"] == "threads"]  # its override fits
    assert await row_counts(db, tenant.org_id) == (0, 0, 0)


async def test_x_takes_at_most_four_images_and_override_length_counts(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    images = [await add_media(db, clock, tenant.org_id) for _ in range(5)]
    body = assert_envelope(
        await client.post(
            POSTS,
            headers=tenant.headers,
            json={"content": "ok", "account_ids": [x], "media_ids": images, "platform_content": {"x": {"content": "y" * 281}}},
        ),
        400,
        "post_validation_failed",
    )
    messages = [e["message"] for e in body["error"]["details"]["validation_errors"]]
    assert "X posts take at most 4 images (this one has 5)." in messages
    assert "X posts are limited to 280 characters (this one has 281)." in messages


async def test_scopes(client: httpx.AsyncClient, make_tenant) -> None:
    reader = await make_tenant(scopes=frozenset({Scope.READ}))
    assert_envelope(await client.post(POSTS, headers=reader.headers, json={"content": "x"}), 403, "insufficient_scope")
    writer = await make_tenant(scopes=frozenset({Scope.WRITE}))
    assert_envelope(await client.get(POSTS, headers=writer.headers), 403, "insufficient_scope")
    assert_envelope(await client.get(POSTS), 401, "unauthorized")


async def test_posts_rate_limit_minute_window(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    for _ in range(20):
        assert_envelope(await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account], "draft": True}), 201)
    body = assert_envelope(
        await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account]}), 429, "rate_limit_exceeded"
    )
    assert body["error"]["details"]["scope"] == "posts"
    # Reads do not use the posts windows.
    assert_envelope(await client.get(POSTS, headers=tenant.headers), 200)
    clock.advance(61)
    assert_envelope(await client.post(POSTS, headers=tenant.headers, json={"content": "hi", "account_ids": [account]}), 201)


async def test_publisher_ignores_drafts_and_future_posts(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    from postengine.accounts.connectors.registry import Connectors

    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    await client.post(POSTS, headers=tenant.headers, json={"content": "d", "account_ids": [account], "draft": True})
    await client.post(POSTS, headers=tenant.headers, json={"content": "s", "account_ids": [account], "scheduled_at": at(clock, 30)})
    publisher = Publisher(db, clock, Connectors(db, clock), "http://testserver/cdn")
    mine = [c for c in await publisher.claim() if c.org_id == tenant.org_id]
    assert mine == []
