"""Test doubles at the edges of the Redis store: a fake clock fed into the script, a TCP relay
that can take Redis away."""

import redis.asyncio

from postengine.kit.clock import Clock
from postengine.ratelimit.redis_store import RedisRateLimitStore
from tests.relay import TcpRelay


class ClockedRedisStore(RedisRateLimitStore):
    """The Redis store on a fake clock (the one test-only path into the script: `_script_time`),
    so that it can be compared step by step with the memory store. Times are whole microseconds
    on the Redis side; the tests use times that are exact binary fractions, so both agree to the bit."""

    def __init__(self, client: "redis.asyncio.Redis", *, clock: Clock, prefix: str) -> None:
        super().__init__(client, clock=clock, prefix=prefix)
        self._clock = clock

    def _script_time(self) -> str:
        return str(round(self._clock.time() * 1_000_000))



class RedisProxy(TcpRelay):
    """The relay in front of the real Redis, with the URL that reaches it through the relay."""

    def __init__(self, host: str, port: int, db: int) -> None:
        super().__init__(host, port)
        self._db = db

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"
