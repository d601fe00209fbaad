"""API.md §7.2: listing, reading, changing, deleting, results and retry of posts."""

import httpx
import pytest
from sqlalchemy import func, select, update

from postengine.models import PostDestination, PostMedia
from tests.api.test_conventions import assert_envelope
from tests.api.test_posts import POSTS, at
from tests.posts.helpers import add_account, add_media


async def create(client, tenant, **body) -> dict:
    return assert_envelope(await client.post(POSTS, headers=tenant.headers, json=body), 201)["data"]


async def test_list_filters_sort_and_pagination(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    x = await add_account(db, clock, tenant.org_id, "x")
    li = await add_account(db, clock, tenant.org_id, "linkedin")
    await create(client, other, content="theirs", draft=True)
    a = await create(client, tenant, content="Spring 100% SALE", account_ids=[x], scheduled_at=at(clock, 7200))
    clock.advance(1)
    b = await create(client, tenant, content="summer news", account_ids=[li], scheduled_at=at(clock, 3600))
    clock.advance(1)
    c = await create(client, tenant, content="a draft for the CAFÉ ÉTÉ", draft=True)

    async def ids(query: str) -> list[str]:
        body = assert_envelope(await client.get(f"{POSTS}?{query}", headers=tenant.headers), 200)
        return [p["id"] for p in body["data"]["posts"]]

    assert await ids("") == [c["id"], b["id"], a["id"]]  # newest first
    assert await ids("order=asc") == [a["id"], b["id"], c["id"]]
    assert await ids("sort=scheduled_for&order=asc") == [b["id"], a["id"], c["id"]]  # unscheduled last
    assert await ids("status=scheduled") == [b["id"], a["id"]]
    assert await ids("status=draft,scheduled") == [c["id"], b["id"], a["id"]]
    assert await ids("platform=linkedin") == [b["id"]]
    assert await ids("platform=x,linkedin") == [b["id"], a["id"]]
    assert await ids(f"account_id={x}") == [a["id"]]
    assert await ids("search=sale") == [a["id"]]
    assert await ids("search=caf%C3%A9%20%C3%A9t%C3%A9") == [c["id"]]  # not only ASCII folds (SQLite too)
    assert await ids("search=100%25") == [a["id"]]  # % is a character, not a wildcard
    assert await ids("search=%25") == [a["id"]]
    assert await ids("search=_") == []
    after = at(clock, 5000).replace("Z", "%2B00:00")
    assert await ids(f"scheduled_after={after}") == [a["id"]]
    assert await ids(f"scheduled_before={after}") == [b["id"]]

    page = assert_envelope(await client.get(f"{POSTS}?limit=2&offset=1", headers=tenant.headers), 200)["data"]
    assert [p["id"] for p in page["posts"]] == [b["id"], a["id"]]
    assert page["pagination"] == {"limit": 2, "offset": 1, "total": 3, "has_more": False}
    assert page["posts"][0]["destinations"][0]["account_name"]


@pytest.mark.parametrize(
    "query",
    ["status=sent", "platform=myspace", "limit=0", "limit=101", "offset=-1", "sort=title", "order=up",
     "account_id=abc", "account_id=0", "account_id=99999999999", "offset=100000000000000000000", "limit=", "search=a%00b", "scheduled_after=yesterday", "search=" + "a" * 201,
     # an offset that moves the time out of datetime's years 1-9999
     "scheduled_after=0001-01-01T00:00:00%2B14:00", "scheduled_before=9999-12-31T23:59:59-01:00"],
)
async def test_list_bad_queries_are_400(client: httpx.AsyncClient, make_tenant, query: str) -> None:
    tenant = await make_tenant()
    assert_envelope(await client.get(f"{POSTS}?{query}", headers=tenant.headers), 400, "validation_error")


async def test_get_and_tenancy(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    account = await add_account(db, clock, tenant.org_id)
    post = await create(client, tenant, content="hi", account_ids=[account], scheduled_at=at(clock, 60))
    got = assert_envelope(await client.get(f"{POSTS}/{post['id']}", headers=tenant.headers), 200)["data"]
    assert got["id"] == post["id"] and got["destinations"] == post["destinations"]
    assert "accounts_count" not in got
    results = assert_envelope(await client.get(f"{POSTS}/{post['id']}/results", headers=tenant.headers), 200)["data"]
    assert results == {"post_id": post["id"], "post_status": "scheduled", "results": post["destinations"]}
    for method, suffix in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/results"), ("POST", "/retry")]:
        kwargs = {"json": {"content": "mine now"}} if method == "PATCH" else {}
        response = await client.request(method, f"{POSTS}/{post['id']}{suffix}", headers=other.headers, **kwargs)
        assert_envelope(response, 404, "not_found")
    assert_envelope(await client.get(f"{POSTS}/not-a-uuid", headers=tenant.headers), 404, "not_found")
    assert_envelope(await client.get(f"{POSTS}/{post['id'].upper()}", headers=tenant.headers), 200)


async def test_patch_replaces_fields_with_the_same_validation(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    li = await add_account(db, clock, tenant.org_id, "linkedin")
    m1, m2 = await add_media(db, clock, tenant.org_id), await add_media(db, clock, tenant.org_id)
    post = await create(client, tenant, content="v1", account_ids=[x], media_ids=[m1], scheduled_at=at(clock, 600))
    kept_id = post["destinations"][0]["id"]

    url = f"{POSTS}/{post['id']}"
    bad = await client.patch(url, headers=tenant.headers, json={"content": "z" * 300})
    assert_envelope(bad, 400, "post_validation_failed")
    assert_envelope(await client.patch(url, headers=tenant.headers, json={"media": [m2]}), 400, "invalid_field_name")
    assert_envelope(await client.patch(url, headers=tenant.headers, json={"scheduled_for": at(clock, -1)}), 400, "validation_error")
    assert_envelope(await client.patch(url, headers=tenant.headers, json={"account_ids": [x, 424242]}), 404, "not_found")

    new_time = at(clock, 1200)
    patched = assert_envelope(
        await client.patch(
            url,
            headers=tenant.headers,
            json={"content": "v2", "account_ids": [x, li], "media_ids": [m2, m1], "scheduled_for": new_time, "timezone": "Asia/Tokyo"},
        ),
        200,
    )["data"]
    assert patched["content"] == "v2" and patched["timezone"] == "Asia/Tokyo" and patched["status"] == "scheduled"
    assert patched["account_ids"] == [x, li] and patched["media_ids"] == [m2, m1]
    assert patched["destinations"][0]["id"] == kept_id  # unchanged accounts keep their destination
    assert patched["scheduled_for"][:19] == new_time[:19]
    async with db.read() as session:
        dues = (await session.execute(select(PostDestination.due_at).where(PostDestination.post_id == post["id"]))).scalars().all()
    assert {d.isoformat()[:19] for d in dues} == {new_time[:19]}

    # Dropping an account removes its destination; nothing was left half-changed by the rejections.
    patched = assert_envelope(await client.patch(url, headers=tenant.headers, json={"account_ids": [li]}), 200)["data"]
    assert patched["account_ids"] == [li] and patched["content"] == "v2"


async def test_draft_becomes_scheduled_only_with_draft_false(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    draft = await create(client, tenant, content="y" * 300, account_ids=[x], draft=True)
    url = f"{POSTS}/{draft['id']}"
    still = assert_envelope(await client.patch(url, headers=tenant.headers, json={"scheduled_at": at(clock, 60)}), 200)["data"]
    assert still["status"] == "draft"
    assert_envelope(await client.patch(url, headers=tenant.headers, json={"draft": False}), 400, "post_validation_failed")
    scheduled = assert_envelope(
        await client.patch(url, headers=tenant.headers, json={"draft": False, "content": "fits"}), 200
    )["data"]
    assert scheduled["status"] == "scheduled"
    back = assert_envelope(await client.patch(url, headers=tenant.headers, json={"draft": True}), 200)["data"]
    assert back["status"] == "draft"
    now = assert_envelope(await client.patch(url, headers=tenant.headers, json={"draft": False, "scheduled_at": None}), 200)["data"]
    assert now["status"] == "publishing" and now["scheduled_for"] is None


async def test_delete_rules(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id)
    media = await add_media(db, clock, tenant.org_id)
    post = await create(client, tenant, content="bye", account_ids=[x], media_ids=[media], scheduled_at=at(clock, 60))
    body = assert_envelope(await client.delete(f"{POSTS}/{post['id']}", headers=tenant.headers), 200)
    assert body["data"] == {"post_id": post["id"], "deleted": True}
    assert_envelope(await client.get(f"{POSTS}/{post['id']}", headers=tenant.headers), 404, "not_found")
    async with db.read() as session:
        left = (await session.execute(select(func.count()).select_from(PostDestination).where(PostDestination.post_id == post["id"]))).scalar_one()
        links = (await session.execute(select(func.count()).select_from(PostMedia).where(PostMedia.post_id == post["id"]))).scalar_one()
    assert (left, links) == (0, 0)
    assert_envelope(await client.delete(f"{POSTS}/{post['id']}", headers=tenant.headers), 404, "not_found")

    busy = await create(client, tenant, content="now", account_ids=[x])
    assert busy["status"] == "publishing"
    body = assert_envelope(await client.delete(f"{POSTS}/{busy['id']}", headers=tenant.headers), 409, "post_already_published")
    assert body["error"]["details"]["post_status"] == "publishing"
    assert_envelope(await client.patch(f"{POSTS}/{busy['id']}", headers=tenant.headers, json={"content": "x"}), 409, "post_already_published")


async def test_retry_puts_failed_destinations_back(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    li = await add_account(db, clock, tenant.org_id, "linkedin")
    post = await create(client, tenant, content="hi", account_ids=[x, li])
    url = f"{POSTS}/{post['id']}/retry"
    nothing = assert_envelope(await client.post(url, headers=tenant.headers), 200)["data"]
    assert nothing == {"retried_count": 0, "destinations": []}

    failed_id = post["destinations"][1]["id"]
    await db.run(
        lambda conn: conn.execute(
            update(PostDestination).where(PostDestination.id == failed_id).values(status="failed", error="boom", attempts=5)
        )
    )
    data = assert_envelope(await client.post(url, headers=tenant.headers), 200)["data"]
    assert data == {"retried_count": 1, "destinations": [{"id": failed_id, "platform": "linkedin", "new_status": "queued"}]}
    got = assert_envelope(await client.get(f"{POSTS}/{post['id']}", headers=tenant.headers), 200)["data"]
    retried = next(d for d in got["destinations"] if d["id"] == failed_id)
    assert (retried["status"], retried["error"], retried["attempts"]) == ("queued", None, 0)
    assert got["status"] == "publishing"
