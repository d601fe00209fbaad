"""Test doubles at the edges of the Redis store: a fake clock fed into the script, a TCP relay
that can take Redis away."""

import asyncio
import contextlib

import redis.asyncio

from postengine.kit.clock import Clock
from postengine.ratelimit.redis_store import RedisRateLimitStore


class ClockedRedisStore(RedisRateLimitStore):
    """The Redis store on a fake clock (the one test-only path into the script: `_script_time`),
    so that it can be compared step by step with the memory store. Times are whole microseconds
    on the Redis side; the tests use times that are exact binary fractions, so both agree to the bit."""

    def __init__(self, client: "redis.asyncio.Redis", *, clock: Clock, prefix: str) -> None:
        super().__init__(client, clock=clock, prefix=prefix)
        self._clock = clock

    def _script_time(self) -> str:
        return str(round(self._clock.time() * 1_000_000))



class RedisProxy:
    """A TCP relay in front of the real Redis that a test can take down (`stop`), bring back
    (`start`, same port) or stall (`stall`: bytes are held, so the client's socket timeout fires)."""

    def __init__(self, host: str, port: int, db: int) -> None:
        self._target = (host, port)
        self._db = db
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for each in (writer, up_writer):
                self._writers.discard(each)
                each.close()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.close()
