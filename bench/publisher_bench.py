"""Publisher throughput: destinations published per second to sandbox accounts.

Usage::

    .venv/bin/python bench/publisher_bench.py                       # 2,000 destinations, SQLite file
    .venv/bin/python bench/publisher_bench.py --destinations 500 --quick
    .venv/bin/python bench/publisher_bench.py --database-url postgresql+asyncpg://postgres@127.0.0.1/pe_bench

One run, per configuration (publishers in this process × publishes in flight per publisher):
1. seeds a fresh database (SQLite in a temporary folder, or the PostgreSQL database given, whose
   postengine tables are emptied first) with one organisation, `--accounts` sandbox accounts and
   posts whose destinations are all due now;
2. runs `--publishers` publisher loops (the same `Publisher` that `postengine worker` runs) until
   nothing is due, and times it;
3. checks the invariant: every destination published, one sandbox outbox row each, the recorded
   platform post id equal to the outbox's.

Each published destination is two short write transactions (the sandbox connector's outbox row,
then our record with the post's derived status) plus its share of the batch claim. A benchmark,
not a test: it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from postengine import migrate
from postengine.accounts.connectors.registry import Connectors
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import SystemClock, utcnow
from postengine.models import Organization, Post, PostDestination, SandboxOutboxEntry, SocialAccount
from postengine.orgs import service as orgs
from postengine.posts.publisher import Publisher, PublisherConfig


async def seed(db: Database, destinations: int, accounts: int) -> list[str]:
    now = utcnow()
    async with db.write() as session:
        org = await orgs.create_org(session, name=f"bench-{uuid.uuid4().hex[:8]}", plan=Plan.PRO, now=now)
    org_id = org.id

    def write(conn: Connection) -> list[str]:
        account_ids = [
            conn.execute(
                insert(SocialAccount).values(
                    org_id=org_id,
                    platform="x",
                    account_name=f"@bench{i}",
                    display_name=f"bench {i}",
                    is_sandbox=True,
                    created_at=now,
                )
            ).inserted_primary_key[0]
            for i in range(accounts)
        ]
        rows: list[dict[str, Any]] = []
        posts: list[dict[str, Any]] = []
        while len(rows) < destinations:
            post_id = str(uuid.uuid4())
            posts.append(
                {
                    "id": post_id,
                    "org_id": org_id,
                    "status": "publishing",
                    "content": "benchmark post",
                    "timezone": "UTC",
                    "platform_content": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            for account_id in account_ids[: destinations - len(rows)]:
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "post_id": post_id,
                        "org_id": org_id,
                        "account_id": account_id,
                        "platform": "x",
                        "status": "queued",
                        "due_at": now,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        conn.execute(insert(Post), posts)
        conn.execute(insert(PostDestination), rows)
        return [row["id"] for row in rows]

    return await db.run(write)


async def clear(db: Database) -> None:
    def wipe(conn: Connection) -> None:
        for table in (SandboxOutboxEntry, PostDestination, Post, SocialAccount):
            conn.execute(delete(table))
        conn.execute(delete(Organization).where(Organization.name.like("bench-%")))

    await db.run(wipe)


async def check(db: Database, dest_ids: list[str]) -> str:
    def read(conn: Connection) -> tuple[int, int, int]:
        published = conn.execute(
            select(func.count()).select_from(PostDestination).where(PostDestination.status == "published")
        ).scalar_one()
        outbox = conn.execute(select(func.count()).select_from(SandboxOutboxEntry)).scalar_one()
        matching = conn.execute(
            select(func.count())
            .select_from(PostDestination)
            .join(SandboxOutboxEntry, SandboxOutboxEntry.destination_id == PostDestination.id)
            .where(PostDestination.platform_post_id == SandboxOutboxEntry.platform_post_id)
        ).scalar_one()
        return published, outbox, matching

    published, outbox, matching = await db.run_read(read)
    n = len(dest_ids)
    ok = published == outbox == matching == n
    return "OK" if ok else f"BROKEN (published {published}, outbox {outbox}, matching {matching} of {n})"


async def one_run(url: str, args: argparse.Namespace, publishers: int, concurrency: int) -> dict[str, Any]:
    db = Database(url)
    try:
        await migrate.upgrade(db)
        if not db.is_sqlite:
            await clear(db)
        dest_ids = await seed(db, args.destinations, args.accounts)
        clock = SystemClock()
        config = PublisherConfig(batch_size=args.batch_size, concurrency=concurrency)
        workers = [
            Publisher(db, clock, Connectors(db, clock), "http://localhost/cdn", config)
            for _ in range(publishers)
        ]
        start = time.perf_counter()
        reports = await asyncio.gather(*(w.drain() for w in workers))
        elapsed = time.perf_counter() - start
        published = sum(r.published for r in reports)
        verdict = await check(db, dest_ids)
        return {
            "publishers": publishers,
            "concurrency": concurrency,
            "destinations": len(dest_ids),
            "published": published,
            "seconds": elapsed,
            "per_second": published / elapsed if elapsed else None,
            "ms_per_destination": elapsed * 1000 / published if published else None,
            "invariant": verdict,
        }
    finally:
        await db.dispose()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for publishers, concurrency in args.configs:
        tmp = None
        url = args.database_url
        if url is None:
            tmp = Path(tempfile.mkdtemp(prefix="postengine-publisher-bench-"))
            url = f"sqlite+aiosqlite:///{tmp}/postengine.db"
        try:
            label = "PostgreSQL" if url.startswith("postgresql") else "SQLite file"
            print(
                f"[{label}] {args.destinations} destinations, {publishers} publisher(s) × {concurrency} in flight …",
                file=sys.stderr,
                flush=True,
            )
            result = await one_run(url, args, publishers, concurrency)
            result["database"] = label
            results.append(result)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return results


def parse_config(text: str) -> tuple[int, int]:
    publishers, _, concurrency = text.partition("x")
    return int(publishers), int(concurrency or 16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--destinations", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=20, help="sandbox accounts (destinations per post)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--config",
        dest="configs",
        type=parse_config,
        action="append",
        help="PUBLISHERSxCONCURRENCY, repeatable (default: 1x1 1x16 4x16)",
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (its postengine tables are emptied); default SQLite"
    )
    parser.add_argument("--quick", action="store_true", help="500 destinations")
    args = parser.parse_args()
    if args.quick:
        args.destinations = 500
    args.configs = args.configs or [(1, 1), (1, 16), (4, 16)]
    results = asyncio.run(main_async(args))
    print()
    header = f"{'database':<12} {'publishers':>10} {'in flight':>9} {'destinations':>12} {'seconds':>8} {'per s':>8} {'ms each':>8}  invariant"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['database']:<12} {r['publishers']:>10} {r['concurrency']:>9} {r['destinations']:>12} "
            f"{r['seconds']:>8.2f} {r['per_second']:>8.0f} {r['ms_per_destination']:>8.2f}  {r['invariant']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
