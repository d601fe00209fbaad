"""Concurrent duplicates across real processes (issue 6): requests with one `Idempotency-Key` sent
at once to four API processes sharing PostgreSQL run once, charge once, and every success carries
the same bytes; the rest are 409 `idempotency_in_progress` with `Retry-After`, and a later retry
replays."""

import asyncio
from collections import Counter

import httpx

from tests.scaleout.cluster import Cluster

GEN = "/api/v1/ai/generate-image"
POSTS = "/api/v1/posts"


async def duplicates(base: str, key: str, jobs: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Every (path, idempotency key, body) at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=len(jobs), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        start = asyncio.Event()

        async def one(path: str, idem: str, body: dict) -> httpx.Response:
            await start.wait()
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
            return await client.post(path, headers=headers, json=body)

        tasks = [asyncio.create_task(one(*job)) for job in jobs]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def test_duplicates_across_four_processes_run_once(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(fal=True)
    org, [key] = cluster.org_with_keys("Retries", 1, bonus=100)
    base = cluster.serve(workers=4)
    prompt = {"prompt": "a paper boat, retried", "model": "flux-schnell", "aspect_ratio": "1:1"}
    jobs = [(GEN, f"gen-{i % 3}", prompt) for i in range(36)]  # three keys, twelve copies each
    jobs += [(POSTS, "post-1", {"content": "once", "draft": True}) for _ in range(12)]
    responses = asyncio.run(duplicates(base, key, jobs))

    by_key: dict[str, list[httpx.Response]] = {}
    for (_, idem, _), response in zip(jobs, responses, strict=True):
        by_key.setdefault(idem, []).append(response)
    for idem, answers in by_key.items():
        found = Counter(r.status_code for r in answers)
        assert set(found) <= {200, 201, 409}, (idem, found)
        successes = [r for r in answers if r.status_code in (200, 201)]
        assert successes, idem  # the one that ran answered
        assert len({r.content for r in successes}) == 1, idem  # later ones replayed it byte for byte
        for busy in (r for r in answers if r.status_code == 409):
            assert busy.json()["error"]["code"] == "idempotency_in_progress"
            assert int(busy.headers["retry-after"]) >= 1

    # Once settled, a retry of every key replays.
    again = asyncio.run(duplicates(base, key, [(GEN, f"gen-{i}", prompt) for i in range(3)]))
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    for i, response in enumerate(again):
        first = next(r for r in by_key[f"gen-{i}"] if r.status_code == 200)
        assert response.content == first.content

    [generations] = cluster.sql("SELECT count(*) AS n FROM generations WHERE org_id = $1", org)
    assert generations["n"] == 3
    [charges] = cluster.sql("SELECT count(*) AS n FROM credit_ledger WHERE org_id = $1 AND kind = 'generation'", org)
    assert charges["n"] == 3
    [account] = cluster.sql("SELECT allowance - allowance_used + bonus AS balance FROM credit_accounts "
                            "WHERE org_id = $1", org)
    assert account["balance"] == 100 - 3  # flux-schnell costs 1 credit
    [posts] = cluster.sql("SELECT count(*) AS n FROM posts WHERE org_id = $1", org)
    assert posts["n"] == 1
