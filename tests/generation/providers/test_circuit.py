"""The per-provider circuit breaker: a dead upstream is skipped quickly, and tried again later."""

import anyio
import pytest
from PIL import Image

from postengine.generation.models import AspectRatio, ImageModel
from postengine.generation.providers import (
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderFailed,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.circuit import CircuitBreaker, CircuitState, GuardedProvider

REQUEST = ImageRequest(ImageModel.FLUX_SCHNELL, "a cat", AspectRatio.SQUARE, 64, 64)


class Now:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


class Upstream:
    name = "fake"

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None

    async def generate(self, request: ImageRequest) -> Image.Image:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Image.new("RGB", (request.width, request.height))


def guarded(threshold: int = 3, reset_after: float = 30.0) -> tuple[GuardedProvider, Upstream, Now]:
    now = Now()
    upstream = Upstream()
    return (
        GuardedProvider(
            upstream, CircuitBreaker("fake", threshold=threshold, reset_after=reset_after, now=now)
        ),
        upstream,
        now,
    )


async def fail_times(provider: GuardedProvider, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ProviderError):
            await provider.generate(REQUEST)


async def test_opens_after_threshold_consecutive_failures_and_skips_without_calling() -> None:
    provider, upstream, now = guarded(threshold=3)
    upstream.error = ProviderFailed("HTTP 500")
    await fail_times(provider, 2)
    assert provider.breaker.state is CircuitState.CLOSED
    await fail_times(provider, 1)
    assert provider.breaker.state is CircuitState.OPEN
    now.value += 10
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(REQUEST)
    assert upstream.calls == 3  # skipped: the upstream was not called
    assert caught.value.retry_after == 20
    assert "circuit open" in str(caught.value)


async def test_a_success_resets_the_count() -> None:
    provider, upstream, _ = guarded(threshold=3)
    upstream.error = ProviderOverloaded("429")
    await fail_times(provider, 2)
    upstream.error = None
    await provider.generate(REQUEST)
    upstream.error = ProviderFailed("HTTP 502")
    await fail_times(provider, 2)
    assert provider.breaker.state is CircuitState.CLOSED


async def test_half_open_lets_one_trial_through_then_closes_on_success() -> None:
    provider, upstream, now = guarded(threshold=1, reset_after=30)
    upstream.error = ProviderFailed("HTTP 500")
    await fail_times(provider, 1)
    now.value += 30
    assert provider.breaker.state is CircuitState.HALF_OPEN
    upstream.error = None
    image = await provider.generate(REQUEST)
    assert image.size == (64, 64)
    assert provider.breaker.state is CircuitState.CLOSED


async def test_failed_trial_opens_again_for_a_full_period() -> None:
    provider, upstream, now = guarded(threshold=2, reset_after=30)
    upstream.error = ProviderFailed("HTTP 500")
    await fail_times(provider, 2)
    now.value += 31
    await fail_times(provider, 1)  # the trial
    assert upstream.calls == 3
    assert provider.breaker.state is CircuitState.OPEN
    now.value += 29
    with pytest.raises(ProviderOverloaded):
        await provider.generate(REQUEST)
    assert upstream.calls == 3


async def test_only_one_trial_at_a_time_while_half_open() -> None:
    provider, upstream, now = guarded(threshold=1)
    upstream.error = ProviderFailed("HTTP 500")
    await fail_times(provider, 1)
    now.value += 60
    release = anyio.Event()

    class Slow(Upstream):
        async def generate(self, request: ImageRequest) -> Image.Image:
            self.calls += 1
            await release.wait()
            return Image.new("RGB", (8, 8))

    slow = Slow()
    provider.inner = slow
    results: list[object] = []

    async def call() -> None:
        try:
            results.append(await provider.generate(REQUEST))
        except ProviderOverloaded as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert slow.calls == 1
    assert sum(isinstance(result, ProviderOverloaded) for result in results) == 1
    assert provider.breaker.state is CircuitState.CLOSED


async def test_safety_blocks_and_misconfiguration_do_not_open_the_circuit() -> None:
    provider, upstream, _ = guarded(threshold=1)
    upstream.error = ProviderBlocked("SAFETY")
    await fail_times(provider, 3)
    upstream.error = ProviderMisconfigured("gemini rejected the server's credentials")
    with pytest.raises(ProviderMisconfigured):  # still its own clear error, never "circuit open"
        await provider.generate(REQUEST)
    await fail_times(provider, 2)
    assert provider.breaker.state is CircuitState.CLOSED
    assert upstream.calls == 6


async def test_a_cancelled_trial_frees_the_half_open_slot() -> None:
    provider, upstream, now = guarded(threshold=1)
    upstream.error = ProviderFailed("HTTP 500")
    await fail_times(provider, 1)
    now.value += 60
    upstream.error = anyio.get_cancelled_exc_class()()
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await provider.generate(REQUEST)
    upstream.error = None
    await provider.generate(REQUEST)  # a new trial is allowed
    assert provider.breaker.state is CircuitState.CLOSED


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker("x", threshold=0)
