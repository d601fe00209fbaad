"""Shared fixtures: a real database per run (SQLite and PostgreSQL), an app per test.

PostgreSQL: each test run creates its own database `pe_test_<random>` and drops it at the end, so
runs never see each other's data. Without a PostgreSQL server the PostgreSQL half of the suite is
skipped with a reason, except in CI (`CI` set), where it must run and its absence is a failure.
"""

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from postengine import migrate
from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import FakeClock, to_datetime
from postengine.orgs import service as orgs

PG_HOST = os.environ.get("PE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PE_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("PE_TEST_PG_DB", "test")
SECRET = "test-secret-key-for-keyed-hashes"


async def _pg_admin() -> Any:
    import asyncpg

    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=5)


def _pg_available() -> bool:
    async def probe() -> bool:
        try:
            conn = await _pg_admin()
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database `pe_test_<random>` (its URL), dropped afterwards."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}; CI must run the PostgreSQL tests")
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (set CI=1 to make this a failure)")
    name = f"pe_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await _pg_admin()
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    async def drop() -> None:
        conn = await _pg_admin()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create())
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgres"])
def process_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file under `tmp_path/data`, or a fresh PostgreSQL database of this test's own."""
    if request.param == "sqlite":
        (tmp_path / "data").mkdir(exist_ok=True)
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'postengine.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'postengine.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every test that uses this runs once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param if request.param == 'sqlite' else 'pg'}_database")
    return url


_migrated: set[str] = set()


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    if database_url not in _migrated:
        await migrate.upgrade(database)
        _migrated.add(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


def make_settings(tmp_path: Path, database_url: str, **extra: object) -> Settings:
    """The tests' settings: data and media under `tmp_path`, the tests' secret, plain-text logs."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        storage_url=f"file://{tmp_path / 'media'}",
        secret_key=SECRET,  # type: ignore[arg-type]
        public_media_url="http://testserver/cdn",
        log_json=False,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(tmp_path, database_url)


@dataclass
class Tenant:
    org_id: str
    key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest_asyncio.fixture(loop_scope="session")
async def make_tenant(db: Database, clock: FakeClock) -> Callable[..., Any]:
    async def make(
        plan: Plan = Plan.GROWTH, scopes: frozenset[Scope] = frozenset(Scope), bonus: int = 0, name: str = "Acme"
    ) -> Tenant:
        now = to_datetime(clock.time())
        async with db.write() as session:
            org = await orgs.create_org(session, name=name, plan=plan, now=now)
            key, secret = await key_service.create_key(
                session, secret_key=SECRET.encode(), org_id=org.id, name="test key", scopes=scopes, now=now
            )
        if bonus:
            await db.run(lambda conn: credits.grant_pack(conn, org_id=org.id, amount=bonus, now=now))
        return Tenant(org.id, key.id, secret)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings: Settings, clock: FakeClock, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock, background=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
