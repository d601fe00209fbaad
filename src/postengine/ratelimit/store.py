"""Rate-limit stores. Callers see only `RateLimitStore.admit`; the in-process store lives here, a
Redis store (one Lua script per admission) can replace it without touching callers.

Semantics, identical for every store: a request is admitted only if every window has room; then
it is recorded in every window. A window of N requests per S seconds admits a request at time t
only if fewer than N admitted requests have times in (t - S, t] — a sliding log, exact, with no
fixed-window edge bursts. Rejected requests are not recorded.
"""

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from postengine.kit.clock import Clock
from postengine.ratelimit.rules import RateLimitWindow


class WindowState(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: several are built per request, at a third of the cost.
    window: RateLimitWindow
    remaining: int  # after this request
    reset_at: float  # Unix time at which this window next frees a slot
    retry_at: float | None = None  # only for windows that blocked the request


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    now: float
    states: tuple[WindowState, ...]

    @property
    def blocking(self) -> tuple[WindowState, ...]:
        return tuple(state for state in self.states if state.retry_at is not None)

    @property
    def retry_after(self) -> int:
        """Whole seconds (≥ 1) until every blocking window would admit this request."""
        latest = max((s.retry_at for s in self.states if s.retry_at is not None), default=self.now)
        return max(1, math.ceil(latest - self.now))


class RateLimitStore(Protocol):
    async def admit(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        """Admit and record one request in every window, or in none."""
        ...

    async def peek(self, subject: str, windows: Sequence[RateLimitWindow]) -> tuple[WindowState, ...]:
        """The windows' current state, recording nothing."""
        ...


class MemoryRateLimitStore:
    """The in-process store of the embedded mode: one sorted log of admission times per
    (subject, window). Exact within one process; `admit` has no await inside, so on the event loop
    it is atomic across all windows."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logs: dict[tuple[str, int, str], deque[float]] = {}

    async def admit(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        return self.admit_now(subject, windows)

    async def peek(self, subject: str, windows: Sequence[RateLimitWindow]) -> tuple[WindowState, ...]:
        now = self._clock.time()
        states = []
        for window in windows:
            log = self._prune(subject, window, now)
            reset_at = log[0] + window.seconds if log else now
            states.append(WindowState(window, window.limit - len(log), reset_at))
        return tuple(states)

    def sweep(self) -> int:
        """Forget logs with nothing left inside their window (idle keys); returns how many."""
        now = self._clock.time()
        idle = [key for key, log in self._logs.items() if not log or log[-1] <= now - key[1]]
        for key in idle:
            del self._logs[key]
        return len(idle)

    def _prune(self, subject: str, window: RateLimitWindow, now: float) -> deque[float]:
        log = self._logs.setdefault((subject, window.seconds, window.name), deque())
        horizon = now - window.seconds
        while log and log[0] <= horizon:
            log.popleft()
        return log

    def admit_now(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        now = self._clock.time()
        logs: list[deque[float]] = []
        blocked = False
        for window in windows:
            log = self._prune(subject, window, now)
            if len(log) >= window.limit:
                blocked = True
            logs.append(log)

        states: list[WindowState] = []
        for window, log in zip(windows, logs, strict=True):
            if blocked:
                full = len(log) >= window.limit
                # The request fits once all but limit-1 of the logged admissions have expired.
                retry_at = log[len(log) - window.limit] + window.seconds if full else None
                reset_at = log[0] + window.seconds if log else now + window.seconds
                states.append(WindowState(window, max(0, window.limit - len(log)), reset_at, retry_at))
            else:
                log.append(now)
                states.append(WindowState(window, window.limit - len(log), log[0] + window.seconds))
        return Admission(not blocked, now, tuple(states))
