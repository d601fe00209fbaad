"""The Redis store on Redis's own clock: keys, expiry, concurrency across clients, the outage policy."""

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
import redis.asyncio
from redis.crc import key_slot

from postengine.kit.clock import FakeClock
from postengine.ratelimit.errors import RateLimitUnavailable
from postengine.ratelimit.redis_store import RedisRateLimitStore, connect
from postengine.ratelimit.rules import RateLimitScope, RateLimitWindow, windows_for
from tests.ratelimit.redis_helpers import RedisProxy

AI = windows_for(RateLimitScope.API, RateLimitScope.AI)
API = windows_for(RateLimitScope.API)
POSTS = windows_for(RateLimitScope.API, RateLimitScope.POSTS)
OpenStore = Callable[..., RedisRateLimitStore]


async def test_windows_run_on_redis_time_not_the_process_clock(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis"
) -> None:
    store = open_redis_store(FakeClock(946_684_800.0))  # this process believes it is the year 2000
    admission = await store.admit("k", AI)
    seconds, micros = await redis_client.time()
    assert abs(admission.now - (seconds + micros / 1e6)) < 60
    assert all(s.reset_at == admission.now + s.window.seconds for s in admission.states)
    # Peek agrees with the admission it follows.
    peeked = {s.window.name: (s.remaining, s.reset_at) for s in await store.peek("k", AI)}
    assert peeked == {s.window.name: (s.remaining, s.reset_at) for s in admission.states}


async def test_keys_live_under_the_prefix_in_one_cluster_slot_and_expire(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis", redis_prefix: str
) -> None:
    store = open_redis_store(FakeClock())
    subject = "key_0123456789abcdef01234567"
    await store.admit(subject, AI)
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=f"{redis_prefix}*")])
    assert keys == sorted(f"{redis_prefix}rl:{{{subject}}}:{w.name}" for w in AI)
    assert len({key_slot(key.encode()) for key in keys}) == 1  # one hash tag: valid on Redis Cluster
    for window in AI:
        key = store.key(subject, window)
        assert await redis_client.zcard(key) == 1
        assert 0 < await redis_client.pttl(key) <= window.seconds * 1000  # idle logs vanish by themselves


async def test_two_admissions_in_one_microsecond_are_two_entries(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis"
) -> None:
    clock = FakeClock()
    store = open_redis_store(clock, fake_time=True)  # the same `now` for both
    window = (RateLimitWindow(RateLimitScope.API, 5, 60),)
    await store.admit("k", window)
    second = await store.admit("k", window)
    assert second.states[0].remaining == 3
    assert await redis_client.zcard(store.key("k", window[0])) == 2


async def test_an_idle_log_disappears_after_its_window(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis"
) -> None:
    store = open_redis_store(FakeClock())
    window = (RateLimitWindow(RateLimitScope.API, 2, 1),)
    key = store.key("k", window[0])
    assert (await store.admit("k", window)).admitted
    assert (await store.admit("k", window)).admitted
    blocked = await store.admit("k", window)
    assert not blocked.admitted and blocked.retry_after == 1
    deadline = time.monotonic() + 10
    while await redis_client.exists(key):  # PEXPIRE, not a sweeper, removes it
        assert time.monotonic() < deadline, "the idle log never expired"
        await asyncio.sleep(0.05)
    assert (await store.admit("k", window)).states[0].remaining == 1  # a fresh window on Redis time


async def test_concurrent_clients_admit_exactly_the_limit(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis"
) -> None:
    """240 simultaneous admissions from 6 clients (own connection pools, like 6 processes) on one key:
    exactly 50 pass ai-5m, each sees a distinct `remaining`, and the rejected ones recorded nothing."""
    stores = [open_redis_store(FakeClock()) for _ in range(6)]
    results = await asyncio.gather(*(store.admit("shared", AI) for store in stores for _ in range(40)))
    admitted = [a for a in results if a.admitted]
    assert len(admitted) == 50
    remaining = sorted(next(s.remaining for s in a.states if s.window.name == "ai-5m") for a in admitted)
    assert remaining == list(range(50))  # each admission saw all the earlier ones: serialised, atomic
    for rejected in (a for a in results if not a.admitted):
        assert [s.window.name for s in rejected.blocking] == ["ai-5m"]
    for window in AI:
        assert await redis_client.zcard(stores[0].key("shared", window)) == 50


async def test_scripts_are_loaded_again_after_a_script_flush(
    open_redis_store: OpenStore, redis_client: "redis.asyncio.Redis"
) -> None:
    store = open_redis_store(FakeClock())
    assert (await store.admit("k", API)).admitted
    await redis_client.script_flush()  # as after a Redis restart or failover: EVALSHA gets NOSCRIPT
    again = await store.admit("k", API)
    assert again.admitted and again.states[0].remaining == 58
    assert store.available


async def test_unreachable_redis_fails_ai_and_posts_closed_and_degrades_the_rest(
    open_redis_store: OpenStore, redis_proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = open_redis_store(clock, url=redis_proxy.url)
    assert (await store.admit("k", API)).states[0].remaining == 59  # through Redis
    await redis_proxy.stop()
    with caplog.at_level(logging.INFO, logger="postengine.ratelimit"):
        degraded = [await store.admit("k", API) for _ in range(3)]
        # The process-local store knows nothing of Redis's history: limits hold per process only.
        assert [a.states[0].remaining for a in degraded] == [59, 58, 57]
        assert [s.remaining for s in await store.peek("k", API)] == [57, 997, 9997]
        for windows, scope in ((AI, "ai"), (POSTS, "posts")):
            with pytest.raises(RateLimitUnavailable) as refused:
                await store.admit("k", windows)
            body = refused.value.body()
            assert (refused.value.status, body["code"], body["retryable"]) == (503, "rate_limit_unavailable", True)
            assert body["details"] == {"scope": scope, "retry_after": 5}
            assert refused.value.headers == {"Retry-After": "5"}
        assert not store.available
        down = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(down) == 1 and down[0].levelno == logging.WARNING  # once per outage, not per request

        await redis_proxy.start()  # Redis is back: the shared history applies again
        back = await store.admit("k", API)
        assert back.states[0].remaining == 58
        assert store.available
        assert (await store.admit("k", AI)).admitted
        assert [r.getMessage() for r in caplog.records].count(down[0].getMessage()) == 1
        assert any("available again" in r.getMessage() for r in caplog.records)


async def test_a_stalled_redis_times_out_into_the_policy(open_redis_store: OpenStore, redis_proxy: RedisProxy) -> None:
    store = open_redis_store(FakeClock(), url=redis_proxy.url)
    assert (await store.admit("k", AI)).admitted
    redis_proxy.stall()  # connected, but no reply ever comes: the socket timeout must end the wait
    with pytest.raises(RateLimitUnavailable):
        await store.admit("k", AI)
    assert (await store.admit("k", API)).admitted  # per-process fallback
    redis_proxy.resume()


async def test_during_an_outage_redis_is_retried_once_per_interval(redis_proxy: RedisProxy, redis_prefix: str) -> None:
    store = RedisRateLimitStore(
        connect(redis_proxy.url), clock=FakeClock(), prefix=redis_prefix, retry_interval=3600.0
    )
    try:
        await redis_proxy.stop()
        assert not await store.ping()
        await redis_proxy.start()
        # Within the interval no request waits on Redis again; `ping` (readiness) always tries.
        with pytest.raises(RateLimitUnavailable):
            await store.admit("k", AI)
        assert await store.ping()
        assert store.available
    finally:
        await store.aclose()
