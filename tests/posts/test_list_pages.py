"""`GET /posts` pages: totals without a COUNT on the last page, exact time bounds, and list objects
identical to `GET /posts/{id}` (the list reads rows its own way on SQLite)."""

import httpx

from tests.api.test_conventions import assert_envelope
from tests.api.test_posts import POSTS, at
from tests.posts.helpers import add_account, add_media


async def test_pages_totals_bounds_and_objects(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    media_id = await add_media(db, clock, tenant.org_id)
    made = []
    for n in range(5):
        body = {"content": f"post {n}", "account_ids": [account], "media_ids": [media_id]}
        body |= {"scheduled_at": at(clock, 3600 + n)} if n % 2 else {"draft": True}
        response = await client.post(POSTS, json=body, headers=tenant.headers)
        made.append(assert_envelope(response, 201)["data"])
        clock.advance(1.5)
    newest_first = [p["id"] for p in reversed(made)]

    async def page(query: str) -> dict:
        return assert_envelope(await client.get(f"{POSTS}?{query}", headers=tenant.headers), 200)["data"]

    for limit, offset, total in [(5, 0, 5), (6, 0, 5), (4, 0, 5), (2, 4, 5), (2, 3, 5), (2, 5, 5), (2, 9, 5)]:
        got = await page(f"limit={limit}&offset={offset}")
        assert [p["id"] for p in got["posts"]] == newest_first[offset : offset + limit]
        assert got["pagination"] == {
            "limit": limit, "offset": offset, "total": total, "has_more": offset + limit < total
        }
    for listed in (await page("limit=20"))["posts"]:
        single = assert_envelope(await client.get(f"{POSTS}/{listed['id']}", headers=tenant.headers), 200)
        assert listed == single["data"]
    # Bounds compare as datetimes (the same on both databases).
    first = made[1]["scheduled_for"].replace("Z", "%2B00:00")
    assert [p["id"] for p in (await page(f"scheduled_after={first}"))["posts"]] == [made[3]["id"], made[1]["id"]]
    assert (await page("status=scheduled,draft&search=post%201"))["pagination"]["total"] == 1
