"""Caches stay coherent across processes and machines when Redis is configured: a key revoked from
another machine stops working here, and a list read here shows another process's write at once."""

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import insert

from postengine.auth import keys as key_service
from postengine.config import Settings
from postengine.kit.clock import to_datetime
from postengine.kit.epoch import REMOTE_KEY, bump_remote
from postengine.models import Post
from tests.api.test_conventions import assert_envelope
from tests.conftest import make_settings
from tests.scaleout.cluster import REDIS_URL, require_redis


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Iterator[Settings]:
    require_redis()
    prefix = f"pe_test_{secrets.token_hex(6)}:"
    yield make_settings(tmp_path, database_url, redis_url=REDIS_URL, redis_prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    stale = list(client.scan_iter(match=f"{prefix}*"))
    if stale:
        client.delete(*stale)
    client.close()


async def test_a_key_revoked_from_another_machine_stops_working(
    client: httpx.AsyncClient, make_tenant, db, clock, settings: Settings
) -> None:
    tenant = await make_tenant()
    assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 200)  # now cached here
    async with db.write() as session:
        await key_service.revoke_key(session, tenant.key_id, to_datetime(clock.time()))
    # What `postengine keys revoke` does on another machine: its epoch file is not ours, Redis is.
    shared = redis.Redis.from_url(REDIS_URL)
    bump_remote(shared, settings.redis_prefix + REMOTE_KEY)
    shared.close()
    deadline = time.monotonic() + 5
    while (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked key still works 5 s after the shared bump"
        await asyncio.sleep(0.1)
    assert_envelope(await client.get("/api/v1/me", headers=tenant.headers), 401, "unauthorized")


async def test_lists_show_another_process_write_at_once(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()

    async def ids() -> list[str]:
        body = assert_envelope(await client.get("/api/v1/posts", headers=tenant.headers), 200)
        return [p["id"] for p in body["data"]["posts"]]

    assert await ids() == []
    post_id, now = str(uuid.uuid4()), to_datetime(clock.time())
    # Another API process or worker writes: this process hears nothing about it.
    await db.run(lambda conn: conn.execute(insert(Post).values(
        id=post_id, org_id=tenant.org_id, status="draft", content="from elsewhere", timezone="UTC",
        platform_content={}, created_at=now, updated_at=now,
    )))
    assert await ids() == [post_id]
