"""The `postengine` command line: serve, and the administration that has no HTTP endpoint (keys,
organisations, credits). Every command takes `--json` for scripts."""

import asyncio
import fcntl
import gc
import ipaddress
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from postengine import migrate
from postengine.auth import keys as key_service
from postengine.auth.authenticator import bump_epoch
from postengine.auth.scopes import Scope, parse_scopes
from postengine.config import SEED_EXAMPLE_KEY, Settings
from postengine.credits import repository as credit_repo
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import iso, utcnow
from postengine.orgs import service as orgs

T = TypeVar("T")

app = typer.Typer(help="postengine: AI image generation for social media, self-hosted.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="AI credits.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(db_app, name="db")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class CommandError(Exception):
    """A mistake of the operator's: printed as one line, exit code 1."""


def _run(job: Callable[[Settings, Database], Coroutine[Any, Any, T]], *, upgrade: bool = True) -> T:
    settings = Settings()

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            if upgrade and settings.is_sqlite:
                await migrate.upgrade(db)
            return await job(settings, db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except (CommandError, ValueError, LookupError, key_service.KeyLimitReached) as exc:
        _fail(exc.args[0] if exc.args else str(exc))


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _emit(as_json: bool, payload: Any, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        human()


# ---------------------------------------------------------------- serve


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
            bump_epoch(settings.auth_epoch_path)
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
) -> None:
    """Run the HTTP server (embedded mode: applies pending migrations on start)."""
    import uvicorn

    from postengine.app import create_app
    from postengine.logs import configure_logging

    settings = Settings(host=host, port=port)
    if demo:
        if settings.demo_key.get_secret_value() == SEED_EXAMPLE_KEY and not _is_loopback(host):
            _fail(
                "the demo key is the public example key from the docs; "
                f"set PE_DEMO_KEY to a secret pe_live_ key before serving the demo on {host}."
            )
        org_id, secret = _run(ensure_demo)
        base = f"http://{'localhost' if _is_loopback(host) else host}:{port}"
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

        if missing := _run(check_schema, upgrade=False):
            _fail(
                f"the database schema is behind ({len(missing)} pending migrations); run `postengine db upgrade`"
            )
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    configure_logging(json=as_json, level=settings.log_level)
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
            _fail(
                f"another postengine server (pid {handle.read().strip() or '?'}) is already serving "
                f"{settings.data_dir}; rate limits are kept in that process, so only one may run"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


# ---------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply pending database migrations."""

    async def job(settings: Settings, db: Database) -> list[str]:
        todo = await migrate.pending(db)
        await migrate.upgrade(db)
        return todo

    applied = _run(job, upgrade=False)
    _emit(
        as_json,
        {"applied": applied},
        lambda: console.print(
            f"applied {len(applied)} migration(s): {', '.join(applied)}"
            if applied
            else "database is up to date"
        ),
    )


# ---------------------------------------------------------------- orgs


@orgs_app.command("create")
def orgs_create(
    name: str,
    plan: Annotated[Plan, typer.Option(help="Subscription plan.")] = Plan.TRIAL,
    as_json: JsonOpt = False,
) -> None:
    """Create an organization on a plan (its monthly AI credits start now)."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.write() as session:
            org = await orgs.create_org(session, name=name, plan=plan, now=utcnow())
            return {"id": org.id, "name": org.name, "plan": org.plan, "created_at": iso(org.created_at)}

    org = _run(job)
    _emit(
        as_json,
        org,
        lambda: console.print(f"created organization {org['id']} ({org['name']}, {org['plan']})"),
    )


@orgs_app.command("list")
def orgs_list(as_json: JsonOpt = False) -> None:
    """List organizations."""

    async def job(settings: Settings, db: Database) -> list[dict[str, Any]]:
        async with db.read() as session:
            return [
                {
                    "id": o.id,
                    "name": o.name,
                    "plan": o.plan,
                    "status": o.subscription_status,
                    "created_at": iso(o.created_at),
                }
                for o in await orgs.list_orgs(session)
            ]

    rows = _run(job)

    def human() -> None:
        table = Table("id", "name", "plan", "status", "created_at")
        for row in rows:
            table.add_row(row["id"], row["name"], row["plan"], row["status"], row["created_at"])
        console.print(table)

    _emit(as_json, rows, human)


# ---------------------------------------------------------------- keys


def _key_json(key: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "org_id": key.org_id,
        "name": key.name,
        "key_prefix": key.key_prefix,
        "scopes": key.scopes.split(","),
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
    }


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization id (or its unique name).")],
    name: Annotated[str, typer.Option(help="A name for the key, e.g. 'Production Backend'.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,write,ai.")] = "read,write,ai",
    expires_in_days: Annotated[int | None, typer.Option(help="Expire the key after this many days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. The secret is printed once and cannot be read back."""
    try:
        scope_set = parse_scopes(scopes)
    except ValueError as exc:
        _fail(str(exc))

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        now = utcnow()
        expires = now + timedelta(days=expires_in_days) if expires_in_days else None
        async with db.write() as session:
            org_row = await orgs.get_org(session, org)
            key, secret = await key_service.create_key(
                session,
                secret_key=settings.secret,
                org_id=org_row.id,
                name=name,
                scopes=scope_set,
                now=now,
                expires_at=expires,
            )
            payload = {**_key_json(key), "secret": secret}
        bump_epoch(settings.auth_epoch_path)
        return payload

    try:
        payload = _run(job)
    except ValueError as exc:  # bad --scopes
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    _emit(
        as_json,
        payload,
        lambda: console.print(
            f"created key {payload['id']} for {payload['org_id']} with scopes {','.join(payload['scopes'])}\n"
            f"secret (shown once, store it now): [bold]{payload['secret']}[/bold]",
            highlight=False,
        ),
    )


@keys_app.command("list")
def keys_list(
    org: Annotated[str, typer.Option(help="Organization id (or its unique name).")], as_json: JsonOpt = False
) -> None:
    """List an organization's keys (never their secrets)."""

    async def job(settings: Settings, db: Database) -> list[dict[str, Any]]:
        async with db.read() as session:
            org_row = await orgs.get_org(session, org)
            return [_key_json(k) for k in await key_service.list_keys(session, org_row.id)]

    rows = _run(job)

    def human() -> None:
        table = Table("id", "name", "prefix", "scopes", "created_at", "last_used_at", "state")
        for r in rows:
            state = (
                "revoked"
                if r["revoked_at"]
                else ("expires " + r["expires_at"] if r["expires_at"] else "active")
            )
            table.add_row(
                r["id"],
                r["name"],
                r["key_prefix"],
                ",".join(r["scopes"]),
                r["created_at"],
                r["last_used_at"] or "-",
                state,
            )
        console.print(table)

    _emit(as_json, rows, human)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOpt = False) -> None:
    """Revoke a key. It stops working at once."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.write() as session:
            payload = _key_json(await key_service.revoke_key(session, key_id, utcnow()))
        bump_epoch(settings.auth_epoch_path)
        return payload

    payload = _run(job)
    _emit(as_json, payload, lambda: console.print(f"revoked key {payload['id']}"))


# ---------------------------------------------------------------- credits


@credits_app.command("grant")
def credits_grant(
    amount: Annotated[int, typer.Argument(help="Credits in the pack (bonus credits, never expire).", min=1)],
    org: Annotated[str, typer.Option(help="Organization id (or its unique name).")],
    as_json: JsonOpt = False,
) -> None:
    """Add a credit pack to an organization."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.read() as session:
            org_row = await orgs.get_org(session, org)
        balance = await db.run(
            lambda conn: credits.grant_pack(conn, org_id=org_row.id, amount=amount, now=utcnow())
        )
        bump_epoch(settings.auth_epoch_path)  # running servers drop their quota snapshots
        return {"org_id": org_row.id, "granted": amount, **_balance_json(balance)}

    payload = _run(job)
    _emit(
        as_json,
        payload,
        lambda: console.print(
            f"granted {amount} credits to {payload['org_id']}; remaining {payload['remaining']}"
        ),
    )


def _balance_json(balance: credits.Balance) -> dict[str, Any]:
    return {
        "remaining": balance.remaining,
        "allowance": balance.allowance,
        "allowance_used": balance.allowance_used,
        "bonus": balance.bonus,
        "period_start": iso(balance.period_start),
        "period_end": iso(balance.period_end),
    }


@credits_app.command("show")
def credits_show(
    org: Annotated[str, typer.Option(help="Organization id (or its unique name).")],
    limit: Annotated[int, typer.Option(help="Ledger rows to show, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Show an organization's balance and its ledger."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.read() as session:
            org_row = await orgs.get_org(session, org)

        def read(conn: Connection) -> tuple[Any, list[Any], int]:
            account = credit_repo.get_account(conn, org_row.id)
            return (
                account,
                credit_repo.ledger(conn, org_row.id, limit),
                credit_repo.ledger_sum(conn, org_row.id),
            )

        account, rows, total = await db.run_read(read)
        assert account is not None
        balance = credits.project(account, Plan(org_row.plan), utcnow())
        return {
            "org_id": org_row.id,
            "plan": org_row.plan,
            **_balance_json(balance),
            "ledger_sum": total,
            "ledger": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "amount": r.amount,
                    "allowance_delta": r.allowance_delta,
                    "bonus_delta": r.bonus_delta,
                    "generation_id": r.generation_id,
                    "note": r.note,
                    "created_at": iso(r.created_at),
                }
                for r in rows
            ],
        }

    payload = _run(job)

    def human() -> None:
        console.print(
            f"{payload['org_id']} ({payload['plan']}): {payload['remaining']} credits remaining = "
            f"{payload['allowance'] - payload['allowance_used']} of {payload['allowance']} monthly "
            f"(period ends {payload['period_end']}) + {payload['bonus']} bonus"
        )
        table = Table("id", "kind", "amount", "generation", "note", "created_at")
        for r in payload["ledger"]:
            table.add_row(
                str(r["id"]),
                r["kind"],
                f"{r['amount']:+d}",
                r["generation_id"] or "",
                r["note"] or "",
                r["created_at"],
            )
        console.print(table)

    _emit(as_json, payload, human)


def main() -> None:
    app()
