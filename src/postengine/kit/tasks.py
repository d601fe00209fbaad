"""Background loops that retry on errors, and still stop when cancelled."""

import asyncio


def cancel_requested() -> bool:
    """True once this task has been asked to stop.

    A loop that catches `Exception` to retry a failing job must check this after catching: a
    library can turn a cancellation into an error of its own (a read timeout of redis-py or asyncpg,
    an `asyncio.timeout` racing the cancellation), and the loop would then sleep and retry for ever,
    while the shutdown waits for it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
