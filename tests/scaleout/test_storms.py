"""Storms against real PostgreSQL and Redis with several OS processes (issue 5): the embedded
mode's guarantees hold unchanged when many processes share one database and one Redis.

- credits: 300 concurrent generations on 4 API processes against a balance of 137 → exactly 137
  succeed; the ledger sums to the balance; one media item per success;
- the same with 30 % of the provider's answers failing → every failure refunded exactly once;
- rate limits: 150 concurrent generate requests on one key across 4 processes → exactly 50 admitted;
- publishing: 3 workers, 500 due destinations, one killed with SIGKILL mid-run → every destination
  published exactly once;
- an API process killed mid-generation → the credits come back through the sweeper.
"""

import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any

import httpx

from tests.posts.test_worker_crash import seed
from tests.scaleout.cluster import Cluster

GEN = "/api/v1/ai/generate-image"


async def storm(base: str, keys: list[str], prompts: list[str]) -> list[httpx.Response]:
    """Every prompt at once, round-robin over the keys, each on a connection of its own."""
    limits = httpx.Limits(max_connections=len(prompts), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        start = asyncio.Event()

        async def one(i: int, prompt: str) -> httpx.Response:
            await start.wait()
            return await client.post(GEN, headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                                     json={"prompt": prompt, "model": "flux-schnell", "aspect_ratio": "1:1"})

        tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(prompts)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def codes(responses: list[httpx.Response]) -> Counter[tuple[int, str | None]]:
    return Counter((r.status_code, (r.json().get("error") or {}).get("code")) for r in responses)


def assert_books_balance(cluster: Cluster, org_id: str, *, granted: int, successes: int, failures: int) -> None:
    """The invariants of DESIGN.md §4 for one organisation, read straight from the database."""
    [account] = cluster.sql("SELECT allowance - allowance_used + bonus AS balance, bonus FROM credit_accounts "
                            "WHERE org_id = $1", org_id)
    balance = account["balance"]
    assert balance == granted - successes >= 0
    [ledger] = cluster.sql("SELECT coalesce(sum(amount), 0) AS total FROM credit_ledger WHERE org_id = $1", org_id)
    assert ledger["total"] == balance
    generations = dict(cluster.sql("SELECT status, count(*) FROM generations WHERE org_id = $1 GROUP BY status", org_id))
    assert generations.get("completed", 0) == successes
    assert generations.get("failed", 0) == failures
    assert "reserved" not in generations  # nothing left half-way
    refunds = cluster.sql("SELECT generation_id, count(*) AS n FROM credit_ledger WHERE org_id = $1 AND kind = 'refund' "
                          "GROUP BY generation_id", org_id)
    assert len(refunds) == failures and all(row["n"] == 1 for row in refunds)  # each failure refunded once
    [media] = cluster.sql("SELECT count(*) AS n FROM media WHERE org_id = $1 AND source = 'ai'", org_id)
    assert media["n"] == successes
    [linked] = cluster.sql("SELECT count(*) AS n FROM generations g JOIN media m ON m.id = g.media_id "
                           "WHERE g.org_id = $1 AND g.status = 'completed'", org_id)
    assert linked["n"] == successes  # each completed generation has its own media item


def test_credit_storm_on_four_processes(cluster_factory) -> None:
    cluster: Cluster = cluster_factory()
    org, keys = cluster.org_with_keys("Storm", 10, bonus=137)  # 30 requests a key: no rate limit binds
    base = cluster.serve(workers=4)
    responses = asyncio.run(storm(base, keys, [f"a lighthouse at dawn, take {i}" for i in range(300)]))
    assert codes(responses) == {(200, None): 137, (402, "insufficient_credits"): 163}
    assert_books_balance(cluster, org, granted=137, successes=137, failures=0)
    # Whichever process answers /metrics, it adds up what all four did.
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    completed = [line for line in metrics.splitlines()
                 if line.startswith("postengine_generation_duration_seconds_count{")
                 and 'model="flux-schnell"' in line and 'outcome="completed"' in line]
    assert len(completed) == 1 and float(completed[0].rsplit(" ", 1)[1]) == 137


def test_credit_storm_with_failing_provider_refunds_each_failure_once(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(fal=True)
    org, keys = cluster.org_with_keys("Flaky", 10, bonus=137)
    base = cluster.serve(workers=4)
    prompts = [f"a harbour at dusk {'[fail]' if i % 10 < 3 else ''} take {i}" for i in range(300)]
    responses = asyncio.run(storm(base, keys, prompts))
    found = codes(responses)
    successes = found[(200, None)]
    failures = found[(500, "generation_failed")]
    assert successes + failures + found[(402, "insufficient_credits")] == 300, found
    assert failures > 0 and successes > 0
    for response, prompt in zip(responses, prompts, strict=True):
        if response.status_code == 500:
            assert "[fail]" in prompt
            assert response.json()["error"]["credits_refunded"] == 1
    assert_books_balance(cluster, org, granted=137, successes=successes, failures=failures)


def test_rate_limit_is_exact_across_processes(cluster_factory) -> None:
    cluster: Cluster = cluster_factory()
    _, [key] = cluster.org_with_keys("Limited", 1, plan="growth")
    base = cluster.serve(workers=4)
    responses = asyncio.run(storm(base, [key], [f"a red kite, take {i}" for i in range(150)]))
    found = codes(responses)
    assert found == {(200, None): 50, (429, "rate_limit_exceeded"): 100}, found
    limited = [r for r in responses if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert {r.json()["error"]["details"]["scope"] for r in limited} <= {"ai", "api"}


def test_publishing_with_three_workers_one_killed(cluster_factory) -> None:
    cluster: Cluster = cluster_factory()
    destinations = asyncio.run(seed(cluster.database_url, posts=50, accounts=10))
    assert len(destinations) == 500
    args = ("--lease-seconds", "2", "--batch-size", "10", "--concurrency", "4", "--poll-seconds", "0.1")
    workers = [cluster.worker(*args) for _ in range(3)]

    def outbox() -> int:
        return int(cluster.sql("SELECT count(*) AS n FROM sandbox_outbox")[0]["n"])

    deadline = time.monotonic() + 60
    while outbox() < 100:
        assert all(w.poll() is None for w in workers)
        assert time.monotonic() < deadline, "the workers published nothing within 60 s"
        time.sleep(0.01)
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait(timeout=10)

    deadline = time.monotonic() + 120
    while cluster.sql("SELECT count(*) AS n FROM post_destinations WHERE status <> 'published'")[0]["n"]:
        assert time.monotonic() < deadline, "not every destination was published within 120 s"
        time.sleep(0.2)
    rows = cluster.sql("SELECT d.id, d.platform_post_id AS recorded, o.platform_post_id AS sent FROM post_destinations d "
                       "LEFT JOIN sandbox_outbox o ON o.destination_id = d.id")
    assert len(rows) == 500
    assert all(row["recorded"] is not None and row["recorded"] == row["sent"] for row in rows)
    [outbox_rows] = cluster.sql("SELECT count(*) AS n, count(DISTINCT destination_id) AS d FROM sandbox_outbox")
    assert (outbox_rows["n"], outbox_rows["d"]) == (500, 500)  # never sent twice
    statuses = {row["status"] for row in cluster.sql("SELECT status FROM posts")}
    assert statuses == {"published"}


def test_process_killed_mid_generation_is_refunded_by_the_sweeper(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(fal=True)
    org, [key] = cluster.org_with_keys("Crashy", 1, bonus=10)
    deadline_env = {"PE_GENERATION_DEADLINE_SECONDS": "2"}
    base = cluster.serve(workers=1, **deadline_env)
    victim = cluster.processes[-1]

    async def hang() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await client.post(GEN, headers={"Authorization": f"Bearer {key}"},
                              json={"prompt": "a quiet pond [hang]", "model": "flux-schnell"})

    def reserved() -> list[Any]:
        return cluster.sql("SELECT id FROM generations WHERE org_id = $1 AND status = 'reserved'", org)

    async def kill_while_reserved() -> None:
        request = asyncio.create_task(hang())
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(reserved):
            assert time.monotonic() < deadline, "the generation never started"
            await asyncio.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # the process dies with the provider call in flight
        victim.wait(timeout=10)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)

    asyncio.run(kill_while_reserved())
    assert len(reserved()) == 1
    [before] = cluster.sql("SELECT allowance - allowance_used + bonus AS balance FROM credit_accounts WHERE org_id = $1", org)
    assert before["balance"] == 9  # the dead process's reservation still holds the credit

    cluster.serve(workers=2, **deadline_env)  # another deployment's processes sweep at start-up
    deadline = time.monotonic() + 60
    while reserved():
        assert time.monotonic() < deadline, "the sweeper did not settle the dead generation"
        time.sleep(0.1)
    assert_books_balance(cluster, org, granted=10, successes=0, failures=1)
