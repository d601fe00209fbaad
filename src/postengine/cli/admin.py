"""Administration without an HTTP endpoint (API.md §2): database, organizations, keys, credits."""

from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection

from postengine import migrate
from postengine.auth import keys as key_service
from postengine.auth.authenticator import bump_epoch
from postengine.auth.scopes import parse_scopes
from postengine.cli.common import (
    JsonOpt,
    console,
    credits_app,
    db_app,
    emit,
    err_console,
    fail,
    keys_app,
    orgs_app,
    run_job,
)
from postengine.config import Settings
from postengine.credits import repository as credit_repo
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import iso, utcnow
from postengine.orgs import service as orgs

# ---------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply pending database migrations."""

    async def job(settings: Settings, db: Database) -> list[str]:
        todo = await migrate.pending(db)
        await migrate.upgrade(db)
        return todo

    applied = run_job(job, upgrade=False)
    emit(
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

    org = run_job(job)
    emit(
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

    rows = run_job(job)

    def human() -> None:
        table = Table("id", "name", "plan", "status", "created_at")
        for row in rows:
            table.add_row(row["id"], row["name"], row["plan"], row["status"], row["created_at"])
        console.print(table)

    emit(as_json, rows, human)


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
        fail(str(exc))

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
        bump_epoch(settings)
        return payload

    try:
        payload = run_job(job)
    except ValueError as exc:  # bad --scopes
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    emit(
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

    rows = run_job(job)

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

    emit(as_json, rows, human)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOpt = False) -> None:
    """Revoke a key. It stops working at once."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.write() as session:
            payload = _key_json(await key_service.revoke_key(session, key_id, utcnow()))
        bump_epoch(settings)
        return payload

    payload = run_job(job)
    emit(as_json, payload, lambda: console.print(f"revoked key {payload['id']}"))


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
        bump_epoch(settings)  # running servers drop their quota snapshots
        return {"org_id": org_row.id, "granted": amount, **_balance_json(balance)}

    payload = run_job(job)
    emit(
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

    payload = run_job(job)

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

    emit(as_json, payload, human)
