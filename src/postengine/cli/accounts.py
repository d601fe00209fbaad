"""`postengine accounts …`: connect social accounts to an organization, list, disable and enable
them, and read a sandbox account's outbox (API.md §6; there is no HTTP endpoint that connects one).

A `--sandbox` account is a real destination that publishes into a table instead of a social network,
so the whole pipeline (generate, post, schedule, publish) can be tried without any credentials.
"""

from typing import Annotated, Any

import typer
from rich.table import Table

from postengine.accounts import service as accounts
from postengine.accounts.repository import AccountRow, OutboxRow
from postengine.accounts.schemas import Platform
from postengine.auth.authenticator import bump_epoch
from postengine.cli.common import JsonOpt, app, console, emit, fail, run_job
from postengine.config import Settings
from postengine.db import Database
from postengine.kit.clock import iso, utcnow
from postengine.orgs import service as orgs

accounts_app = typer.Typer(help="Connected social accounts (and the sandbox outbox).", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")

OrgOpt = Annotated[str, typer.Option("--org", help="Organization id (or its unique name).")]
AccountArg = Annotated[str, typer.Argument(help="The account's id (a positive integer).")]
PLATFORM_HELP = "One of: " + ", ".join(p.value for p in Platform) + "."


def _account_id(raw: str) -> int:
    try:
        return accounts.parse_account_id(raw.strip())
    except LookupError:
        fail(f"no account {raw!r}; account ids are positive integers (see postengine accounts list)")


def _json(account: AccountRow) -> dict[str, Any]:
    return {
        **accounts.account_json(account, utcnow()),
        "org_id": account.org_id,
        "is_sandbox": account.is_sandbox,
    }


def _describe(account: dict[str, Any]) -> str:
    kind = "sandbox " if account["is_sandbox"] else ""
    state = "active" if account["is_active"] else "disabled"
    return f"{kind}{account['platform']} account {account['id']} {account['account_name']} of {account['org_id']} ({state})"


@accounts_app.command("connect")
def accounts_connect(
    org: OrgOpt,
    platform: Annotated[str, typer.Option(help=PLATFORM_HELP)],
    name: Annotated[str, typer.Option(help="The account's handle or name on the platform, e.g. @acme.")],
    display_name: Annotated[str | None, typer.Option(help="A name to show; defaults to --name.")] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Publish into the local outbox instead of the platform.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Connect a social account to an organization (within its plan's limit of active accounts)."""

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        async with db.read() as session:
            org_row = await orgs.get_org(session, org)
        account = await accounts.connect_account(
            db,
            org_id=org_row.id,
            platform=platform,
            account_name=name,
            display_name=display_name,
            sandbox=sandbox,
            now=utcnow(),
        )
        bump_epoch(settings)  # running servers drop their counts (GET /me accounts.used)
        return _json(account)

    payload = run_job(job)
    notes = "" if payload["health"]["can_post"] else f"\nnote: {payload['health']['message']}"
    emit(as_json, payload, lambda: console.print(f"connected {_describe(payload)}{notes}", highlight=False))


@accounts_app.command("list")
def accounts_list(org: OrgOpt, as_json: JsonOpt = False) -> None:
    """List an organization's accounts and whether each can post."""

    async def job(settings: Settings, db: Database) -> list[dict[str, Any]]:
        async with db.read() as session:
            org_row = await orgs.get_org(session, org)
        return [_json(account) for account in await accounts.list_for_admin(db, org_row.id)]

    rows = run_job(job)

    def human() -> None:
        table = Table("id", "platform", "name", "display name", "kind", "active", "health", "created_at")
        for r in rows:
            health = r["health"]["status"] + ("" if r["health"]["can_post"] else " (cannot post)")
            table.add_row(
                str(r["id"]),
                r["platform"],
                r["account_name"],
                r["display_name"],
                "sandbox" if r["is_sandbox"] else "platform",
                "yes" if r["is_active"] else "no",
                health,
                r["created_at"],
            )
        console.print(table)

    emit(as_json, rows, human)


def _set_active(account: str, active: bool, as_json: bool) -> None:
    account_id = _account_id(account)

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        changed = await accounts.set_account_active(db, account_id, active)
        bump_epoch(settings)
        return _json(changed)

    payload = run_job(job)
    verb = "enabled" if active else "disabled"
    emit(as_json, payload, lambda: console.print(f"{verb} {_describe(payload)}", highlight=False))


@accounts_app.command("disable")
def accounts_disable(account: AccountArg, as_json: JsonOpt = False) -> None:
    """Disable an account: new posts cannot target it, and it stops counting against the plan."""
    _set_active(account, False, as_json)


@accounts_app.command("enable")
def accounts_enable(account: AccountArg, as_json: JsonOpt = False) -> None:
    """Enable a disabled account again (within the plan's limit of active accounts)."""
    _set_active(account, True, as_json)


def _outbox_json(row: OutboxRow) -> dict[str, Any]:
    return {
        "destination_id": row.destination_id,
        "account_id": row.account_id,
        "platform": row.platform,
        "platform_post_id": row.platform_post_id,
        "content": row.content,
        "media": row.media,
        "settings": row.settings,
        "published_at": iso(row.published_at),
    }


@accounts_app.command("outbox")
def accounts_outbox(
    account: AccountArg,
    limit: Annotated[int, typer.Option(help="Rows to show, newest first.", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """What a sandbox account has published, newest first."""
    account_id = _account_id(account)

    async def job(settings: Settings, db: Database) -> dict[str, Any]:
        found, rows = await accounts.outbox(db, account_id, limit)
        return {**_json(found), "outbox": [_outbox_json(row) for row in rows]}

    payload = run_job(job)

    def human() -> None:
        console.print(_describe(payload), highlight=False)
        if not payload["is_sandbox"]:
            console.print("not a sandbox account: it publishes to its platform, not to the outbox")
            return
        if not payload["outbox"]:
            console.print("the outbox is empty")
        for r in payload["outbox"]:  # one line each: ids stay whole in any terminal width
            content = r["content"] if len(r["content"]) <= 60 else r["content"][:59] + "…"
            console.print(
                f"{r['published_at']}  {r['platform_post_id']}  destination {r['destination_id']}  "
                f"media {len(r['media'])}  {content!r}",
                highlight=False,
            )

    emit(as_json, payload, human)
