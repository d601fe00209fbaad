"""One contract, two stores: the in-process store and the Redis store behave identically (API.md §3).

The Redis store runs here on the test's fake clock through its one test-only path (the script takes
`now` from an argument instead of Redis's `TIME`, see `ClockedRedisStore`); everything else — the
sorted sets, the pruning, the atomic check-and-record — is the production script on the real
server. `test_redis_store.py` covers Redis's own clock.
"""

import secrets
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postengine.kit.clock import FakeClock
from postengine.ratelimit.headers import rate_limit_error, rate_limit_headers
from postengine.ratelimit.redis_store import connect
from postengine.ratelimit.rules import RULES, RateLimitScope, RateLimitWindow, windows_for
from postengine.ratelimit.store import Admission, MemoryRateLimitStore, RateLimitStore
from tests.ratelimit.redis_helpers import ClockedRedisStore

AI = windows_for(RateLimitScope.API, RateLimitScope.AI)

MakeStore = Callable[[FakeClock], RateLimitStore]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> MakeStore:
    if request.param == "memory":
        return MemoryRateLimitStore
    open_redis_store = request.getfixturevalue("open_redis_store")
    return lambda clock: open_redis_store(clock, fake_time=True)


async def admit(store: RateLimitStore, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
    return await store.admit(subject, windows)


async def test_sliding_window_has_no_edge_burst(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    window = (RateLimitWindow(RateLimitScope.API, 3, 60),)
    for _ in range(3):
        assert (await admit(store, "k", window)).admitted
        clock.advance(10)  # admitted at t=0, 10, 20
    clock.advance(29)  # t=59: the first is still inside the window
    rejected = await admit(store, "k", window)
    assert not rejected.admitted
    assert rejected.retry_after == 1  # frees at t=60
    clock.advance(1)  # t=60: exactly one slot freed
    assert (await admit(store, "k", window)).admitted
    assert not (await admit(store, "k", window)).admitted


async def test_rejected_requests_use_no_quota(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    window = (RateLimitWindow(RateLimitScope.API, 2, 60),)
    await admit(store, "k", window)
    await admit(store, "k", window)
    for _ in range(30):
        assert not (await admit(store, "k", window)).admitted
    clock.advance(60)
    assert (await admit(store, "k", window)).admitted
    assert (await admit(store, "k", window)).admitted


async def test_admission_is_all_or_nothing_across_windows(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    api_only = windows_for(RateLimitScope.API)
    for _ in range(50):
        assert (await admit(store, "k", AI)).admitted
    blocked = await admit(store, "k", AI)  # ai-5m is full
    assert not blocked.admitted
    assert [s.window.name for s in blocked.blocking] == ["ai-5m"]
    # The rejected AI request did not use an api slot: 10 of 60 are left in api-1m.
    after = await admit(store, "k", api_only)
    assert next(s.remaining for s in after.states if s.window.name == "api-1m") == 9


async def test_retry_after_covers_every_blocking_window(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    for _ in range(4):  # 200 per hour, 50 per 5 minutes: fill the hour in four 5-minute bursts
        for _ in range(50):
            assert (await admit(store, "k", RULES[RateLimitScope.AI])).admitted
        clock.advance(300)
    admission = await admit(store, "k", RULES[RateLimitScope.AI])
    assert not admission.admitted  # the 5-minute window is empty, but the hour is full
    assert [s.window.name for s in admission.blocking] == ["ai-1h"]
    assert admission.retry_after == 3600 - 4 * 300
    error = rate_limit_error(admission)
    assert error.status == 429
    assert error.details == {"retry_after": 2400, "scope": "ai", "limit": 200, "window_seconds": 3600}
    assert error.message == "AI rate limit exceeded: 200 requests per hour. Retry after 2400 seconds."
    assert error.headers["X-RateLimit-Remaining"] == "0"
    assert error.headers["Retry-After"] == "2400"


async def test_both_windows_blocking_retry_when_the_later_frees(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    windows = (RateLimitWindow(RateLimitScope.AI, 2, 60), RateLimitWindow(RateLimitScope.AI, 3, 600))
    for _ in range(2):
        assert (await admit(store, "k", windows)).admitted  # t=0
    clock.advance(60)
    assert (await admit(store, "k", windows)).admitted  # t=60: the 10-minute window is now full
    clock.advance(1)
    assert (await admit(store, "k", windows)).admitted is False
    admitted_more = await admit(store, "k", windows[:1])  # the minute alone still has room
    assert admitted_more.admitted
    blocked = await admit(store, "k", windows)  # t=61: both full now
    assert [s.window.seconds for s in blocked.blocking] == [60, 600]
    assert blocked.retry_after == 600 - 61  # the minute frees at 120, the 10 minutes at 600


async def test_headers_name_the_tightest_window(make_store: MakeStore) -> None:
    store = make_store(FakeClock(1_800_000_000.0))
    headers = rate_limit_headers(await admit(store, "k", AI))
    assert headers["X-RateLimit-Limit"] == "50"
    assert headers["X-RateLimit-Remaining"] == "49"
    assert headers["X-RateLimit-Reset"] == str(1_800_000_000 + 300)
    assert headers["RateLimit-Policy"] == (
        '"api-1m";q=60;w=60, "api-1h";q=1000;w=3600, "api-1d";q=10000;w=86400, "ai-5m";q=50;w=300, "ai-1h";q=200;w=3600'
    )
    assert '"ai-5m";r=49;t=300' in headers["RateLimit"]
    assert "Retry-After" not in headers


async def test_subjects_are_independent(make_store: MakeStore) -> None:
    store = make_store(FakeClock())
    window = (RateLimitWindow(RateLimitScope.API, 1, 60),)
    assert (await admit(store, "a", window)).admitted
    assert (await admit(store, "b", window)).admitted
    assert not (await admit(store, "a", window)).admitted


async def test_peek_records_nothing(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock)
    window = (RateLimitWindow(RateLimitScope.API, 2, 60),)
    empty = await store.peek("k", window)
    assert [(s.remaining, s.reset_at) for s in empty] == [(2, clock.time())]
    await admit(store, "k", window)
    clock.advance(15)
    for _ in range(5):
        (state,) = await store.peek("k", window)
        assert (state.remaining, state.reset_at) == (1, clock.time() - 15 + 60)
    assert (await admit(store, "k", window)).admitted  # peeks used no slot


# Steps of whole eighths of a second: exact in binary floats and in whole microseconds, so the
# memory store (float seconds) and the Redis store (integer µs) compare equal to the last bit.
# Round steps are drawn often, so that entries land exactly on window edges (60, 120, 300 s).
STEP = st.one_of(
    st.sampled_from([0.0, 1.0, 10.0, 20.0, 30.0, 60.0]),
    st.integers(min_value=0, max_value=8 * 40).map(lambda eighths: eighths / 8),
)
WINDOW_SETS = (
    (RateLimitWindow(RateLimitScope.API, 4, 60), RateLimitWindow(RateLimitScope.AI, 9, 300)),
    (RateLimitWindow(RateLimitScope.API, 4, 60),),
    (RateLimitWindow(RateLimitScope.AI, 9, 300), RateLimitWindow(RateLimitScope.POSTS, 3, 120)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(STEP, st.sampled_from("ab"), st.integers(0, len(WINDOW_SETS) - 1), st.booleans()),
        min_size=1,
        max_size=120,
    )
)
async def test_redis_and_memory_stores_agree(
    redis_url: str, redis_prefix: str, steps: list[tuple[float, str, int, bool]]
) -> None:
    """Random sequences of admissions and peeks on two subjects and overlapping window sets: every
    Admission (admitted, now, remaining, reset_at, retry_at of every window) and every peek is equal."""
    clock = FakeClock(1_800_000_000.0)
    memory = MemoryRateLimitStore(clock)
    redis_store = ClockedRedisStore(connect(redis_url), clock=clock, prefix=redis_prefix)
    run = secrets.token_hex(4)  # fresh subjects for every example (and every replay while shrinking)
    try:
        for delay, name, choice, peek in steps:
            clock.advance(delay)
            subject = f"{run}-{name}"
            windows = WINDOW_SETS[choice]
            if peek:
                assert await redis_store.peek(subject, windows) == await memory.peek(subject, windows)
            else:
                assert await redis_store.admit(subject, windows) == await memory.admit(subject, windows)
    finally:
        await redis_store.aclose()
