"""A circuit breaker per provider, so a dead upstream is skipped quickly instead of costing every
request its retries and timeouts.

closed     calls go through; `threshold` consecutive failures open the circuit
open       calls are refused at once (`ProviderOverloaded` with the seconds left, so the chain moves on
           to the next provider, or the client gets 503 with `Retry-After`) for `reset_after` seconds
half-open  one trial call goes through; success closes the circuit, failure opens it again

What counts as a failure: `ProviderFailed` and `ProviderOverloaded` (5xx, timeouts, rate limits,
bad output). A safety block is a healthy answer. A misconfiguration is not counted: it already fails
fast, and its own 503 message tells the operator what to fix, which "circuit open" would hide.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from enum import StrEnum

from PIL import Image

from postengine.generation.providers.base import (
    ImageProvider,
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderMisconfigured,
    ProviderOverloaded,
)

log = logging.getLogger("postengine.providers")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        reset_after: float = 30.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.name = name
        self.threshold = threshold
        self.reset_after = reset_after
        self._now = now
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._now() - self._opened_at >= self.reset_after:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def before_call(self) -> float | None:
        """None: go ahead. Otherwise the seconds until a call may be tried again."""
        state = self.state
        if state is CircuitState.CLOSED:
            return None
        if state is CircuitState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return None
        assert self._opened_at is not None
        return max(1.0, self._opened_at + self.reset_after - self._now())

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("%s: upstream answering again, circuit closed", self.name)
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failure(self) -> None:
        self._failures += 1
        if self._trial_running or (self._opened_at is None and self._failures >= self.threshold):
            log.warning(
                "%s: %d failures in a row, skipping it for %.0f s (circuit open)",
                self.name,
                self._failures,
                self.reset_after,
            )
            self._opened_at = self._now()
        self._trial_running = False

    def abandon(self) -> None:
        """The call ended without an answer either way (cancelled): let another trial run."""
        self._trial_running = False


class GuardedProvider:
    """A provider behind its circuit breaker; same interface as the provider it wraps."""

    def __init__(self, inner: ImageProvider, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.name = inner.name

    async def generate(self, request: ImageRequest) -> Image.Image:
        wait = self.breaker.before_call()
        if wait is not None:
            raise ProviderOverloaded(
                f"{self.name}: skipped, its upstream keeps failing (circuit open)", math.ceil(wait)
            )
        try:
            image = await self.inner.generate(request)
        except ProviderMisconfigured:
            self.breaker.abandon()
            raise
        except ProviderError as exc:
            if isinstance(exc, ProviderBlocked):
                self.breaker.success()  # the upstream answered
            else:
                self.breaker.failure()
            raise
        except BaseException:
            self.breaker.abandon()
            raise
        self.breaker.success()
        return image
