"""`postengine worker`: the publisher loop alone, for the scale-out mode (DESIGN.md §1) — or next to
an embedded server to publish faster. Any number of workers may run against one database: they
claim destinations under leases (`posts/queue.py`) and never publish one twice.

SIGTERM or SIGINT stop a worker after the publishes in flight have been recorded."""

import asyncio
import signal
import sys
from typing import Annotated, Any

import typer

from postengine import migrate
from postengine.accounts.connectors.registry import Connectors
from postengine.cli.common import CommandError, JsonOpt, app, emit, err_console, run_job
from postengine.config import Settings
from postengine.db import Database
from postengine.kit.clock import SystemClock
from postengine.posts.publisher import CycleReport, Publisher, PublisherConfig


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is due now, then exit (cron, tests).")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Publishes in flight at once.")] = 16,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Destinations claimed per cycle.")] = 50,
    lease_seconds: Annotated[
        float,
        typer.Option(
            min=2.0,
            help="How long a claim is held: after a crash, its destinations wait this long before "
            "another worker takes them over. Publish calls are cut off at half of it.",
        ),
    ] = 60.0,
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="Sleep between empty cycles.")] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Publish due posts to their accounts (the scheduler/publisher, without the HTTP server)."""
    from postengine.logs import configure_logging

    config = PublisherConfig(
        batch_size=batch_size,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
    )

    def progress(report: CycleReport) -> None:
        line = (
            f"claimed {report.claimed}: published {report.published}, retrying {report.retrying}, "
            f"failed {report.failed}" + (f", taken over {report.lost}" if report.lost else "")
        )
        if as_json:
            err_console.print(line, highlight=False)
        else:
            typer.echo(line)
        sys.stdout.flush()

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        configure_logging(
            json=settings.log_json if settings.log_json is not None else not sys.stderr.isatty(),
            level=settings.log_level,
        )
        if not settings.is_sqlite and (missing := await migrate.pending(db)):
            raise CommandError(
                f"the database schema is behind ({len(missing)} pending migrations); run `postengine db upgrade`"
            )
        clock = SystemClock()
        publisher = Publisher(db, clock, Connectors(db, clock), settings.media_base_url, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if not as_json:
            typer.echo(f"worker {publisher.worker_id} publishing{' what is due now' if once else ''}")
        total = CycleReport()
        if once:
            while not stop.is_set():
                report = await publisher.run_once()
                if not report.claimed:
                    break
                progress(report)
                total.add(report)
        else:

            def counted(report: CycleReport) -> None:
                total.add(report)
                progress(report)

            await publisher.run(stop, counted)
        return {
            "worker_id": publisher.worker_id,
            "claimed": total.claimed,
            "published": total.published,
            "retrying": total.retrying,
            "failed": total.failed,
            "taken_over": total.lost,
        }

    result = run_job(job)
    emit(
        as_json,
        result,
        lambda: typer.echo(
            f"worker stopped: published {result['published']}, retrying {result['retrying']}, "
            f"failed {result['failed']}"
        ),
    )
