"""The Idempotency-Key locks: one contract for the in-process and the Redis store, and Redis's
failure mode (fail open: the database's primary key keeps the guarantee, see `locks`)."""

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from postengine.idempotency.locks import LockStore, MemoryLocks, RedisLocks
from postengine.kit.clock import FakeClock
from postengine.ratelimit.redis_store import connect
from tests.redis_support import require_redis

REQUEST = ("f" * 64, "POST /api/v1/posts")
OTHER = ("0" * 64, "POST /api/v1/media/upload")


@pytest_asyncio.fixture(params=["memory", "redis"], loop_scope="session")
async def locks(request) -> AsyncIterator[LockStore]:
    if request.param == "memory":
        yield MemoryLocks(FakeClock(1_000_000.0))
        return
    client = connect(require_redis())
    prefix = f"pe_test_{secrets.token_hex(6)}:"
    try:
        yield RedisLocks(client, prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_one_holder_at_a_time(locks: LockStore) -> None:
    assert await locks.acquire("org:k", "t1", REQUEST, 60) is None
    held = await locks.acquire("org:k", "t2", REQUEST, 60)
    assert held is not None and held.fingerprint == REQUEST[0] and held.endpoint == REQUEST[1]
    assert 0 < held.seconds_left <= 60
    other = await locks.acquire("org:k", "t3", OTHER, 60)
    assert other is not None and other.fingerprint == REQUEST[0]  # whoever asks learns the holder's request
    assert await locks.acquire("org:other-key", "t4", REQUEST, 60) is None  # keys are independent


async def test_only_the_holder_releases(locks: LockStore) -> None:
    assert await locks.acquire("org:k", "mine", REQUEST, 60) is None
    await locks.release("org:k", "not-mine")
    assert await locks.acquire("org:k", "t2", REQUEST, 60) is not None
    await locks.release("org:k", "mine")
    assert await locks.acquire("org:k", "t3", REQUEST, 60) is None


async def test_a_lock_expires(locks: LockStore) -> None:
    if isinstance(locks, MemoryLocks):
        assert await locks.acquire("org:k", "t1", REQUEST, 60) is None
        locks._clock.advance(60)  # type: ignore[attr-defined]
    else:
        assert await locks.acquire("org:k", "t1", REQUEST, 0.05) is None  # PX 50 ms, on Redis's clock
        for _ in range(250):  # wait for Redis to expire it (no assertion on how long that takes)
            if not await _held(locks, "org:k"):
                break
            await asyncio.sleep(0.02)
    assert await locks.acquire("org:k", "t2", REQUEST, 60) is None


async def _held(locks: LockStore, name: str) -> bool:
    held = await locks.acquire(name, "probe", REQUEST, 60)
    if held is None:
        await locks.release(name, "probe")
        return False
    return True


async def test_redis_unreachable_fails_open() -> None:
    """No Redis: every acquire succeeds (the request runs; the database lets one attempt commit) and
    release does not raise."""
    client = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    locks = RedisLocks(client, "pe_test_down:")
    try:
        assert await locks.acquire("org:k", "t1", REQUEST, 60) is None
        assert await locks.acquire("org:k", "t2", REQUEST, 60) is None
        await locks.release("org:k", "t1")
    finally:
        await client.aclose()


@pytest.mark.parametrize("size", [10_001])
async def test_memory_locks_forget_expired_entries(size: int) -> None:
    clock = FakeClock(0.0)
    locks = MemoryLocks(clock)
    for i in range(size):
        await locks.acquire(f"org:{i}", "t", REQUEST, 1)
    clock.advance(2)
    await locks.acquire("org:new", "t", REQUEST, 1)
    assert len(locks._held) == 1
