"""The in-process store on its own: window names, its invariant under random traffic, its sweep.
The behaviour it shares with the Redis store is tested on both in `test_store_contract.py`."""

from hypothesis import given, settings
from hypothesis import strategies as st

from postengine.kit.clock import FakeClock
from postengine.ratelimit.rules import RULES, RateLimitScope, RateLimitWindow
from postengine.ratelimit.store import MemoryRateLimitStore


def test_window_names_and_descriptions() -> None:
    assert [w.name for w in RULES[RateLimitScope.AI]] == ["ai-5m", "ai-1h"]
    assert [w.name for w in RULES[RateLimitScope.API]] == ["api-1m", "api-1h", "api-1d"]
    assert RULES[RateLimitScope.AI][0].describe() == "50 requests per 5 minutes"
    assert RULES[RateLimitScope.API][0].describe() == "60 requests per minute"


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
