"""`postengine accounts …` run as an operator would (through typer), on both databases."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from click.testing import Result
from typer.testing import CliRunner

from postengine.accounts.connectors.sandbox import SandboxConnector
from postengine.accounts.repository import AccountRow
from postengine.cli import app
from postengine.credits.plans import Plan
from tests.accounts.helpers import at, publish_request

Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(settings, db, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("PE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PE_STORAGE_URL", settings.storage_url)
    runner = CliRunner()

    async def run(*args: str, ok: bool = True) -> Result:
        # The CLI runs its own event loop (asyncio.run): give it a thread of its own.
        result = await anyio.to_thread.run_sync(lambda: runner.invoke(app, list(args)))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


async def as_json(cli: Cli, *args: str) -> Any:
    return json.loads((await cli(*args, "--json")).output)


async def test_connect_list_disable_enable(cli: Cli, make_tenant, clock) -> None:
    tenant = await make_tenant(name="Acme CLI")
    sandbox = await as_json(
        cli, "accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@acme", "--sandbox"
    )
    assert isinstance(sandbox["id"], int) and sandbox["account_id"] == sandbox["id"]
    assert (sandbox["org_id"], sandbox["platform"], sandbox["account_name"], sandbox["display_name"]) == (
        tenant.org_id,
        "x",
        "@acme",
        "@acme",
    )
    assert sandbox["is_sandbox"] is True and sandbox["is_active"] is True
    assert sandbox["health"] == {"status": "healthy", "can_post": True, "message": None}

    real = await as_json(
        cli, "accounts", "connect", "--org", "Acme CLI", "--platform", "linkedin",
        "--name", "acme-inc", "--display-name", "Acme Inc",
    )  # fmt: skip
    assert (real["display_name"], real["is_sandbox"], real["health"]["can_post"]) == ("Acme Inc", False, False)
    human = await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "youtube", "--name", "Acme TV")
    assert "connected youtube account" in human.output and "not available on this server yet" in human.output

    listed = await as_json(cli, "accounts", "list", "--org", tenant.org_id)
    assert [a["platform"] for a in listed] == ["x", "linkedin", "youtube"]
    table = (await cli("accounts", "list", "--org", tenant.org_id)).output
    assert "@acme" in table and "sandbox" in table

    disabled = await as_json(cli, "accounts", "disable", str(sandbox["id"]))
    assert disabled["is_active"] is False and disabled["health"]["can_post"] is False
    assert (await as_json(cli, "accounts", "disable", str(sandbox["id"])))["is_active"] is False
    assert "disabled sandbox x account" in (await cli("accounts", "disable", str(sandbox["id"]))).output
    enabled = await as_json(cli, "accounts", "enable", str(sandbox["id"]))
    assert enabled["is_active"] is True and enabled["health"]["can_post"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--platform", "myspace", "--name", "@a"), "unknown platform 'myspace'; use one of: instagram, facebook"),
        (("--platform", "x", "--name", " "), "an account name must have 1 to 200 characters"),
        (("--platform", "x", "--name", "@DUP"), "already has the x account '@dup'"),
    ],
)
async def test_connect_errors_are_one_line(cli: Cli, make_tenant, args, message: str) -> None:
    tenant = await make_tenant()
    await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@dup")
    result = await cli("accounts", "connect", "--org", tenant.org_id, *args, ok=False)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1


async def test_unknown_org_and_account(cli: Cli) -> None:
    result = await cli("accounts", "connect", "--org", "org_nope", "--platform", "x", "--name", "@a", ok=False)
    assert result.exit_code == 1 and "no organization 'org_nope'" in result.output
    assert "no organization" in (await cli("accounts", "list", "--org", "org_nope", ok=False)).output
    for command in ("disable", "enable", "outbox"):
        missing = await cli("accounts", command, "2147483000", ok=False)
        assert missing.exit_code == 1 and "no account 2147483000" in missing.output
        bad = await cli("accounts", command, "abc", ok=False)
        assert bad.exit_code == 1 and "account ids are positive integers" in bad.output


async def test_plan_limit(cli: Cli, make_tenant) -> None:
    tenant = await make_tenant(plan=Plan.TRIAL)
    ids = [
        (await as_json(cli, "accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", f"@a{i}"))["id"]
        for i in range(5)
    ]
    full = await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@f", ok=False)
    assert full.exit_code == 1 and "the trial plan includes 5 active accounts" in full.output
    await cli("accounts", "disable", str(ids[0]))
    await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@f")
    refused = await cli("accounts", "enable", str(ids[0]), ok=False)
    assert refused.exit_code == 1 and "5 active accounts" in refused.output


async def test_outbox_lists_newest_first(cli: Cli, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await as_json(
        cli, "accounts", "connect", "--org", tenant.org_id, "--platform", "threads", "--name", "@s", "--sandbox"
    )
    row = AccountRow(
        id=account["id"], org_id=tenant.org_id, platform="threads", account_name="@s", display_name="@s",
        avatar_url=None, is_active=True, is_sandbox=True, health_status="healthy", health_message=None,
        token_expires_at=None, last_published_at=None, created_at=at(clock),
    )  # fmt: skip
    sandbox = SandboxConnector(db, clock)
    older = await sandbox.publish(publish_request(row, content="first"))
    clock.advance(60)
    newer = await sandbox.publish(publish_request(row, content="second " + "x" * 100))

    payload = await as_json(cli, "accounts", "outbox", str(account["id"]))
    assert payload["id"] == account["id"] and payload["is_sandbox"] is True
    assert [r["platform_post_id"] for r in payload["outbox"]] == [newer.platform_post_id, older.platform_post_id]
    assert payload["outbox"][1]["content"] == "first" and payload["outbox"][1]["media"][0]["type"] == "image"
    assert payload["outbox"][0]["published_at"] > payload["outbox"][1]["published_at"]
    limited = await as_json(cli, "accounts", "outbox", str(account["id"]), "--limit", "1")
    assert [r["platform_post_id"] for r in limited["outbox"]] == [newer.platform_post_id]
    human = (await cli("accounts", "outbox", str(account["id"]))).output
    assert newer.platform_post_id in human and older.platform_post_id in human

    real = await as_json(cli, "accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@real")
    assert (await as_json(cli, "accounts", "outbox", str(real["id"])))["outbox"] == []
    assert "not a sandbox account" in (await cli("accounts", "outbox", str(real["id"]))).output
