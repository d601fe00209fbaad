"""Readiness: can this process serve requests right now? Checks the database (a trivial query),
Redis (PING, when `PE_REDIS_URL` is set) and media storage (HEAD of a key that never exists).

Each check has a short deadline and they run concurrently, so a probe answers within about
`CHECK_TIMEOUT_SECONDS` even when a dependency hangs. Results name the dependency and a short,
fixed reason ("timed out", "unreachable", …): never an exception message, which could carry a
host, a user name or worse. The exception itself goes to the log, once per change of state, not on
every probe (load balancers probe every few seconds).
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import anyio
import redis.asyncio
import redis.exceptions
from sqlalchemy import Connection, text

from postengine.context import AppContext

log = logging.getLogger("postengine.ops")

CHECK_TIMEOUT_SECONDS: Final = 2.0
# An object of an organisation and a media item that never exist (ids are 96 random bits), in the
# backend's own key layout: `exists` on it is one HEAD request (or one stat) that answers False.
_PROBE_ORG: Final = "org_" + "0" * 24
_PROBE_MEDIA: Final = "med_" + "0" * 24


class CheckStatus(StrEnum):
    OK = "ok"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    duration_ms: float
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": str(self.status), "duration_ms": self.duration_ms}
        if self.reason is not None:
            body["reason"] = self.reason
        return body


_last_status: dict[str, CheckStatus] = {}


async def check_readiness(ctx: AppContext, seconds: float = CHECK_TIMEOUT_SECONDS) -> list[CheckResult]:
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": lambda: _database(ctx),
        "storage": lambda: _storage(ctx),
    }
    if ctx.settings.redis_url:
        url = ctx.settings.redis_url
        checks["redis"] = lambda: _redis(url, seconds)
    results: dict[str, CheckResult] = {}

    async def run(name: str, check: Callable[[], Awaitable[None]]) -> None:
        results[name] = await _timed(name, check, seconds)

    async with anyio.create_task_group() as group:
        for name, check in checks.items():
            group.start_soon(run, name, check)
    return [results[name] for name in checks]


async def _timed(name: str, check: Callable[[], Awaitable[None]], seconds: float) -> CheckResult:
    started = time.perf_counter()
    reason: str | None = None
    error: BaseException | None = None
    try:
        with anyio.fail_after(seconds):
            await check()
    except TimeoutError as exc:
        reason, error = f"timed out after {seconds:g} s", exc
    except Exception as exc:
        reason, error = _reason(exc), exc
    status = CheckStatus.OK if reason is None else CheckStatus.FAIL
    if _last_status.get(name, CheckStatus.OK) != status:
        if error is not None:
            log.warning("readiness: %s check failing (%s)", name, reason, exc_info=error)
        else:
            log.warning("readiness: %s check passes again", name)
    _last_status[name] = status
    return CheckResult(name, status, round((time.perf_counter() - started) * 1000, 2), reason)


def _reason(exc: BaseException) -> str:
    """A short, fixed wording for what went wrong; the exception's own text stays in the log."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, redis.exceptions.AuthenticationError):
            return "authentication failed"
        if isinstance(seen, TimeoutError | redis.exceptions.TimeoutError):
            return "timed out"
        if isinstance(seen, ConnectionError | OSError | redis.exceptions.ConnectionError):
            return "unreachable"
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return f"failed ({type(exc).__name__})"


async def _database(ctx: AppContext) -> None:
    def select_one(conn: Connection) -> None:
        conn.execute(text("SELECT 1")).scalar_one()

    await ctx.db.run_read(select_one)


async def _storage(ctx: AppContext) -> None:
    await ctx.storage.exists(f"{ctx.storage.folder(_PROBE_ORG, _PROBE_MEDIA)}/readyz.webp")


async def _redis(url: str, seconds: float) -> None:
    # A connection of its own per probe, not the rate-limit store's: the probe then also proves
    # that a new connection can be opened, and it never takes a connection from the request path.
    client = redis.asyncio.Redis.from_url(url, socket_timeout=seconds, socket_connect_timeout=seconds)
    try:
        await client.ping()
    finally:
        await client.aclose()
