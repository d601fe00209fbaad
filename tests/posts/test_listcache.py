"""`GET /posts` pages are cached briefly, but never hide this process's own changes."""

import httpx
import orjson

from postengine.accounts.connectors.registry import Connectors
from postengine.kit.listcache import ListCache
from postengine.posts.publisher import Publisher
from tests.api.test_conventions import assert_envelope
from tests.api.test_posts import POSTS, at
from tests.posts.helpers import add_account


def test_a_page_computed_across_a_change_is_never_served() -> None:
    cache = ListCache(ttl=60)
    version = cache.version("org_a")
    cache.invalidate("org_a")  # a write lands while the page is being read
    cache.put("org_a", "q", version, orjson.Fragment(b"{}"))
    assert cache.get("org_a", "q") is None
    cache.put("org_a", "q", cache.version("org_a"), orjson.Fragment(b"{}"))
    assert cache.get("org_a", "q") is not None
    cache.invalidate("org_b")
    assert cache.get("org_a", "q") is not None  # other organisations' changes do not matter


def test_pages_expire() -> None:
    cache = ListCache(ttl=-1)
    cache.put("org_a", "q", cache.version("org_a"), orjson.Fragment(b"{}"))
    assert cache.get("org_a", "q") is None


async def test_list_shows_own_writes_and_the_publishers_records_at_once(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)

    async def statuses() -> list[str]:
        body = assert_envelope(await client.get(f"{POSTS}?limit=20", headers=tenant.headers), 200)
        return [p["status"] for p in body["data"]["posts"]]

    assert await statuses() == []
    created = await client.post(POSTS, headers=tenant.headers, json={"content": "a", "account_ids": [account], "scheduled_at": at(clock, 5)})
    assert await statuses() == ["scheduled"]
    clock.advance(6)
    await Publisher(client._transport.app.state.ctx.db, clock, Connectors(db, clock), "http://testserver/cdn").drain()
    assert await statuses() == ["published"]
    assert_envelope(await client.delete(f"{POSTS}/{created.json()['data']['id']}", headers=tenant.headers), 409, "post_already_published")


async def test_concurrent_misses_compute_the_page_once() -> None:
    import asyncio

    cache = ListCache(ttl=60)
    calls = 0
    gate = asyncio.Event()

    async def compute() -> orjson.Fragment:
        nonlocal calls
        calls += 1
        await gate.wait()
        return orjson.Fragment(b'{"n": 1}')

    waiters = [asyncio.ensure_future(cache.page("org_a", "q", compute)) for _ in range(8)]
    await asyncio.sleep(0)
    gate.set()
    pages = await asyncio.gather(*waiters)
    assert calls == 1 and len({id(p) for p in pages}) == 1
    cache.invalidate("org_a")
    await cache.page("org_a", "q", compute)
    assert calls == 2  # a change means a fresh computation
