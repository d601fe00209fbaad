"""A change counter shared through a file: one process bumps it, every other process sees the
change with one `stat`, so in-process caches can be dropped at once.

The file is looked at no more than once every `CHECK_SECONDS` (a `stat` per request was 7 % of a
cached list page under load): another process's bump shows within that time; a bump made in this
process shows at once.

A file reaches the processes of one machine. With Redis (scale-out), a counter there reaches every
machine: the commands that bump the file also increment it (`bump_remote`), and each server
process copies it into its epochs every `CHECK_SECONDS` (`follow_remote`), so a change on any
machine shows on all of them within that time.
"""

import asyncio
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any, Generic, TypeVar

from postengine.kit.tasks import cancel_requested

K = TypeVar("K")
V = TypeVar("V")


CHECK_SECONDS = 0.05
REMOTE_KEY = "epoch"  # under the deployment's Redis prefix

log = logging.getLogger("postengine.epoch")

# Every Epoch of this process, so that a bump made here reaches them all without waiting.
_instances: "weakref.WeakSet[Epoch]" = weakref.WeakSet()


class Epoch:
    def __init__(self, path: Path, check_seconds: float = CHECK_SECONDS) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self._token = (0, 0, 0)
        self._next_check = 0.0
        self.remote = 0  # the shared counter in Redis, as last read by `follow_remote`
        _instances.add(self)

    def token(self) -> tuple[int, int, int, int]:
        now = time.monotonic()
        if now >= self._next_check:
            self._token = self._read()
            self._next_check = now + self.check_seconds
        return (*self._token, self.remote)

    def _read(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def bump(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(str(time.time_ns()), encoding="ascii")
        os.replace(tmp, self.path)  # a new inode each time, so the token always changes
        for epoch in list(_instances):
            if epoch.path == self.path:
                epoch._next_check = 0.0


def _set_remote(path: Path, value: int) -> None:
    for epoch in list(_instances):
        if epoch.path == path:
            epoch.remote = value


async def follow_remote(path: Path, client: Any, key: str, interval: float = CHECK_SECONDS) -> None:
    """Copy the Redis counter `key` into every epoch of `path` in this process, until cancelled.
    While Redis cannot be read the last value stays (the caches' TTL still bounds staleness)."""
    failing = False
    while True:
        try:
            raw = await client.get(key)
        except Exception as exc:  # redis-py's errors, timeouts, a closed connection
            if cancel_requested():
                raise asyncio.CancelledError from exc  # a cancellation that redis-py reported as an error
            if not failing:
                log.warning("cannot read the shared epoch from Redis (%s); retrying", type(exc).__name__)
            failing = True
        else:
            if failing:
                log.warning("reading the shared epoch from Redis again")
            failing = False
            _set_remote(path, int(raw or 0))
        await asyncio.sleep(interval)


def bump_remote(client: Any, key: str) -> None:
    """Increment the shared counter (a synchronous redis-py client: the CLI's)."""
    client.incr(key)


class EpochCache(Generic[K, V]):
    """In-process entries that live `ttl` seconds and are all dropped when the epoch changes.

    `lookup` returns `(value,)` for a fresh entry (the value itself may be None: a cached miss)
    and None when there is none. Bounded: when full, it starts over rather than grow.
    """

    def __init__(self, epoch: Epoch, ttl: float, max_entries: int = 10_000) -> None:
        self._epoch = epoch
        self._token = epoch.token()
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[K, tuple[V, float]] = {}

    def lookup(self, key: K) -> tuple[V] | None:
        token = self._epoch.token()
        if token != self._token:
            self._entries.clear()
            self._token = token
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[1] < self._ttl:
            return (entry[0],)
        return None

    def store(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (value, time.monotonic())

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)
