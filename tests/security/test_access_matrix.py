"""API.md §2: who may call what. Every route the app serves is classified (authenticated with a
scope, or public for a stated reason); every authenticated endpoint refuses every kind of bad
credential with the same 401, and every key lacking its scope with a 403; neither uses a
rate-limit slot."""

from pathlib import Path

import httpx
import pytest

from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.authenticator import INVALID_KEY, MISSING_KEY, bump_epoch
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.kit.clock import to_datetime
from tests.api.test_conventions import assert_envelope
from tests.conftest import SECRET
from tests.security.helpers import (
    AUTHENTICATED,
    PUBLIC,
    add_key,
    bearer,
    concrete,
    record_admissions,
    route_inventory,
    scopes_lacking,
)

ENDPOINTS = sorted(AUTHENTICATED)


def test_every_route_is_classified(tmp_path: Path) -> None:
    """A route that is neither in AUTHENTICATED nor in PUBLIC fails here until someone decides
    who may call it (and adds it to the matrix below, which then checks it)."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'pe.db'}",
        data_dir=tmp_path / "data",
        secret_key=SECRET,  # type: ignore[arg-type]
    )
    app = create_app(settings, background=False)
    served = route_inventory(app)
    assert not set(AUTHENTICATED) & set(PUBLIC)
    assert served - set(AUTHENTICATED) - set(PUBLIC) == set(), "unclassified routes"
    assert (set(AUTHENTICATED) | set(PUBLIC)) - served == set(), "classified routes the app no longer serves"

    # The OpenAPI document agrees: it lists only served routes, every authenticated operation
    # documents its 401 (and its 403 where a scope is needed), and the public ones in it are
    # exactly those a client calls without a key (the signed upload PUT).
    documented = {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
    assert documented <= served
    assert set(AUTHENTICATED) <= documented
    assert documented - set(AUTHENTICATED) == {("PUT", "/uploads/{media_id}")}
    paths = app.openapi()["paths"]
    for method, path in AUTHENTICATED:
        responses = paths[path][method.lower()]["responses"]
        assert "401" in responses, (method, path)
        if AUTHENTICATED[method, path] is not None:
            assert "403" in responses, (method, path)


async def _call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    # A JSON object body on the methods that take one: the key is checked before the body.
    body = {} if method in {"POST", "PATCH"} else None
    return await client.request(method, concrete(path), headers=headers, json=body)


BAD_CREDENTIALS = {
    "missing": None,
    "empty": "",
    "malformed": "Bearer pe_live_0123",
    "wrong_scheme": "Basic {valid}",
    "no_scheme": "{valid}",
    "wrong_prefix": "Bearer pe_test_" + "a1" * 16,
    "upper_case": "Bearer PE_LIVE_" + "A1" * 16,
    "unknown": "Bearer pe_live_" + "f" * 32,
    "revoked": "Bearer {revoked}",
    "expired": "Bearer {expired}",
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_bad_credentials_are_one_indistinguishable_401(
    client: httpx.AsyncClient, app, make_tenant, db, clock, settings: Settings, case: str
) -> None:
    tenant = await make_tenant()
    revoked_id, revoked = await add_key(db, clock, tenant.org_id)
    _, expired = await add_key(db, clock, tenant.org_id, expires_in=60)
    # Both work first (and are now in the authenticator's cache), then stop working.
    for secret in (revoked, expired):
        assert_envelope(await client.get("/api/v1/me", headers=bearer(secret)), 200)
    async with db.write() as session:
        await key_service.revoke_key(session, revoked_id, to_datetime(clock.time()))
    bump_epoch(settings)  # what `postengine keys revoke` does
    clock.advance(61)

    template = BAD_CREDENTIALS[case]
    headers = (
        {}
        if template is None
        else {"Authorization": template.format(valid=tenant.secret, revoked=revoked, expired=expired)}
    )
    recorder = record_admissions(app)
    reference: tuple | None = None
    for method, path in ENDPOINTS:
        response = await _call(client, method, path, headers)
        error = assert_envelope(response, 401, "unauthorized")["error"]
        assert "x-ratelimit-limit" not in response.headers, (method, path)
        # Nothing tells the cases apart: the same error object (a missing header has its own
        # message, as API.md §2 prescribes), the same header names, on every endpoint.
        expected = MISSING_KEY if template is None or template == "" else INVALID_KEY
        assert error == {"code": "unauthorized", "message": expected, "retryable": False, "details": {}}
        shape = (error, sorted(k for k in response.headers if k not in {"content-length"}))
        reference = reference or shape
        assert shape == reference, (method, path)
    assert recorder.admitted == []  # no rate-limit slot was used, for any key
    assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 200)  # the good key still works


async def test_401_bodies_are_identical_across_invalid_cases(
    client: httpx.AsyncClient, make_tenant, db, clock, settings: Settings
) -> None:
    """The malformed, unknown, revoked and expired cases side by side: the same error object and the
    same header names."""
    tenant = await make_tenant()
    revoked_id, revoked = await add_key(db, clock, tenant.org_id)
    _, expired = await add_key(db, clock, tenant.org_id, expires_in=30)
    async with db.write() as session:
        await key_service.revoke_key(session, revoked_id, to_datetime(clock.time()))
    bump_epoch(settings)
    clock.advance(31)
    headers = [
        "Bearer pe_live_0123",
        "Bearer pe_live_" + "e" * 32,
        f"Bearer {revoked}",
        f"Bearer {expired}",
        f"Token {tenant.secret}",
    ]
    seen = []
    for header in headers:
        response = await client.get("/api/v1/media", headers={"Authorization": header})
        error = assert_envelope(response, 401, "unauthorized")["error"]
        seen.append((error, sorted(k for k in response.headers if k != "content-length")))
    assert all(one == seen[0] for one in seen)
    errors = [error for error, _ in seen]
    assert errors[0]["message"] == INVALID_KEY


async def test_scopes(client: httpx.AsyncClient, app, make_tenant, db, clock) -> None:
    """Every key lacking an endpoint's scope gets a 403 naming it (and uses no rate-limit slot);
    a key with just that scope gets past authorisation."""
    tenant = await make_tenant()
    keys: dict[frozenset[Scope], tuple[str, str]] = {}
    for scopes in {s for scope in Scope for s in scopes_lacking(scope)}:
        keys[scopes] = await add_key(db, clock, tenant.org_id, scopes)

    recorder = record_admissions(app)
    checked = 0
    for method, path in ENDPOINTS:
        scope = AUTHENTICATED[method, path]
        if scope is None:
            continue
        for scopes in scopes_lacking(scope):
            response = await _call(client, method, path, bearer(keys[scopes][1]))
            body = assert_envelope(response, 403, "insufficient_scope")
            assert body["error"]["details"] == {"required_scope": scope.value}, (method, path)
            assert body["error"]["message"] == (
                f"This API key is missing the {scope} scope. Create a key with the {scope} scope enabled."
            )
            assert "x-ratelimit-limit" not in response.headers
            checked += 1
    assert checked == sum(3 for scope in AUTHENTICATED.values() if scope is not None)
    assert recorder.admitted == []  # 403s use no rate-limit slot

    for method, path in ENDPOINTS:
        scope = AUTHENTICATED[method, path]
        holders = [s for s in keys if scope is None or scope in s]
        for scopes in holders if scope is None else [frozenset({scope})]:
            before = len(recorder.admitted)
            response = await _call(client, method, path, bearer(keys[scopes][1]))
            assert response.status_code not in {401, 403}, (method, path, sorted(scopes), response.text)
            assert len(recorder.admitted) == before + 1  # admitted, and counted once
            assert recorder.admitted[-1][0] == keys[scopes][0]
            assert "x-ratelimit-limit" in response.headers


async def test_public_routes_need_no_key(client: httpx.AsyncClient) -> None:
    """The routes in PUBLIC answer without a key (none of them is a 401 for want of one)."""
    for method, path in sorted(PUBLIC):
        response = await client.request(method, concrete(path))
        assert response.status_code != 401, (method, path, response.text)
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    # The signed PUT without a signature: refused for the signature, not for want of a key.
    assert_envelope(await client.put(concrete("/uploads/{media_id}"), content=b"x"), 403, "invalid_signature")


async def test_metrics_token(settings: Settings, clock) -> None:
    """/metrics with PE_METRICS_TOKEN: the token, and nothing else (not an API key), opens it."""
    token = "metrics-token-" + "9" * 32
    guarded = Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        storage_url=settings.storage_url,
        secret_key=SECRET,  # type: ignore[arg-type]
        metrics_token=token,  # type: ignore[arg-type]
        log_json=False,
    )
    app = create_app(guarded, clock=clock, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert_envelope(await client.get("/metrics"), 401, "unauthorized")
            wrong = await client.get("/metrics", headers=bearer("pe_live_" + "a" * 32))
            assert_envelope(wrong, 401, "unauthorized")
            assert (
                await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 200
