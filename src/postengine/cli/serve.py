"""`postengine serve`: the HTTP server, and the demo organization and key of the embedded mode."""

import fcntl
import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from postengine import migrate
from postengine.auth import keys as key_service
from postengine.auth.authenticator import bump_epoch
from postengine.auth.scopes import Scope
from postengine.cli.common import (
    CommandError,
    app,
    console,
    fail,
    load_settings,
    run_job,
)
from postengine.config import SEED_EXAMPLE_KEY, Settings
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.generation.providers.registry import ProviderConfigError, chain_names
from postengine.kit.clock import utcnow
from postengine.kit.netguard import is_loopback_host
from postengine.ops.metrics import prepare_multiprocess_metrics
from postengine.orgs import service as orgs


async def ensure_demo(settings: Settings, db: Database) -> tuple[str, str]:
    """The demo organisation (growth plan) and its key, created once and reused afterwards."""
    secret = settings.demo_key.get_secret_value()
    now = utcnow()
    async with db.write() as session:
        org = await orgs.demo_org(session)
        if org is None:
            org = await orgs.create_org(session, name="Demo", plan=Plan.GROWTH, now=now, is_demo=True)
        key = await key_service.find_by_hash(session, key_service.hash_key(settings.secret, secret))
        if key is None:
            await key_service.create_key(
                session,
                secret_key=settings.secret,
                org_id=org.id,
                name="Demo key",
                scopes=frozenset(Scope),
                now=now,
                secret=secret,
            )
            bump_epoch(settings)
        elif key.revoked_at is not None or key.org_id != org.id:
            raise CommandError(
                "the demo key was revoked; set PE_DEMO_KEY to a new pe_live_ key to make another"
            )
    return org.id, secret


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create (once) and print a demo organization and key.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes sharing the port. More than one needs PE_REDIS_URL, so that rate "
            "limits are shared by every process.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP server (embedded mode: applies pending migrations on start)."""
    import uvicorn

    from postengine.app import create_app
    from postengine.logs import configure_logging

    settings = load_settings(host=host, port=port)
    if workers > 1 and not settings.redis_url:
        fail(
            f"--workers {workers} needs PE_REDIS_URL: each process would keep rate limits of its own, "
            "and every limit would be multiplied by the number of processes"
        )
    try:
        chain_names(settings)
    except ProviderConfigError as exc:
        fail(str(exc))
    if demo:
        if settings.demo_key.get_secret_value() == SEED_EXAMPLE_KEY and not is_loopback_host(host):
            fail(
                "the demo key is the public example key from the docs; "
                f"set PE_DEMO_KEY to a secret pe_live_ key before serving the demo on {host}."
            )
        org_id, secret = run_job(ensure_demo)
        base = f"http://{'localhost' if is_loopback_host(host) else host}:{port}"
        console.print(f"[bold]postengine[/bold] on {base}   docs: {base}/docs")
        console.print(f"demo organization {org_id} (growth plan, 500 AI credits a month)")
        console.print(f"demo API key: [bold]{secret}[/bold]", highlight=False)
        console.print(
            "try it:\n"
            f"  curl -X POST {base}/api/v1/ai/generate-image \\\n"
            f'    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\\n'
            """    -d '{"prompt": "A poster that says \\"LISBON\\", warm sunset light", """
            """"model": "flux-schnell", "aspect_ratio": "4:5"}'""",
            highlight=False,
            soft_wrap=True,
        )
    if not settings.is_sqlite:

        async def check_schema(settings: Settings, db: Database) -> list[str]:
            return await migrate.pending(db)

        if missing := run_job(check_schema, upgrade=False):
            fail(
                f"the database schema is behind ({len(missing)} pending migrations); run `postengine db upgrade`"
            )
    elif workers > 1:

        async def upgrade_once(settings: Settings, db: Database) -> None:
            """`run_job` applies SQLite's pending migrations: once here, not in N processes at once."""

        run_job(upgrade_once)
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    configure_logging(json=as_json, level=settings.log_level)
    if workers > 1:
        # Each process builds its app from the environment (`postengine.asgi`), as configured here.
        os.environ.update(PE_HOST=host, PE_PORT=str(port), PE_LOG_JSON="true" if as_json else "false")
        # Every process writes its metrics into one folder, and /metrics (any process) adds them up.
        prepare_multiprocess_metrics()
        uvicorn.run(
            "postengine.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
        )
        return
    app = create_app(settings)
    # Everything loaded so far (modules, models, compiled statements) lives as long as the process:
    # keep it out of the cyclic collector, so that full collections stay short.
    gc.collect()
    gc.freeze()
    with _single_server(settings):
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


@contextmanager
def _single_server(settings: Settings) -> Iterator[None]:
    """Rate limits live in this process in the embedded mode: a second server on the same data would
    double every limit. Refuse it with a clear message instead."""
    if settings.redis_url:
        yield
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "server.lock", "a+", encoding="ascii") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            fail(
                f"another postengine server (pid {handle.read().strip() or '?'}) is already serving "
                f"{settings.data_dir}; rate limits are kept in that process, so only one may run"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
