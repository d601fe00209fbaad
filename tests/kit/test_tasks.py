"""Background loops stop when cancelled, even when a library reports the cancellation as an error of
its own (seen in CI: redis-py's read timeout racing the lifespan's cancel left `follow_remote`
sleeping and retrying for ever, and the app's shutdown waited for it)."""

import asyncio
from pathlib import Path

from redis.exceptions import TimeoutError as RedisTimeoutError

from postengine.app import _every
from postengine.kit.epoch import follow_remote


class SwallowingRedis:
    """A client whose pending command turns a cancellation into its own timeout error."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def get(self, key: str) -> bytes | None:
        self.waiting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisTimeoutError("Timeout reading from socket") from None
        return None


async def test_follow_remote_stops_when_its_cancellation_is_reported_as_an_error(tmp_path: Path) -> None:
    client = SwallowingRedis()
    task = asyncio.create_task(follow_remote(tmp_path / "epoch", client, "pe:epoch", interval=0.01))
    await asyncio.wait_for(client.waiting.wait(), 5)
    task.cancel()
    await _stopped(task)


async def test_every_stops_when_its_cancellation_is_reported_as_an_error() -> None:
    client = SwallowingRedis()

    async def job() -> None:
        await client.get("k")

    task = asyncio.create_task(_every(0.001, job))
    await asyncio.wait_for(client.waiting.wait(), 5)
    task.cancel()
    await _stopped(task)


async def _stopped(task: asyncio.Task[None]) -> None:
    # `asyncio.wait`, not `wait_for`: the latter would cancel again and wait for ever for a task that
    # ignores cancellation (before the fix: the task slept and retried, and this failed here).
    await asyncio.wait({task}, timeout=5)
    assert task.done(), "the loop kept running after it was cancelled"
    assert task.cancelled()
