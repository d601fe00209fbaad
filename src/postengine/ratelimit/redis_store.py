"""The Redis rate-limit store of the scale-out mode: the same exact sliding log as
`MemoryRateLimitStore`, shared by every process and machine of a deployment (API.md §3).

One Lua script per admission prunes, checks and records every window of the request atomically,
on Redis's own clock (`TIME`), so processes on machines with skewed clocks still agree. Each
(subject, window) is a sorted set: score = admission time in microseconds, member = that time plus
a random token (two admissions in the same microsecond are two entries). `PEXPIRE` lets an idle
log vanish once its newest entry has left the window, so nothing sweeps. Every key of one subject
carries the hash tag `{subject}`: one script touches one Redis Cluster slot.

When Redis cannot answer (down, timing out, read-only after a failover), requests that carry an
`ai` or `posts` window fail closed with 503 `rate_limit_unavailable`: those limits guard money and
third-party accounts and must hold across every process. Every other request is admitted by a
process-local `MemoryRateLimitStore`, so the API stays up with per-process limits. One warning is
logged when an outage starts and one line when it ends; during an outage Redis is tried again at
most once per `retry_interval`. See docs/scale-out.md.
"""

import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from postengine.config import Settings
from postengine.kit.clock import Clock
from postengine.ratelimit.errors import RateLimitUnavailable
from postengine.ratelimit.rules import RateLimitScope, RateLimitWindow
from postengine.ratelimit.store import Admission, MemoryRateLimitStore, RateLimitStore, WindowState

log = logging.getLogger("postengine.ratelimit")

# Admission is on the path of every request and takes well under a millisecond: a Redis that has
# not answered in half a second is treated as down. A `socket_timeout` / `socket_connect_timeout`
# in PE_REDIS_URL's query string overrides these (redis-py lets URL options win).
SOCKET_TIMEOUT = 0.5
# Connecting is given longer (a loaded machine can take that long to accept), and a process keeps
# at most MAX_CONNECTIONS: a burst of admissions queues for a free connection (up to
# POOL_WAIT_SECONDS) instead of opening hundreds of connections at once, each of which could time out.
CONNECT_TIMEOUT = 2.0
MAX_CONNECTIONS = 32
POOL_WAIT_SECONDS = 2.0
# Scopes whose requests are refused (not admitted per process) while Redis is unreachable.
FAIL_CLOSED = frozenset({RateLimitScope.AI, RateLimitScope.POSTS})
UNAVAILABLE_RETRY_AFTER = 5  # seconds, the 503's Retry-After

_MICROS = 1_000_000

# KEYS[i]: the log of window i. ARGV[1]: a random token; ARGV[2]: "" (use Redis's clock) or a time
# in µs (tests only, see `_script_time`); ARGV[1+2i], ARGV[2+2i]: window i's length (µs) and limit.
# Reply: now, admitted (1/0), then per window: entries after this request, the oldest entry's time
# (-1: none), and for a window that blocks, the time of the entry whose expiry admits (-1: none).
# `#!lua` (Redis 7+): a script with a shebang and no `allow-oom` is refused whole when Redis is out of
# memory, never stopped at its first ZADD with some windows recorded (scripts do not roll back).
# Numbers stay integers (µs < 2^53, exact as Lua numbers and as sorted-set scores); the entry of
# window i is `(now - length, now]`, exactly the memory store's `t > now - seconds`.
_ADMIT = """#!lua
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local counts = {}
local blocked = false
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[1 + 2 * i]))
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] >= tonumber(ARGV[2 + 2 * i]) then blocked = true end
end
local member = string.format('%.17g', now) .. '-' .. ARGV[1]
local out = {now, blocked and 0 or 1}
for i = 1, #KEYS do
  local span = tonumber(ARGV[1 + 2 * i])
  local limit = tonumber(ARGV[2 + 2 * i])
  local count = counts[i]
  local retry = -1
  if blocked then
    if count >= limit then
      retry = tonumber(redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')[2])
    end
  else
    redis.call('ZADD', KEYS[i], now, member)
    redis.call('PEXPIRE', KEYS[i], math.ceil(span / 1000))
    count = count + 1
  end
  local oldest = -1
  if count > 0 then oldest = tonumber(redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')[2]) end
  out[#out + 1] = count
  out[#out + 1] = oldest
  out[#out + 1] = retry
end
return out
"""

# The same arguments; reads only. Reply: now, then per window: entries inside it, the oldest (-1: none).
_PEEK = """#!lua flags=no-writes
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local out = {now}
for i = 1, #KEYS do
  local first = now - tonumber(ARGV[1 + 2 * i]) + 1
  local count = redis.call('ZCOUNT', KEYS[i], first, '+inf')
  local oldest = -1
  if count > 0 then
    oldest = tonumber(redis.call('ZRANGEBYSCORE', KEYS[i], first, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
  end
  out[#out + 1] = count
  out[#out + 1] = oldest
end
return out
"""


class RedisRateLimitStore:
    """`RateLimitStore` on Redis: exact across processes, with the outage policy of the module."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        *,
        clock: Clock,
        prefix: str = "pe:",
        retry_interval: float = 1.0,
        fail_closed: frozenset[RateLimitScope] = FAIL_CLOSED,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}rl:"
        self._admit = client.register_script(_ADMIT)  # EVALSHA; SCRIPT LOAD again on NOSCRIPT
        self._peek = client.register_script(_PEEK)
        # The app's clock serves only the fallback store (process-local by nature).
        self._fallback = MemoryRateLimitStore(clock)
        self._retry_interval = retry_interval
        self._fail_closed = fail_closed
        self._down_since: float | None = None  # time.monotonic() at the first failure of an outage
        self._next_try = 0.0

    @property
    def available(self) -> bool:
        """False during an outage (from the first failed call until one succeeds)."""
        return self._down_since is None

    async def admit(self, subject: str, windows: Sequence[RateLimitWindow]) -> Admission:
        reply = await self._call(self._admit, subject, windows)
        if reply is None:
            closed = next((w.scope for w in windows if w.scope in self._fail_closed), None)
            if closed is not None:
                raise RateLimitUnavailable(closed, UNAVAILABLE_RETRY_AFTER)
            return self._fallback.admit_now(subject, windows)
        now = reply[0] / _MICROS
        blocked = not reply[1]
        states = []
        for i, window in enumerate(windows):
            count, oldest, retry = reply[2 + 3 * i : 5 + 3 * i]
            if blocked:
                retry_at = retry / _MICROS + window.seconds if retry >= 0 else None
                reset_at = oldest / _MICROS + window.seconds if count else now + window.seconds
                states.append(WindowState(window, max(0, window.limit - count), reset_at, retry_at))
            else:
                states.append(WindowState(window, window.limit - count, oldest / _MICROS + window.seconds))
        return Admission(not blocked, now, tuple(states))

    def sweep(self) -> int:
        """Forget the outage fallback's idle logs (Redis's own keys expire by themselves)."""
        return self._fallback.sweep()

    async def peek(self, subject: str, windows: Sequence[RateLimitWindow]) -> tuple[WindowState, ...]:
        reply = await self._call(self._peek, subject, windows)
        if reply is None:
            return await self._fallback.peek(subject, windows)
        now = reply[0] / _MICROS
        states = []
        for i, window in enumerate(windows):
            count, oldest = reply[1 + 2 * i : 3 + 2 * i]
            reset_at = oldest / _MICROS + window.seconds if count else now
            states.append(WindowState(window, window.limit - count, reset_at))
        return tuple(states)

    async def ping(self) -> bool:
        """Whether Redis answers now (start-up and readiness checks); a failure starts an outage."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    def key(self, subject: str, window: RateLimitWindow) -> str:
        """`{prefix}rl:{subject}:ai-5m`: the braces are the Redis Cluster hash tag."""
        return f"{self._prefix}{{{subject}}}:{window.name}"

    def _script_time(self) -> str:
        """The script's `now`: empty, so it reads Redis's clock. Tests override this to drive the
        store with a fake clock (the one way the script takes a time from outside)."""
        return ""

    async def _call(self, script: Any, subject: str, windows: Sequence[RateLimitWindow]) -> list[int] | None:
        """The script's reply, or None when Redis cannot answer (the outage policy applies)."""
        if self._down_since is not None and time.monotonic() < self._next_try:
            return None
        keys = [self.key(subject, window) for window in windows]
        args: list[str | int] = [secrets.token_hex(8), self._script_time()]
        for window in windows:
            args += [window.seconds * _MICROS, window.limit]
        try:
            reply: list[int] = await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._recovered()
        return reply

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._next_try = now + self._retry_interval
        if self._down_since is None:
            self._down_since = now
            # The exception's text names host and port at most, never the URL's password.
            log.warning(
                "Redis rate-limit store unavailable (%s: %s): %s requests get 503 rate_limit_unavailable "
                "and other limits hold per process until it answers again",
                type(exc).__name__,
                exc,
                " and ".join(sorted(self._fail_closed)) or "no",
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning(
                "Redis rate-limit store available again after %.1f s", time.monotonic() - self._down_since
            )
            self._down_since = None


def connect(url: str) -> "redis.asyncio.Redis":
    """A client for the store: short timeouts, and one immediate retry on a broken connection only
    (a pooled connection the server closed). Never on a timeout: the script may have run, and running
    it twice would record the admission twice."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
    )
    return redis.asyncio.Redis(connection_pool=pool)


async def open_rate_limit_store(settings: Settings, clock: Clock) -> RateLimitStore | None:
    """The Redis store when `PE_REDIS_URL` is set (None otherwise: the embedded in-process store).
    An unreachable Redis does not stop start-up: the outage policy applies until it answers."""
    if not settings.redis_url:
        return None
    store = RedisRateLimitStore(connect(settings.redis_url), clock=clock, prefix=settings.redis_prefix)
    if await store.ping():
        log.info("rate limits are kept in Redis under the prefix %r", settings.redis_prefix)
    return store


async def close_rate_limit_store(store: RateLimitStore) -> None:
    """Closes what `open_rate_limit_store` opened (nothing to do for the in-process store)."""
    if isinstance(store, RedisRateLimitStore):
        await store.aclose()
