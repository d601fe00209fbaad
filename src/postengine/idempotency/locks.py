"""Who is running the request of an `Idempotency-Key` right now (DESIGN.md §1: in-process in the
embedded mode, Redis in the scale-out mode).

A lock only turns a concurrent duplicate into a quick 409; it is not what keeps a request from
running twice. That is the database: the stored response is inserted, under the key's primary key,
in the same transaction as what the request created or charged, so of two attempts that both ran
(a lock that expired, a Redis failover) only one can commit. So the locks may fail open: when Redis
cannot answer, requests run without one.

A lock's value is the holder's token and its request's fingerprint and endpoint, so that a
different request with the same key is told 422 (mismatch) even while the first one still runs.
"""

import logging
from dataclasses import dataclass
from typing import Protocol

import anyio
import redis.asyncio
from redis.exceptions import RedisError

from postengine.kit.clock import Clock

log = logging.getLogger("postengine.idempotency")


@dataclass(frozen=True, slots=True)
class Held:
    """The lock is someone else's: their request (fingerprint, endpoint) and how long the lock has left."""

    fingerprint: str
    endpoint: str
    seconds_left: float


class LockStore(Protocol):
    async def acquire(self, name: str, token: str, request: tuple[str, str], seconds: float) -> Held | None:
        """Take the lock for `seconds` for `request` (fingerprint, endpoint): None; or say who holds it."""
        ...

    async def release(self, name: str, token: str) -> None:
        """Give the lock back, if `token` still holds it; also when the caller is being cancelled."""
        ...


class MemoryLocks:
    """The embedded mode's locks: one process serves every request, so a dict is exact, and a
    process that dies takes its locks with it (a restart never finds a key stuck)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, tuple[str, str], float]] = {}  # name → (token, request, until)

    async def acquire(self, name: str, token: str, request: tuple[str, str], seconds: float) -> Held | None:
        now = self._clock.time()
        held = self._held.get(name)
        if held is not None and held[2] > now:
            return Held(*held[1], held[2] - now)
        if len(self._held) > 10_000:
            self._sweep(now)
        self._held[name] = (token, request, now + seconds)
        return None

    async def release(self, name: str, token: str) -> None:
        # Never awaits, so a cancelled request (its client went away) still lets go.
        held = self._held.get(name)
        if held is not None and held[0] == token:
            del self._held[name]

    def _sweep(self, now: float) -> None:
        for name in [name for name, held in self._held.items() if held[2] <= now]:
            del self._held[name]


# Delete the lock only if this token holds it.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks:
    """The scale-out mode's locks: `SET NX PX` on the Redis every process shares, so a duplicate sent
    to another process or machine is told 409 too. A lock expires on its own (PX), so a process that
    dies holding one blocks its key for at most `seconds`."""

    def __init__(self, client: "redis.asyncio.Redis", prefix: str) -> None:
        self._client = client
        self._prefix = prefix + "idem:"
        self._release = client.register_script(_RELEASE)

    async def acquire(self, name: str, token: str, request: tuple[str, str], seconds: float) -> Held | None:
        key = self._prefix + name
        value = f"{token}:{request[0]}:{request[1]}"
        try:
            for _ in range(3):  # the holder may let go between SET and GET: then try again
                if await self._client.set(key, value, nx=True, px=max(1, int(seconds * 1000))):
                    return None
                pipe = self._client.pipeline(transaction=False)
                pipe.get(key)
                pipe.pttl(key)
                held, ttl = await pipe.execute()
                if held is not None:
                    text = held.decode() if isinstance(held, bytes) else str(held)
                    _, fingerprint, endpoint = text.split(":", 2)
                    return Held(fingerprint, endpoint, max(0.0, int(ttl) / 1000))
        except (RedisError, OSError) as exc:
            # Fail open: the database still lets only one attempt commit (see the module docstring).
            log.warning("idempotency lock not taken, Redis unavailable: %s", type(exc).__name__)
            return None
        return None

    async def release(self, name: str, token: str) -> None:
        try:
            # Even when the request is being cancelled (its client went away): otherwise the key would
            # answer 409 until the lock expires.
            with anyio.CancelScope(shield=True):
                await self._release(keys=[self._prefix + name], args=[token])
        except (RedisError, OSError) as exc:
            log.warning("idempotency lock not released (it expires by itself): %s", type(exc).__name__)
