"""The scheduler/publisher (API.md §7.4): publishes each due destination through its account's
connector, at least once and never twice.

One cycle (`Publisher.run_once`):
1. claim a batch of due destinations in one short transaction (`queue.claim`: lease + attempts + 1,
   the post goes from `scheduled` to `publishing`);
2. outside any transaction, per destination: when an earlier claim may already have sent it
   (claims > 1: a worker died between the platform's answer and our record, or the send timed out,
   or a failed destination was retried; `claims` is never reset), ask the connector
   for the post it made (`find_published`) before sending; then `publish`, with the destination id
   as the idempotency key, bounded by half the lease so that no other worker takes over while a
   call is still in flight (a destination that waited for a free slot first renews a lease that
   would run out during the call, and is not sent once the lease is no longer ours);
3. record the outcome in one short transaction, conditional on still holding the lease: published
   (platform post id and URL), a transient failure (queued again after an exponential backoff with
   jitter, at least the platform's `retry_after`; failed after `max_attempts`), or a permanent one;
   and derive the post's status.

The loop (`Publisher.run`) repeats cycles while a full batch comes back and otherwise sleeps for
`poll_seconds`, or less when `wake(db)` says a post was just queued in this process. It runs inside
`postengine serve` (embedded mode) and alone as `postengine worker`, any number of them at once.
"""

import asyncio
import logging
import math
import os
import random
import secrets
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import anyio
from sqlalchemy import Connection

from postengine.accounts.connectors import (
    Connector,
    MediaRef,
    PermanentPublishError,
    PublishRequest,
    PublishResult,
    TransientPublishError,
)
from postengine.db import Database
from postengine.kit import listcache
from postengine.kit.clock import Clock, to_datetime
from postengine.kit.tasks import cancel_requested
from postengine.ops import metrics
from postengine.posts import queue
from postengine.posts.queue import Claimed

log = logging.getLogger("postengine.publisher")

_wakeups: "weakref.WeakKeyDictionary[Database, asyncio.Event]" = weakref.WeakKeyDictionary()


def wake(db: Database) -> None:
    """A destination just became due in this process: let its publisher loop look now."""
    event = _wakeups.get(db)
    if event is not None:
        event.set()


class ConnectorSource(Protocol):
    def for_account(self, platform: str, is_sandbox: bool) -> Connector: ...


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    batch_size: int = 50
    concurrency: int = 16  # publishes in flight at once, per worker
    lease_seconds: float = 60.0
    max_attempts: int = 5
    poll_seconds: float = 1.0
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3_600.0
    # A platform's `retry_after` is honoured up to this; beyond it (a Retry-After of years) the
    # next due time would leave `datetime`'s range and the outcome could not be recorded at all.
    max_retry_after_seconds: float = 86_400.0

    @property
    def publish_timeout(self) -> float:
        return self.lease_seconds / 2


@dataclass(slots=True)
class CycleReport:
    claimed: int = 0
    published: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0  # our lease was taken over before we could send or record; the new holder does it
    errors: list[str] = field(default_factory=list)

    def add(self, other: "CycleReport") -> None:
        self.claimed += other.claimed
        self.published += other.published
        self.retrying += other.retrying
        self.failed += other.failed
        self.lost += other.lost
        self.errors.extend(other.errors)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def backoff_seconds(config: PublisherConfig, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (half to all of the step), never sooner than `retry_after`
    (a finite one, capped at `max_retry_after_seconds`)."""
    step: float = min(config.backoff_max_seconds, config.backoff_base_seconds * 2.0 ** max(0, attempts - 1))
    delay = step * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(retry_after, config.max_retry_after_seconds))
    return delay


class Publisher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        connectors: ConnectorSource,
        media_base_url: str,
        config: PublisherConfig | None = None,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.connectors = connectors
        self.media_base_url = media_base_url.rstrip("/")
        self.config = config or PublisherConfig()
        self.worker_id = worker_id or new_worker_id()

    def _now(self) -> datetime:
        return to_datetime(self.clock.time())

    async def claim(self) -> list[Claimed]:
        now = self._now()
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        return await self.db.run(
            lambda conn: queue.claim(
                conn, owner=self.worker_id, now=now, lease_until=lease_until, limit=self.config.batch_size
            )
        )

    async def run_once(self) -> CycleReport:
        """Claim one batch and publish it; returns what happened."""
        claimed = await self.claim()
        report = CycleReport(claimed=len(claimed))
        if not claimed:
            return report
        for org_id in {item.org_id for item in claimed}:
            listcache.invalidate(self.db, listcache.POSTS, org_id)  # posts went from scheduled to publishing
        limiter = anyio.CapacityLimiter(self.config.concurrency)

        async def one(item: Claimed) -> None:
            async with limiter:
                await self.publish(item, report)

        async with anyio.create_task_group() as group:
            for item in claimed:
                group.start_soon(one, item)
        metrics.publish_outcomes(
            published=report.published, transient=report.retrying, permanent=report.failed, lost=report.lost
        )
        return report

    async def drain(self) -> CycleReport:
        """Cycles until nothing is due (`postengine worker --once`, tests)."""
        total = CycleReport()
        while True:
            report = await self.run_once()
            total.add(report)
            if report.claimed == 0:
                return total

    async def run(
        self, stop: asyncio.Event | None = None, on_cycle: Callable[[CycleReport], None] | None = None
    ) -> None:
        stop = stop or asyncio.Event()
        woken = _wakeups.setdefault(self.db, asyncio.Event())
        log.info("publisher %s started", self.worker_id)
        while not stop.is_set():
            woken.clear()
            try:
                report = await self.run_once()
            except Exception:
                if cancel_requested():
                    raise asyncio.CancelledError from None  # a cancellation a driver reported as an error
                log.exception("publisher cycle failed; retrying in %s s", self.config.poll_seconds)
                report = CycleReport()
            if report.claimed and on_cycle is not None:
                on_cycle(report)
            if report.claimed >= self.config.batch_size:
                continue  # more may be due right now
            await _first_of(stop, woken, self.config.poll_seconds)
        log.info("publisher %s stopped", self.worker_id)

    def request_for(self, item: Claimed) -> PublishRequest:
        override = item.platform_content.get(item.platform) or {}
        content = override.get("content")
        settings = override.get("settings") or {}
        return PublishRequest(
            destination_id=item.id,
            post_id=item.post_id,
            org_id=item.org_id,
            account_id=item.account_id,
            platform=item.platform,
            account_name=item.account_name,
            content=content if isinstance(content, str) else (item.content or ""),
            media=tuple(
                MediaRef(
                    id=m.id,
                    type=m.type,
                    content_type=m.content_type,
                    url=f"{self.media_base_url}/{m.storage_key}",
                    storage_key=m.storage_key,
                    size=m.size,
                    width=m.width,
                    height=m.height,
                )
                for m in item.media
            ),
            settings=settings if isinstance(settings, dict) else {},
        )

    async def publish(self, item: Claimed, report: CycleReport) -> None:
        if not item.is_active:
            await self._fail(item, report, "The account was disabled before this post was published.")
            return
        if not await self._hold_lease(item):
            report.lost += 1
            log.warning("destination %s: lease lost before sending; its new holder publishes it", item.id)
            return
        request = self.request_for(item)
        connector = self.connectors.for_account(item.platform, item.is_sandbox)
        try:
            with anyio.fail_after(self.config.publish_timeout):
                result: PublishResult | None = None
                if item.claims > 1:
                    result = await connector.find_published(request)
                if result is None:
                    result = await connector.publish(request)
        except PermanentPublishError as exc:
            await self._fail(item, report, exc.message)
            return
        except TransientPublishError as exc:
            await self._retry(item, report, exc.message, exc.retry_after)
            return
        except TimeoutError:
            await self._retry(
                item, report, f"The platform did not answer within {self.config.publish_timeout:g} s.", None
            )
            return
        except Exception as exc:
            # A connector bug or an unexpected network error: retried like a transient failure (the
            # connector is idempotent on the destination id), and logged for the operator.
            log.exception("connector for %s failed on destination %s", item.platform, item.id)
            await self._retry(
                item, report, f"Unexpected error while publishing ({type(exc).__name__}).", None
            )
            return
        now = self._now()
        recorded = await self._record(
            item,
            lambda conn: queue.record_published(
                conn,
                item,
                owner=self.worker_id,
                now=now,
                platform_post_id=result.platform_post_id,
                platform_post_url=result.platform_post_url,
            ),
        )
        if recorded:
            report.published += 1
        else:
            report.lost += 1
            log.warning("destination %s: lease lost before recording; its new holder records it", item.id)

    async def _hold_lease(self, item: Claimed) -> bool:
        """Whether we still hold the lease for a whole send (`publish_timeout`), renewing it when it
        would run out first. A destination can wait for a free slot long after the batch was claimed
        (the batch is larger than `concurrency`); once its lease has run out another worker may hold
        it, and sending it too would publish it twice."""
        now = self._now()
        if item.lease_until - now >= timedelta(seconds=self.config.publish_timeout):
            return True
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        return await self.db.run(
            lambda conn: queue.renew_lease(conn, item, owner=self.worker_id, lease_until=lease_until)
        )

    async def _record(self, item: Claimed, write: Callable[[Connection], bool]) -> bool:
        """One outcome, in its own short transaction (a no-op unless we still hold the lease); this
        process's `GET /posts` pages show it at once."""
        recorded = await self.db.run(write)
        listcache.invalidate(self.db, listcache.POSTS, item.org_id)
        return recorded

    async def _retry(self, item: Claimed, report: CycleReport, error: str, retry_after: float | None) -> None:
        if item.attempts >= self.config.max_attempts:
            await self._fail(item, report, f"{error} (gave up after {item.attempts} attempts)")
            return
        now = self._now()
        due_at = now + timedelta(seconds=backoff_seconds(self.config, item.attempts, retry_after))
        recorded = await self._record(
            item,
            lambda conn: queue.record_retry(
                conn, item, owner=self.worker_id, now=now, due_at=due_at, error=error
            ),
        )
        if recorded:
            report.retrying += 1
            report.errors.append(error)
        else:
            report.lost += 1

    async def _fail(self, item: Claimed, report: CycleReport, error: str) -> None:
        now = self._now()
        recorded = await self._record(
            item,
            lambda conn: queue.record_failed(conn, item, owner=self.worker_id, now=now, error=error[:2000]),
        )
        if recorded:
            report.failed += 1
            report.errors.append(error)
        else:
            report.lost += 1


async def _first_of(stop: asyncio.Event, woken: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
