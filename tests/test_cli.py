"""The `postengine` command line, run as a user would (through typer), on a throwaway database."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postengine.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pe.db'}")
    monkeypatch.setenv("PE_STORAGE_URL", f"file://{tmp_path / 'data' / 'media'}")
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_admin_flow(cli) -> None:
    assert "applied" in json.loads(cli("db", "upgrade", "--json").output)
    org = json.loads(cli("orgs", "create", "Acme Inc", "--plan", "starter", "--json").output)
    assert org["id"].startswith("org_") and org["plan"] == "starter"
    assert [o["id"] for o in json.loads(cli("orgs", "list", "--json").output)] == [org["id"]]

    key = json.loads(cli("keys", "create", "--org", org["id"], "--name", "Backend", "--scopes", "read,ai", "--json").output)
    assert key["id"].startswith("key_") and key["secret"].startswith("pe_live_") and len(key["secret"]) == 40
    assert key["scopes"] == ["read", "ai"]
    listed = json.loads(cli("keys", "list", "--org", "Acme Inc", "--json").output)  # by unique name too
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["secret"] not in cli("keys", "list", "--org", org["id"]).output

    granted = json.loads(cli("credits", "grant", "25", "--org", org["id"], "--json").output)
    assert granted["remaining"] == 75 and granted["bonus"] == 25
    shown = json.loads(cli("credits", "show", "--org", org["id"], "--json").output)
    assert shown["remaining"] == shown["ledger_sum"] == 75
    assert [row["kind"] for row in shown["ledger"]] == ["pack", "allowance"]

    revoked = json.loads(cli("keys", "revoke", key["id"], "--json").output)
    assert revoked["revoked_at"] is not None
    human = cli("credits", "show", "--org", org["id"]).output
    assert "75 credits remaining" in human


def test_errors_are_one_line_and_exit_1(cli) -> None:
    result = cli("keys", "list", "--org", "org_doesnotexist", ok=False)
    assert result.exit_code == 1 and "no organization" in result.output
    org = json.loads(cli("orgs", "create", "Beta", "--json").output)
    bad = cli("keys", "create", "--org", org["id"], "--name", "x", "--scopes", "read,admin", ok=False)
    assert bad.exit_code == 1 and "unknown scope 'admin'" in bad.output
    assert cli("orgs", "create", "Gamma", "--plan", "enterprise", ok=False).exit_code != 0
    assert cli("credits", "grant", "0", "--org", org["id"], ok=False).exit_code != 0
    for _ in range(10):
        cli("keys", "create", "--org", org["id"], "--name", "k")
    full = cli("keys", "create", "--org", org["id"], "--name", "eleventh", ok=False)
    assert full.exit_code == 1 and "10 active keys" in full.output


def test_demo_is_created_once_and_reused(cli, tmp_path) -> None:
    import asyncio

    from postengine.cli import ensure_demo
    from postengine.config import Settings
    from postengine.db import Database

    async def twice() -> tuple[tuple[str, str], tuple[str, str]]:
        settings = Settings()
        db = Database(settings.database_url)
        try:
            from postengine import migrate

            await migrate.upgrade(db)
            return await ensure_demo(settings, db), await ensure_demo(settings, db)
        finally:
            await db.dispose()

    first, second = asyncio.run(twice())
    assert first == second
    assert first[1] == "pe_live_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"
    orgs = json.loads(cli("orgs", "list", "--json").output)
    assert [(o["name"], o["plan"]) for o in orgs] == [("Demo", "growth")]


def test_demo_with_the_public_key_refuses_a_public_interface(cli) -> None:
    result = cli("serve", "--demo", "--host", "0.0.0.0", ok=False)
    assert result.exit_code == 1
    assert "PE_DEMO_KEY" in result.output


def test_serve_with_several_processes_needs_redis(cli, monkeypatch) -> None:
    monkeypatch.delenv("PE_REDIS_URL", raising=False)
    result = cli("serve", "--workers", "2", ok=False)
    assert result.exit_code == 1
    assert "PE_REDIS_URL" in result.output and "--workers 2" in result.output


def test_serve_refuses_a_postgresql_schema_that_is_behind(cli, monkeypatch, pg_database: str) -> None:
    import asyncio
    import secrets

    from alembic.script import ScriptDirectory

    from postengine import migrate
    from tests.conftest import _pg_admin

    name = f"pe_test_empty_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await _pg_admin()
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        monkeypatch.setenv("PE_DATABASE_URL", pg_database.rsplit("/", 1)[0] + "/" + name)
        refused = cli("serve", "--port", "1", ok=False)
        assert refused.exit_code == 1 and "postengine db upgrade" in refused.output
        every = [script.revision for script in reversed(list(ScriptDirectory.from_config(migrate._config()).walk_revisions()))]
        assert every[:2] == ["0001", "0002"]
        assert json.loads(cli("db", "upgrade", "--json").output) == {"applied": every}
        assert json.loads(cli("db", "upgrade", "--json").output) == {"applied": []}
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PE_SECRET_KEY", "changeme", "PE_SECRET_KEY: PE_SECRET_KEY must be at least 32 random characters"),
        ("PE_PROVIDERS", '{"flux-schnell": 1}', "PE_PROVIDERS (flux-schnell): Input should be a valid list"),
        ("PE_AUTH_CACHE_SECONDS", "soon", "PE_AUTH_CACHE_SECONDS: Input should be a valid number"),
    ],
)
def test_bad_configuration_is_one_clear_line(cli, monkeypatch, variable: str, value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("orgs", "list", ok=False)
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
