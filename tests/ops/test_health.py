"""`/healthz` and `/readyz` against real dependencies: PostgreSQL and Redis are reached through a
TCP relay that the test takes down, so "down" is a refused connection, not a mock."""

import asyncio
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from postengine import migrate
from postengine.app import create_app
from postengine.config import Settings
from postengine.db import Database
from postengine.kit.clock import FakeClock
from postengine.ratelimit.store import MemoryRateLimitStore
from tests.conftest import make_settings
from tests.ops.helpers import serving
from tests.relay import TcpRelay


async def readyz_until(client: httpx.AsyncClient, status: int, seconds: float = 15.0) -> httpx.Response:
    """Poll until /readyz answers `status` (a pooled connection may need one probe to be dropped)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_healthz_answers_without_any_dependency(settings: Settings) -> None:
    # No lifespan: no database, no storage, nothing. Liveness must still say yes.
    app = create_app(settings, background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response.headers["x-request-id"].startswith("req_")
        # Readiness without a started app is a 503, never a 500.
        starting = await client.get("/readyz")
    assert starting.status_code == 503
    assert starting.json()["failing"] == ["startup"]


async def test_readyz_reports_each_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "storage"}  # no Redis configured: not checked
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert response.headers["cache-control"] == "no-store"


async def test_probes_need_no_key_and_are_not_in_the_api_schema(client: httpx.AsyncClient, app: FastAPI) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200
    paths = app.openapi()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
    assert all(path.startswith(("/api/v1/", "/uploads/")) for path in paths)


async def test_readyz_names_the_database_when_postgresql_is_down(pg_database: str, tmp_path: Path) -> None:
    direct = Database(pg_database)
    await migrate.upgrade(direct)
    await direct.dispose()
    target = urlsplit(pg_database)
    relay = TcpRelay(target.hostname or "127.0.0.1", target.port or 5432)
    await relay.start()
    url = pg_database.replace(f"@{target.hostname}:{target.port}/", f"@127.0.0.1:{relay.port}/")
    clock = FakeClock(start=time.time())
    app = create_app(make_settings(tmp_path, url), clock=clock, background=False)
    try:
        async with serving(app) as client:
            assert (await client.get("/readyz")).status_code == 200

            await relay.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["failing"] == ["database"]
            assert body["checks"]["database"]["status"] == "fail"
            assert body["checks"]["database"]["reason"] == "unreachable", body
            assert body["checks"]["storage"]["status"] == "ok"
            assert str(relay.port) not in down.text and "postgres" not in down.text  # no URL, no driver text
            assert (await client.get("/healthz")).status_code == 200  # liveness does not follow

            await relay.start()  # same port
            assert (await readyz_until(client, 200)).status_code == 200
    finally:
        await relay.stop()


async def test_readyz_names_redis_when_it_is_down(redis_url: str, sqlite_database: str, tmp_path: Path) -> None:
    target = urlsplit(redis_url)
    relay = TcpRelay(target.hostname or "127.0.0.1", target.port or 6379)
    await relay.start()
    clock = FakeClock(start=time.time())
    settings = make_settings(
        tmp_path,
        sqlite_database,
        redis_url=f"redis://127.0.0.1:{relay.port}{target.path or '/0'}",
        redis_prefix=f"pe_test_{secrets.token_hex(6)}:",  # this run's keys only (the app only reads)
    )
    # The rate-limit store is handed in: this test is about the readiness probe's own connection.
    app = create_app(settings, clock=clock, rate_limits=MemoryRateLimitStore(clock), background=False)
    try:
        async with serving(app) as client:
            up = await client.get("/readyz")
            assert up.status_code == 200
            assert up.json()["checks"]["redis"]["status"] == "ok"

            await relay.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["failing"] == ["redis"]
            assert body["checks"]["redis"] == {
                "status": "fail",
                "reason": "unreachable",
                "duration_ms": body["checks"]["redis"]["duration_ms"],
            }
            assert body["checks"]["database"]["status"] == "ok"
            assert str(relay.port) not in down.text

            await relay.start()
            assert (await readyz_until(client, 200)).status_code == 200
    finally:
        await relay.stop()


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer wrong-token", 401), ("Basic c2VjcmV0", 401), ("Bearer s3cret-metrics-token", 200)],
)
async def test_metrics_token(
    sqlite_database: str, tmp_path: Path, header: str | None, status: int
) -> None:
    settings = make_settings(tmp_path, sqlite_database, metrics_token="s3cret-metrics-token")
    app = create_app(settings, clock=FakeClock(start=time.time()), background=False)
    async with serving(app) as client:
        response = await client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        assert "s3cret" not in response.text
    else:
        assert "postengine_http_requests_total" in response.text


async def test_readyz_names_the_storage_when_the_bucket_is_unreachable(
    sqlite_database: str, tmp_path: Path
) -> None:
    from obstore.store import S3Store

    from postengine.media.storage.s3 import S3Storage

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = S3Store(
        "media",
        config={
            "endpoint": f"http://127.0.0.1:{port}",
            "region": "us-east-1",
            "access_key_id": "readyz-test",
            "secret_access_key": "readyz-test-secret",
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True, "connect_timeout": "1s"},
    )
    clock = FakeClock(start=time.time())
    app = create_app(make_settings(tmp_path, sqlite_database), clock=clock, storage=S3Storage(store), background=False)
    async with serving(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["storage"]
    # obstore retries a refused connection with backoff: it fails either way, at the latest at the deadline.
    assert body["checks"]["storage"]["reason"] in {"unreachable", "timed out after 2 s"}
    assert "readyz-test" not in response.text and str(port) not in response.text


async def test_an_empty_metrics_token_means_none(sqlite_database: str, tmp_path: Path) -> None:
    # What compose writes for an unset ${PE_METRICS_TOKEN:-}.
    app = create_app(make_settings(tmp_path, sqlite_database, metrics_token=""), background=False)
    async with serving(app) as client:
        assert (await client.get("/metrics")).status_code == 200
