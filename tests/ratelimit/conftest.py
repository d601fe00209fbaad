"""Redis for the rate-limit tests: the real server (PE_TEST_REDIS_URL, default 127.0.0.1:6379).

Each test gets its own key prefix `pe_test_<random>:` and its keys are deleted afterwards, so
parallel runs never see each other's data. Without a Redis server the Redis tests are skipped with
a reason, except in CI (`CI` set), where its absence is a failure.
"""

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis
import redis.asyncio
from redis.connection import parse_url

from postengine.kit.clock import Clock
from postengine.ratelimit.redis_store import RedisRateLimitStore, connect
from tests.ratelimit.redis_helpers import ClockedRedisStore, RedisProxy
from tests.redis_support import require_redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest_asyncio.fixture(loop_scope="session")
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"pe_test_{secrets.token_hex(6)}:"
    yield prefix
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def redis_client(redis_url: str) -> AsyncIterator["redis.asyncio.Redis"]:
    """A plain client for looking at what the store wrote."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def open_redis_store(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., RedisRateLimitStore]]:
    """`open(clock, fake_time=False)`: a store with its own client (its own connections)."""
    stores: list[RedisRateLimitStore] = []

    def open_store(clock: Clock, *, fake_time: bool = False, url: str | None = None) -> RedisRateLimitStore:
        client = connect(url or redis_url)
        store: RedisRateLimitStore
        if fake_time:
            store = ClockedRedisStore(client, clock=clock, prefix=redis_prefix)
        else:
            store = RedisRateLimitStore(client, clock=clock, prefix=redis_prefix, retry_interval=0.0)
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        await store.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def redis_proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    target = parse_url(redis_url)
    proxy = RedisProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)), int(target.get("db", 0)))
    await proxy.start()
    yield proxy
    proxy.resume()
    await proxy.stop()
