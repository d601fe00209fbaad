"""A Hypothesis state machine for the rate-limit stores against a reference model (DESIGN.md §4).

Rules move a fake clock by arbitrary amounts (round ones, eighths of a second, and jumps to exactly
when a logged admission leaves its window, or an eighth before or after), and admit requests for a
few subjects with the real window sets of API.md §3 (`windows_for`), one at a time, in bursts at one
instant, or until the first rejection. The model is a list of admitted times per (subject, window).
Every admission must agree with it: admitted iff every window has fewer than `limit` entries in
(t − S, t]; then recorded in every window, and when rejected in none (all or nothing); `remaining`,
`reset_at`, `retry_at` of each window and `retry_after` as the model computes them. After every step
the store's `peek` matches the model for every subject and window, and no window of any subject ever
holds more than its limit in any (t − S, t].

Runs against `MemoryRateLimitStore` and against `RedisRateLimitStore` on the real Redis with the
fake time fed into its script (`ClockedRedisStore`, the store's one test-only path); each test run
uses its own key prefix and each example its own subjects. A sync test with its own event loop, so
that Hypothesis can run each example (as tests/api/test_fuzz.py does).
"""

import asyncio
import math
import secrets
from bisect import bisect_right
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from postengine.kit.clock import FakeClock
from postengine.ratelimit.redis_store import connect
from postengine.ratelimit.rules import RateLimitScope, RateLimitWindow, windows_for
from postengine.ratelimit.store import Admission, MemoryRateLimitStore, RateLimitStore, WindowState
from tests.ratelimit.redis_helpers import ClockedRedisStore

T = TypeVar("T")

# The three sets a request is admitted against: every endpoint, and POST /posts and /ai additionally.
WINDOW_SETS: tuple[tuple[RateLimitWindow, ...], ...] = (
    windows_for(RateLimitScope.API),
    windows_for(RateLimitScope.API, RateLimitScope.AI),
    windows_for(RateLimitScope.API, RateLimitScope.POSTS),
)
ALL_WINDOWS = tuple(dict.fromkeys(w for windows in WINDOW_SETS for w in windows))
SUBJECTS = ("a", "b", "c")
START = 1_800_000_000.0
EIGHTH = 0.125
# Whole eighths of a second only: exact as floats and as the Redis script's whole microseconds, so
# every comparison with the model is exact, window edges included.
STEPS = st.sampled_from(
    [0.0, 1.0, 59.0, 60.0, 61.0, 299.0, 300.0, 301.0, 3599.0, 3600.0, 3601.0, 86_400.0]
) | st.integers(min_value=0, max_value=8 * 400).map(lambda eighths: eighths * EIGHTH)


@dataclass(frozen=True)
class Expected:
    admitted: bool
    states: tuple[tuple[int, float, float | None], ...]  # per window: remaining, reset_at, retry_at
    retry_after: int | None


class Reference:
    """The sliding log, written the plain way: admitted times per (subject, window name)."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, str], list[float]] = {}

    def inside(self, subject: str, window: RateLimitWindow, now: float) -> list[float]:
        """The admitted times in (now − S, now], oldest first."""
        log = self.logs.get((subject, window.name), [])
        return log[bisect_right(log, now - window.seconds) :]

    def expect(self, subject: str, windows: Sequence[RateLimitWindow], now: float) -> Expected:
        inside = [self.inside(subject, w, now) for w in windows]
        admitted = all(len(times) < w.limit for w, times in zip(windows, inside, strict=True))
        if admitted:
            states = tuple(
                (w.limit - len(times) - 1, (times[0] if times else now) + w.seconds, None)
                for w, times in zip(windows, inside, strict=True)
            )
            return Expected(True, states, None)
        blocked_states = []
        for w, times in zip(windows, inside, strict=True):
            full = len(times) >= w.limit
            # The request fits once all but limit − 1 of these have left the window.
            retry_at = times[len(times) - w.limit] + w.seconds if full else None
            reset_at = times[0] + w.seconds if times else now + w.seconds
            blocked_states.append((max(0, w.limit - len(times)), reset_at, retry_at))
        latest = max(s[2] for s in blocked_states if s[2] is not None)
        return Expected(False, tuple(blocked_states), max(1, math.ceil(latest - now)))

    def record(self, subject: str, windows: Sequence[RateLimitWindow], now: float) -> None:
        for w in windows:
            self.logs.setdefault((subject, w.name), []).append(now)


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    make_store: Callable[[FakeClock], RateLimitStore]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


class LimiterMachine(RuleBasedStateMachine):
    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.clock = FakeClock(START)
        self.store: RateLimitStore = harness.make_store(self.clock)
        self.run_id = secrets.token_hex(4)  # fresh subjects for every example (and every shrink)
        self.model = Reference()

    def subject(self, name: str) -> str:
        return f"{self.run_id}-{name}"

    def admit_once(self, name: str, windows: Sequence[RateLimitWindow]) -> Admission:
        now = self.clock.time()
        expected = self.model.expect(name, windows, now)
        admission: Admission = self.h.run(self.store.admit(self.subject(name), windows))
        assert admission.now == now
        assert [s.window for s in admission.states] == list(windows)
        got = tuple((s.remaining, s.reset_at, s.retry_at) for s in admission.states)
        assert (admission.admitted, got) == (expected.admitted, expected.states), (name, windows, now)
        if admission.admitted:
            # Recorded in every window of the request: what the store said is what the model logs.
            self.model.record(name, windows, now)
        else:
            assert admission.retry_after == expected.retry_after
            assert admission.blocking == tuple(s for s in admission.states if s.retry_at is not None)
            assert admission.blocking  # a rejection names the window(s) that are full
        return admission

    def teardown(self) -> None:
        if isinstance(self.store, ClockedRedisStore):
            self.h.run(self.store.aclose())

    # ------------------------------------------------------------------ rules

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: bool(self.model.logs))
    @rule(data=st.data(), offset=st.sampled_from([-EIGHTH, 0.0, EIGHTH]))
    def advance_to_a_window_edge(self, data: st.DataObject, offset: float) -> None:
        """To the instant a logged admission leaves its window (or an eighth before or after)."""
        key = data.draw(st.sampled_from(sorted(self.model.logs)))
        log = self.model.logs[key]
        window = next(w for w in ALL_WINDOWS if w.name == key[1])
        edge = data.draw(st.sampled_from(log)) + window.seconds + offset
        if edge > self.clock.time():
            self.clock.advance(edge - self.clock.time())
            assert self.clock.time() == edge  # eighths: exact

    @rule(name=st.sampled_from(SUBJECTS), which=st.integers(0, len(WINDOW_SETS) - 1), count=st.integers(1, 8))
    def admit(self, name: str, which: int, count: int) -> None:
        for _ in range(count):
            self.admit_once(name, WINDOW_SETS[which])

    @rule(name=st.sampled_from(SUBJECTS), which=st.integers(0, len(WINDOW_SETS) - 1))
    def flood(self, name: str, which: int) -> None:
        """Requests at one instant until the first rejection: the tightest window fills exactly."""
        windows = WINDOW_SETS[which]
        for _ in range(min(w.limit for w in windows) + 1):
            if not self.admit_once(name, windows).admitted:
                return
        raise AssertionError("more admitted at one instant than the tightest window allows")

    @rule(
        name=st.sampled_from(SUBJECTS),
        which=st.integers(0, len(WINDOW_SETS) - 1),
        # Mostly short; sometimes long enough to fill ai-1h (200) or posts-1d (500). (api-1h, 1,000,
        # would cost more time than it adds: it is the same sliding log with other numbers.)
        budget=st.one_of(
            st.integers(1, 40), st.integers(1, 40), st.integers(1, 40), st.sampled_from([210, 520])
        ),
    )
    def saturate(self, name: str, which: int, budget: int) -> None:
        """A client that retries after each 429's `retry_after` until `budget` requests got in: the
        longer windows (ai-1h, posts-1h, posts-1d) fill up too."""
        windows = WINDOW_SETS[which]
        admitted = 0
        while admitted < budget:
            admission = self.admit_once(name, windows)
            if admission.admitted:
                admitted += 1
            else:
                self.clock.advance(admission.retry_after)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def peek_agrees_and_no_window_overflows(self) -> None:
        now = self.clock.time()
        for name in SUBJECTS:
            states: tuple[WindowState, ...] = self.h.run(self.store.peek(self.subject(name), ALL_WINDOWS))
            for window, state in zip(ALL_WINDOWS, states, strict=True):
                inside = self.model.inside(name, window, now)
                reset_at = inside[0] + window.seconds if inside else now
                assert (state.remaining, state.reset_at) == (window.limit - len(inside), reset_at), (
                    name,
                    window,
                )
        for (_, window_name), log in self.model.logs.items():
            window = next(w for w in ALL_WINDOWS if w.name == window_name)
            start = 0
            for end, t in enumerate(log):  # every (t − S, t] that ends at an admission
                while log[start] <= t - window.seconds:
                    start += 1
                assert end - start + 1 <= window.limit, (window_name, t)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_rate_limit_state_machine(kind: str, request: pytest.FixtureRequest) -> None:
    loop = asyncio.new_event_loop()
    if kind == "memory":

        def make_store(clock: FakeClock) -> RateLimitStore:
            return MemoryRateLimitStore(clock)

    else:
        redis_url: str = request.getfixturevalue("redis_url")  # skips (fails under CI) without Redis
        prefix: str = request.getfixturevalue("redis_prefix")  # this run's keys, deleted afterwards

        def make_store(clock: FakeClock) -> RateLimitStore:
            return ClockedRedisStore(connect(redis_url), clock=clock, prefix=prefix)  # closed in teardown

    harness = Harness(loop, make_store)
    try:
        run_state_machine_as_test(
            lambda: LimiterMachine(harness),
            settings=hsettings(
                # Redis answers each admission over the network: fewer examples there, same rules.
                max_examples=40 if kind == "memory" else 20,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        loop.close()
