"""API.md §6: /accounts, account health, and GET /me's accounts.used, over HTTP on both databases."""

import json
import uuid

import anyio
import httpx
import pytest
from sqlalchemy import insert, update
from typer.testing import CliRunner

from postengine.accounts import service
from postengine.auth.scopes import Scope
from postengine.cli import app as cli_app
from postengine.kit.clock import iso
from postengine.models import Post, PostDestination, SocialAccount
from tests.accounts.helpers import at, connect
from tests.api.test_conventions import assert_envelope

ACCOUNTS = "/api/v1/accounts"


async def test_no_accounts(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    body = assert_envelope(await client.get(ACCOUNTS, headers=tenant.headers), 200)
    assert body["data"] == {"accounts": [], "account_ids": [], "total": 0}


async def test_list_and_get(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    sandbox = await connect(db, tenant.org_id, clock, name="@acme", display_name="Acme Inc")
    real = await connect(db, tenant.org_id, clock, platform="instagram", name="acme.ig", sandbox=False)
    await connect(db, other.org_id, clock, name="@other")

    body = assert_envelope(await client.get(ACCOUNTS, headers=tenant.headers), 200)
    data = body["data"]
    assert data["account_ids"] == [sandbox.id, real.id] and data["total"] == 2
    expected_sandbox = {
        "id": sandbox.id,
        "account_id": sandbox.id,
        "platform": "x",
        "account_name": "@acme",
        "display_name": "Acme Inc",
        "avatar_url": None,
        "is_active": True,
        "created_at": iso(at(clock)),
        "health": {"status": "healthy", "can_post": True, "message": None},
    }
    assert data["accounts"][0] == expected_sandbox
    assert data["accounts"][1]["platform"] == "instagram"
    assert data["accounts"][1]["health"]["status"] == "unhealthy"
    assert data["accounts"][1]["health"]["can_post"] is False
    assert "not available on this server yet" in data["accounts"][1]["health"]["message"]

    one = assert_envelope(await client.get(f"{ACCOUNTS}/{sandbox.id}", headers=tenant.headers), 200)
    assert one["data"] == expected_sandbox
    assert (await client.get(f"{ACCOUNTS}/{sandbox.id}", headers=tenant.headers)).headers["x-ratelimit-limit"] == "60"


async def test_disabled_account_is_listed_and_cannot_post(client, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock)
    await service.set_account_active(db, account.id, False)
    data = assert_envelope(await client.get(f"{ACCOUNTS}/{account.id}", headers=tenant.headers), 200)["data"]
    assert data["is_active"] is False
    assert data["health"] == {
        "status": "healthy",
        "can_post": False,
        "message": "This account is disabled; posts cannot target it.",
    }
    listed = assert_envelope(await client.get(ACCOUNTS, headers=tenant.headers), 200)["data"]
    assert listed["account_ids"] == [account.id]


@pytest.mark.parametrize("suffix", ["", "/health"])
async def test_other_orgs_and_unknown_accounts_are_404(client, make_tenant, db, clock, suffix: str) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    theirs = await connect(db, other.org_id, clock)
    for ref in [str(theirs.id), "2147483000", "0", "-1", "abc", "1.5", "99999999999999999999", "%20"]:
        response = await client.get(f"{ACCOUNTS}/{ref}{suffix}", headers=tenant.headers)
        body = assert_envelope(response, 404, "not_found")
        assert "account" in body["error"]["message"].lower(), ref
    # The owner sees it.
    assert_envelope(await client.get(f"{ACCOUNTS}/{theirs.id}{suffix}", headers=other.headers), 200)


@pytest.mark.parametrize("path", [ACCOUNTS, f"{ACCOUNTS}/1", f"{ACCOUNTS}/1/health"])
async def test_read_scope_and_a_key_are_required(client, make_tenant, path: str) -> None:
    assert_envelope(await client.get(path), 401, "unauthorized")
    writer = await make_tenant(scopes=frozenset({Scope.WRITE, Scope.AI}))
    body = assert_envelope(await client.get(path, headers=writer.headers), 403, "insufficient_scope")
    assert body["error"]["details"] == {"required_scope": "read"}


async def test_accounts_are_read_only(client, make_tenant) -> None:
    tenant = await make_tenant()
    assert_envelope(await client.post(ACCOUNTS, headers=tenant.headers, json={}), 405, "method_not_allowed")


async def add_destination(db, account, *, status: str, updated_at, published_at=None) -> None:
    post_id = str(uuid.uuid4())
    async with db.write() as session:
        await session.execute(
            insert(Post).values(
                id=post_id,
                org_id=account.org_id,
                status="published" if status == "published" else "failed",
                content="hi",
                timezone="UTC",
                platform_content={},
                created_at=updated_at,
                updated_at=updated_at,
            )
        )
        await session.execute(
            insert(PostDestination).values(
                id=str(uuid.uuid4()),
                post_id=post_id,
                org_id=account.org_id,
                account_id=account.id,
                platform=account.platform,
                status=status,
                attempts=1,
                published_at=published_at,
                platform_post_id="sbx_1" if published_at else None,
                error=None if published_at else "The platform refused the post.",
                created_at=updated_at,
                updated_at=updated_at,
            )
        )


async def test_health(client, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock)
    neighbour = await connect(db, tenant.org_id, clock, platform="threads", name="@acme")
    url = f"{ACCOUNTS}/{account.id}/health"

    data = assert_envelope(await client.get(url, headers=tenant.headers), 200)["data"]
    assert data == {
        "account_id": account.id,
        "platform": "x",
        "status": "healthy",
        "can_post": True,
        "needs_reconnection": False,
        "token_expires_at": None,
        "recent_failures": 0,
        "last_published_at": None,
        "message": None,
    }

    await add_destination(db, account, status="failed", updated_at=at(clock, -3600))
    await add_destination(db, account, status="failed", updated_at=at(clock, -23 * 3600))
    await add_destination(db, account, status="failed", updated_at=at(clock, -25 * 3600))  # too old
    await add_destination(db, neighbour, status="failed", updated_at=at(clock, -60))  # another account
    await add_destination(db, account, status="published", updated_at=at(clock, -7200), published_at=at(clock, -7200))
    await add_destination(db, account, status="published", updated_at=at(clock, -600), published_at=at(clock, -600))
    data = assert_envelope(await client.get(url, headers=tenant.headers), 200)["data"]
    assert data["recent_failures"] == 2
    assert data["last_published_at"] == iso(at(clock, -600))

    expired_at = at(clock, -1)
    async with db.write() as session:
        await session.execute(
            update(SocialAccount).where(SocialAccount.id == account.id).values(token_expires_at=expired_at)
        )
    data = assert_envelope(await client.get(url, headers=tenant.headers), 200)["data"]
    assert (data["status"], data["can_post"], data["needs_reconnection"]) == ("expired", False, True)
    assert data["token_expires_at"] == iso(expired_at)
    listed = assert_envelope(await client.get(f"{ACCOUNTS}/{account.id}", headers=tenant.headers), 200)["data"]
    assert listed["health"]["status"] == "expired" and listed["health"]["can_post"] is False

    clock.advance(-3600)  # an hour earlier the token was still valid
    data = assert_envelope(await client.get(url, headers=tenant.headers), 200)["data"]
    assert (data["status"], data["can_post"]) == ("healthy", True)


async def test_health_of_a_disabled_and_a_platform_account(client, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    real = await connect(db, tenant.org_id, clock, platform="youtube", name="Acme TV", sandbox=False)
    data = assert_envelope(await client.get(f"{ACCOUNTS}/{real.id}/health", headers=tenant.headers), 200)["data"]
    assert (data["platform"], data["status"], data["can_post"], data["needs_reconnection"]) == (
        "youtube",
        "unhealthy",
        False,
        False,
    )
    assert data["message"].startswith("Publishing to youtube is not available")
    sandbox = await connect(db, tenant.org_id, clock)
    await service.set_account_active(db, sandbox.id, False)
    data = assert_envelope(await client.get(f"{ACCOUNTS}/{sandbox.id}/health", headers=tenant.headers), 200)["data"]
    assert (data["status"], data["can_post"]) == ("healthy", False)


async def test_me_reports_active_accounts_and_sees_cli_changes_at_once(
    client, make_tenant, settings, monkeypatch
) -> None:
    """The CLI connects and disables; a running server's GET /me follows at once (epoch bump)."""
    tenant = await make_tenant(name="Acme Me")
    monkeypatch.setenv("PE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PE_STORAGE_URL", settings.storage_url)
    runner = CliRunner()

    async def cli(*args: str) -> dict:
        result = await anyio.to_thread.run_sync(lambda: runner.invoke(cli_app, [*args, "--json"]))
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    async def used() -> tuple[int, int]:
        quota = assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 200)["data"]["quota"]
        return quota["accounts"]["used"], quota["accounts"]["limit"]

    assert await used() == (0, 25)
    first = await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "x", "--name", "@acme", "--sandbox")
    assert await used() == (1, 25)
    await cli("accounts", "connect", "--org", tenant.org_id, "--platform", "tiktok", "--name", "@acme")
    assert await used() == (2, 25)
    await cli("accounts", "disable", str(first["id"]))
    assert await used() == (1, 25)
    listed = assert_envelope(await client.get(ACCOUNTS, headers=tenant.headers), 200)["data"]
    assert listed["total"] == 2 and listed["accounts"][0]["is_active"] is False


async def test_openapi_documents_the_accounts_api(client) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ["/api/v1/accounts", "/api/v1/accounts/{account_id}", "/api/v1/accounts/{account_id}/health"]:
        responses = schema["paths"][path]["get"]["responses"]
        assert {"200", "401", "403", "429"} <= set(responses) and "422" not in responses
    assert "404" in schema["paths"]["/api/v1/accounts/{account_id}"]["get"]["responses"]
