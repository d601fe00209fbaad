"""DESIGN.md §4 (secrets) and API.md §2: API keys are never logged, never sent back in an error,
never stored in clear (only a keyed hash under the server's secret), and compared in constant time.
"""

import ast
import asyncio
import hashlib
import hmac
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.cli import app as cli_app
from postengine.config import Settings
from postengine.models import ApiKey
from tests.api.test_conventions import assert_envelope
from tests.conftest import SECRET
from tests.media import files
from tests.media.flow import start_upload
from tests.security.helpers import add_key, bearer, captured_logs, dump_database, leaks, serving

SRC = Path(__file__).resolve().parents[2] / "src" / "postengine"
GEN = "/api/v1/ai/generate-image"


async def cli(settings: Settings, *args: str) -> str:
    """`postengine …` as an operator runs it, against the test's database and data directory."""
    env = {
        "PE_DATABASE_URL": settings.database_url,
        "PE_DATA_DIR": str(settings.data_dir),
        "PE_STORAGE_URL": settings.storage_url,
        "PE_SECRET_KEY": SECRET,
    }
    # The command runs its own event loop (asyncio.run): off this one, in a thread.
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("json_logs", [True, False], ids=["json-logs", "console-logs"])
async def test_keys_never_reach_logs_errors_or_the_database(
    settings: Settings, clock, db, make_tenant, json_logs: bool
) -> None:
    """A workflow that makes keys (the CLI), uses valid, revoked, expired, unknown and garbage keys,
    and provokes 400s, 401s, 403, 404s, 405 and a 500 from a bug, with every log record kept at
    DEBUG: no key, nor any 12-character piece of its secret part, is in a log line, a response or
    the database."""
    responses: list[httpx.Response] = []
    with captured_logs(json=json_logs) as logs:
        async with serving(settings, clock) as (app, client):

            async def expect(status: int, code: str | None, method: str, path: str, **kwargs) -> None:
                response = await client.request(method, path, **kwargs)
                responses.append(response)
                assert_envelope(response, status, code)

            async def cli_key(name: str, *options: str) -> dict:
                args = ("keys", "create", "--org", tenant.org_id, "--name", name, *options, "--json")
                made: dict = json.loads(await cli(settings, *args))
                return made

            tenant = await make_tenant()
            _, read_only = await add_key(db, clock, tenant.org_id, frozenset({Scope.READ}))
            # Keys made by the command line, as an operator makes them.
            made, doomed = await cli_key("cli"), await cli_key("old")
            expiring = await cli_key("short", "--expires-in-days", "1")
            unknown = "pe_live_" + "5eed" * 8  # well-formed, never issued
            valid = [tenant.secret, made["secret"], expiring["secret"], doomed["secret"], read_only]
            every_key = [*valid, unknown]
            key = tenant.headers
            kite = {"prompt": "a kite", "model": "flux-schnell"}

            # Valid keys at work.
            for secret in valid:
                await expect(200, None, "GET", "/api/v1/me", headers=bearer(secret))
            await expect(200, None, "POST", GEN, headers=bearer(made["secret"]), json=kite)
            await start_upload(client, bearer(made["secret"]), files.png())
            # 400s, one with a key where the model belongs.
            await expect(400, "invalid_json", "POST", GEN, headers=key, content=b"{nope")
            wrong_model = {"prompt": "x", "model": tenant.secret}
            await expect(400, "validation_error", "POST", GEN, headers=key, json=wrong_model)
            misspelt = {"content": "x", "media": ["m"]}
            await expect(400, "invalid_field_name", "POST", "/api/v1/posts", headers=key, json=misspelt)
            # 401s of every kind, and keys sent where keys do not belong.
            await cli(settings, "keys", "revoke", doomed["id"])
            clock.advance(2 * 86400)  # past the expiring key's end
            for headers in [
                {},
                {"Authorization": "Bearer hunter2-not-a-key"},
                bearer(unknown),
                bearer(doomed["secret"]),
                bearer(expiring["secret"]),
                {"Authorization": f"Basic {tenant.secret}"},
                {"Authorization": tenant.secret},
                {"Authorization": f"Bearer {tenant.secret}x"},
            ]:
                await expect(401, "unauthorized", "GET", "/api/v1/media", headers=headers)
            await expect(401, "unauthorized", "GET", f"/api/v1/media?api_key={tenant.secret}")
            # The key as the request id, which is logged as `client_request_id`.
            await expect(200, None, "GET", "/api/v1/me", headers={**key, "X-Request-Id": made["secret"]})
            # 403, 404, 405.
            await expect(403, "insufficient_scope", "POST", GEN, headers=bearer(read_only), json=kite)
            await expect(404, "not_found", "GET", "/api/v1/nowhere", headers=key)
            await expect(404, "not_found", "GET", "/api/v1/media/med_nope", headers=key)
            await expect(405, "method_not_allowed", "PUT", "/api/v1/me", headers=key)
            # A 500 from a bug in a provider adapter: logged with its traceback.
            bug = {"prompt": "a bug", "model": "flux-schnell"}
            await expect(500, "internal_error", "POST", GEN, headers=bearer(made["secret"]), json=bug)
            assert (await client.get("/metrics", headers=key)).status_code == 200
            listed = await cli(settings, "keys", "list", "--org", tenant.org_id, "--json")
            await app.state.ctx.authenticator.flush_last_used()  # the batched write of last_used_at

    text = logs.text()
    # The capture works: it holds the access lines, the traceback, DEBUG records (on SQLite,
    # aiosqlite's statements with their parameters), and the detector finds a piece of a key.
    assert text.count("/api/v1/media") >= 9
    assert "KeyError" in text and "Traceback" in text
    assert "'levelno': 10" in text
    assert leaks(f"x {tenant.secret[:20]} y", [tenant.secret]) != []

    assert leaks(text, every_key) == [], "an API key (or a piece of one) was logged"
    assert SECRET not in text  # nor the server's secret
    for response in responses:
        seen = response.text + json.dumps(dict(response.headers))
        assert leaks(seen, every_key) == [], (response.request.url, response.text)
    assert leaks(listed, every_key) == []  # `keys list` shows prefixes, never secrets

    stored = await dump_database(db)
    assert leaks(stored, every_key) == [], "an API key (or a piece of one) is in the database"
    for secret in valid:  # what is there instead: the keyed hash
        assert key_service.hash_key(SECRET.encode(), secret) in stored
    if settings.is_sqlite:  # and not in the file's bytes either (free pages, the write-ahead log)
        path = Path(settings.database_url.removeprefix("sqlite+aiosqlite:///"))
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                assert leaks(part.read_bytes().decode("latin-1"), every_key) == [], part


async def test_the_stored_hash_is_keyed_by_the_server_secret(
    client: httpx.AsyncClient, make_tenant, db, settings: Settings, clock
) -> None:
    tenant = await make_tenant()
    async with db.read() as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == tenant.key_id))).scalar_one()
    secret = tenant.secret
    assert re.fullmatch(r"[0-9a-f]{64}", row.key_hash)
    assert row.key_prefix == secret[:12]  # what /me and `keys list` show: `pe_live_` + 4 characters
    # HMAC-SHA256 under the server's secret, domain-separated (kit/crypto.py, models/api_key.py) …
    expected = hmac.new(SECRET.encode(), b"api-key\0" + secret.encode(), hashlib.sha256).hexdigest()
    assert row.key_hash == expected == key_service.hash_key(SECRET.encode(), secret)
    # … so not any unkeyed digest an attacker with the database could compute from a guess …
    for unkeyed in (
        hashlib.sha256(secret.encode()),
        hashlib.sha256(secret[8:].encode()),
        hashlib.md5(secret.encode()),
    ):
        assert row.key_hash != unkeyed.hexdigest()
    assert row.key_hash != hmac.new(b"", secret.encode(), hashlib.sha256).hexdigest()
    # … and another server secret gives another hash for the same key.
    assert key_service.hash_key(b"another-server-secret-of-32-chars!", secret) != row.key_hash

    # End to end: the same database served under another PE_SECRET_KEY does not know the key.
    assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 200)
    other = Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir.parent / "other-data",
        storage_url=settings.storage_url,
        secret_key="an0ther-server-secret-0f-32-chars-or-more",  # type: ignore[arg-type]
        log_json=False,
    )
    app = create_app(other, clock=clock, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
            assert_envelope(await elsewhere.get("/api/v1/me", headers=tenant.headers), 401, "unauthorized")


async def test_secrets_are_compared_in_constant_time(
    client: httpx.AsyncClient, make_tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's hash and the upload URL's signature are checked through `hmac.compare_digest`,
    and its answer decides: made to say "different", the right key and signature are refused."""
    tenant = await make_tenant()
    ticket = await start_upload(client, tenant.headers, files.png())
    fresh = await make_tenant()  # not yet in the authenticator's cache
    real = hmac.compare_digest
    calls: list[tuple[bytes, bytes]] = []
    verdict: list[bool] = []

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return verdict[0] if verdict else real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert_envelope(await client.get("/api/v1/me", headers=fresh.headers), 200)
    stored = key_service.hash_key(SECRET.encode(), fresh.secret).encode()
    assert (stored, stored) in calls
    signature = urlsplit(ticket["upload_url"]).query.split("signature=")[1]
    calls.clear()
    put = await client.put(
        urlsplit(ticket["upload_url"]).path + "?" + urlsplit(ticket["upload_url"]).query, content=files.png()
    )
    assert_envelope(put, 200)
    assert any(signature.encode() in pair for pair in calls)

    verdict.append(False)
    another = await make_tenant()
    assert_envelope(await client.get("/api/v1/me", headers=another.headers), 401, "unauthorized")
    again = await start_upload(client, tenant.headers, files.png())
    refused = await client.put(
        urlsplit(again["upload_url"]).path + "?" + urlsplit(again["upload_url"]).query, content=files.png()
    )
    assert_envelope(refused, 403, "invalid_signature")


# `==`/`!=` in src/ whose operands look like secrets, and why each is not a timing leak. A new
# comparison of this kind fails `test_no_plain_equality_on_secrets` until it uses
# `kit.crypto.same` (hmac.compare_digest) or is added here with its reason.
ALLOWED_EQUALITY = {
    (
        "cli/serve.py",
        "settings.demo_key.get_secret_value() == SEED_EXAMPLE_KEY",
    ): "compares the configured demo key with the public example key from the docs (no secret on the other side)",
}
# Credentials by name. A bare `token` is left out: here that is a lock's or an epoch's identity.
_SECRETISH = re.compile(
    r"secret|signature|^sig$|(metrics|access|auth|bearer|api|refresh)_?token|password|passwd|key_hash|digest"
    r"|api_?key|credential",
    re.I,
)


def _names(node: ast.AST) -> list[str]:
    return [
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    ]


def _is_sql(node: ast.AST) -> bool:
    """`Model.column == value` builds a WHERE clause: the database compares, on hashes we index."""
    return (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id[:1].isupper()
    )


def _is_none_test(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Compare) and all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops)
    )


def test_no_plain_equality_on_secrets() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare) or not any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                continue
            operands = [node.left, *node.comparators]
            if any(_is_sql(o) or _is_none_test(o) for o in operands):
                continue
            if any(_SECRETISH.search(name) for o in operands for name in _names(o)):
                found[str(path.relative_to(SRC)), ast.unparse(node)] = node.lineno
    assert set(found) - set(ALLOWED_EQUALITY) == set(), found
    # The scanner sees what it must: the one comparison of secrets that exists goes through hmac.
    crypto = (SRC / "kit" / "crypto.py").read_text()
    assert "hmac.compare_digest(" in crypto
    assert "same(key.key_hash, key_hash)" in (SRC / "auth" / "authenticator.py").read_text()
