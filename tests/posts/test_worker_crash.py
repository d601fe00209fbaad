"""`postengine worker` as a real process: killed with SIGKILL while it publishes, then another
worker takes over after the lease expires; every destination ends up published exactly once, with
the platform post id that the sandbox recorded. And SIGTERM stops a worker gracefully. On SQLite
and on PostgreSQL (a database of its own per test: the counts are over whole tables)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from postengine import migrate
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import utcnow
from postengine.models import Post, PostDestination, SocialAccount
from postengine.orgs import service as orgs
from tests import processes

POSTS, ACCOUNTS = 25, 16  # 400 destinations
EXE = str(Path(sys.executable).with_name("postengine"))


@pytest.fixture
def database_url(process_database_url: str) -> str:
    return process_database_url


def worker_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PE_DATA_DIR": str(tmp_path / "data"),
        "PE_DATABASE_URL": database_url,
        "PE_STORAGE_URL": f"file://{tmp_path / 'data' / 'media'}",
        "PE_LOG_LEVEL": "warning",
    }


class Probe(processes.Probe):
    def scalar(self, sql: str) -> Any:
        return self.rows(sql)[0][0]


@pytest.fixture
def probe(database_url: str) -> Iterator[Probe]:
    probe = Probe(database_url)
    yield probe
    probe.close()


async def seed(database_url: str, posts: int = POSTS, accounts: int = ACCOUNTS) -> list[str]:
    """An organisation with `accounts` sandbox accounts and `posts` posts to all of them, every
    destination due now (posts × accounts destinations)."""
    db = Database(database_url)
    try:
        await migrate.upgrade(db)
        now = utcnow()
        async with db.write() as session:
            org = await orgs.create_org(session, name="Crash", plan=Plan.GROWTH, now=now)
        org_id = org.id

        def write(conn) -> list[str]:
            account_ids = []
            for i in range(accounts):
                result = conn.execute(
                    insert(SocialAccount).values(
                        org_id=org_id, platform="x", account_name=f"@a{i}", display_name=f"a{i}",
                        is_sandbox=True, created_at=now,
                    )
                )
                account_ids.append(result.inserted_primary_key[0])
            destinations = []
            for p in range(posts):
                post_id = str(uuid.uuid4())
                conn.execute(
                    insert(Post).values(
                        id=post_id, org_id=org_id, status="publishing", content=f"post {p}", timezone="UTC",
                        platform_content={}, created_at=now, updated_at=now,
                    )
                )
                for account_id in account_ids:
                    destinations.append(
                        {"id": str(uuid.uuid4()), "post_id": post_id, "org_id": org_id, "account_id": account_id,
                         "platform": "x", "status": "queued", "due_at": now, "attempts": 0,
                         "created_at": now, "updated_at": now}
                    )
            conn.execute(insert(PostDestination), destinations)
            return [d["id"] for d in destinations]

        return await db.run(write)
    finally:
        await db.dispose()


def test_sigkill_mid_publish_then_takeover_publishes_each_destination_once(
    tmp_path: Path, database_url: str, probe: Probe
) -> None:
    dest_ids = asyncio.run(seed(database_url))
    env = worker_env(tmp_path, database_url)
    victim = subprocess.Popen(
        [EXE, "worker", "--lease-seconds", "2", "--batch-size", "10", "--concurrency", "4", "--poll-seconds", "0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while probe.scalar("SELECT count(*) FROM sandbox_outbox") < 40:  # let it get going, then kill it without warning
            assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
            assert time.monotonic() < deadline, "the worker published nothing within 60 s"
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    published_at_kill = probe.scalar("SELECT count(*) FROM post_destinations WHERE status = 'published'")
    leased_at_kill = probe.scalar(
        "SELECT count(*) FROM post_destinations WHERE status = 'queued' AND lease_owner IS NOT NULL"
    )
    assert published_at_kill < len(dest_ids), "the worker finished before it was killed"

    time.sleep(2.2)  # the dead worker's leases expire (unavoidable: a real process on the real clock)
    done = subprocess.run(
        [EXE, "worker", "--once", "--json", "--lease-seconds", "30"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["published"] == len(dest_ids) - published_at_kill
    assert summary["failed"] == 0

    rows = probe.rows(
        "SELECT d.id, d.status, d.platform_post_id, o.platform_post_id, d.attempts FROM post_destinations d "
        "LEFT JOIN sandbox_outbox o ON o.destination_id = d.id"
    )
    outbox_rows = tuple(probe.rows("SELECT count(*), count(DISTINCT destination_id) FROM sandbox_outbox")[0])
    statuses = {row[0] for row in probe.rows("SELECT status FROM posts")}
    assert len(rows) == len(dest_ids)
    assert outbox_rows == (len(dest_ids), len(dest_ids))  # one outbox row per destination, never two
    for dest_id, status, recorded, sent, _attempts in rows:
        assert status == "published" and recorded is not None and recorded == sent, dest_id
    assert statuses == {"published"}
    # Some destinations were claimed (leased) by the dead worker and finished by the second one.
    reclaimed = sum(1 for row in rows if row[4] == 2)
    assert reclaimed >= leased_at_kill


def test_sigterm_stops_a_worker_gracefully(tmp_path: Path, database_url: str, probe: Probe) -> None:
    asyncio.run(seed(database_url))
    proc = subprocess.Popen(
        [EXE, "worker", "--batch-size", "5", "--concurrency", "2"],
        env=worker_env(tmp_path, database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while probe.scalar("SELECT count(*) FROM sandbox_outbox") < 10:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "worker stopped: published" in out
    # Whatever it claimed, it recorded before exiting: no lease is left behind.
    assert probe.scalar("SELECT count(*) FROM post_destinations WHERE lease_owner IS NOT NULL") == 0
