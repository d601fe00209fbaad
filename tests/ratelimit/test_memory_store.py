"""The in-process store: exact sliding windows, atomic across windows (API.md §3)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from postengine.kit.clock import FakeClock
from postengine.ratelimit.headers import rate_limit_error, rate_limit_headers
from postengine.ratelimit.rules import RULES, RateLimitScope, RateLimitWindow, windows_for
from postengine.ratelimit.store import MemoryRateLimitStore

AI = windows_for(RateLimitScope.API, RateLimitScope.AI)


def test_window_names_and_descriptions() -> None:
    assert [w.name for w in RULES[RateLimitScope.AI]] == ["ai-5m", "ai-1h"]
    assert [w.name for w in RULES[RateLimitScope.API]] == ["api-1m", "api-1h", "api-1d"]
    assert RULES[RateLimitScope.AI][0].describe() == "50 requests per 5 minutes"
    assert RULES[RateLimitScope.API][0].describe() == "60 requests per minute"


def test_sliding_window_has_no_edge_burst() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock)
    window = (RateLimitWindow(RateLimitScope.API, 3, 60),)
    for _ in range(3):
        assert store.admit_now("k", window).admitted
        clock.advance(10)  # admitted at t=0, 10, 20
    clock.advance(29)  # t=59: the first is still inside the window
    rejected = store.admit_now("k", window)
    assert not rejected.admitted
    assert rejected.retry_after == 1  # frees at t=60
    clock.advance(1)  # t=60: exactly one slot freed
    assert store.admit_now("k", window).admitted
    assert not store.admit_now("k", window).admitted


def test_rejected_requests_use_no_quota() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock)
    window = (RateLimitWindow(RateLimitScope.API, 2, 60),)
    store.admit_now("k", window)
    store.admit_now("k", window)
    for _ in range(100):
        assert not store.admit_now("k", window).admitted
    clock.advance(60)
    assert store.admit_now("k", window).admitted
    assert store.admit_now("k", window).admitted


def test_admission_is_all_or_nothing_across_windows() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock)
    api_only = windows_for(RateLimitScope.API)
    for _ in range(50):
        assert store.admit_now("k", AI).admitted
    blocked = store.admit_now("k", AI)  # ai-5m is full
    assert not blocked.admitted
    # The rejected AI request did not use an api slot: 10 of 60 are left in api-1m.
    assert min(s.remaining for s in store.admit_now("k", api_only).states if s.window.seconds == 60) == 9


def test_retry_after_covers_every_blocking_window() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock)
    for _ in range(4):  # 200 per hour, 50 per 5 minutes: fill the hour in four 5-minute bursts
        for _ in range(50):
            assert store.admit_now("k", RULES[RateLimitScope.AI]).admitted
        clock.advance(300)
    admission = store.admit_now("k", RULES[RateLimitScope.AI])
    assert not admission.admitted  # the 5-minute window is empty, but the hour is full
    assert [s.window.name for s in admission.blocking] == ["ai-1h"]
    assert admission.retry_after == 3600 - 4 * 300
    error = rate_limit_error(admission)
    assert error.status == 429
    assert error.details == {"retry_after": 2400, "scope": "ai", "limit": 200, "window_seconds": 3600}
    assert error.message == "AI rate limit exceeded: 200 requests per hour. Retry after 2400 seconds."


def test_headers_name_the_tightest_window() -> None:
    clock = FakeClock(1_800_000_000.0)
    store = MemoryRateLimitStore(clock)
    headers = rate_limit_headers(store.admit_now("k", AI))
    assert headers["X-RateLimit-Limit"] == "50"
    assert headers["X-RateLimit-Remaining"] == "49"
    assert headers["X-RateLimit-Reset"] == str(1_800_000_000 + 300)
    assert headers["RateLimit-Policy"] == (
        '"api-1m";q=60;w=60, "api-1h";q=1000;w=3600, "api-1d";q=10000;w=86400, "ai-5m";q=50;w=300, "ai-1h";q=200;w=3600'
    )
    assert '"ai-5m";r=49;t=300' in headers["RateLimit"]
    assert "Retry-After" not in headers


def test_subjects_are_independent() -> None:
    store = MemoryRateLimitStore(FakeClock())
    window = (RateLimitWindow(RateLimitScope.API, 1, 60),)
    assert store.admit_now("a", window).admitted
    assert store.admit_now("b", window).admitted
    assert not store.admit_now("a", window).admitted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0, max_value=40), st.booleans()), min_size=1, max_size=300))
def test_never_more_than_the_limit_in_any_window(steps: list[tuple[float, bool]]) -> None:
    """Invariant (DESIGN.md §4): in every interval of a window's length, at most `limit` admissions."""
    clock = FakeClock(0.0)
    store = MemoryRateLimitStore(clock)
    windows = (RateLimitWindow(RateLimitScope.AI, 5, 60), RateLimitWindow(RateLimitScope.AI, 12, 300))
    admitted: list[float] = []
    for delay, _ in steps:
        clock.advance(delay)
        now = clock.time()
        if store.admit_now("k", windows).admitted:
            admitted.append(now)
        else:  # exact: a rejection means some window really is full
            assert any(sum(1 for t in admitted if t > now - w.seconds) >= w.limit for w in windows)
    for window in windows:
        for i, start in enumerate(admitted):
            inside = [t for t in admitted[i:] if t < start + window.seconds]
            assert len(inside) <= window.limit


def test_sweep_forgets_idle_keys_only() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock)
    window = (RateLimitWindow(RateLimitScope.API, 5, 60),)
    store.admit_now("idle", window)
    clock.advance(30)
    store.admit_now("busy", window)
    clock.advance(31)  # idle's admission left its window; busy's has not
    assert store.sweep() == 1
    assert store.admit_now("busy", window).states[0].remaining == 3  # busy's history survived
