"""`/metrics` after real requests: the counters move by exactly what happened, with bounded labels
(route templates, models, scopes, outcomes — never ids); and several processes writing into one
multiprocess directory add up."""

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from postengine import migrate
from postengine.accounts.connectors import (
    PermanentPublishError,
    PublishRequest,
    PublishResult,
    TransientPublishError,
)
from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.generation.providers import ProviderFailed
from postengine.kit.clock import FakeClock, to_datetime
from postengine.ops.metrics import MULTIPROC_ENV, prepare_multiprocess_metrics
from postengine.orgs import service as orgs
from postengine.posts.publisher import Publisher
from tests.api.helpers import ScriptedProvider, client_with
from tests.conftest import SECRET, make_settings
from tests.ops.helpers import serving
from tests.posts.helpers import add_account

GEN = "/api/v1/ai/generate-image"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples) -> Callable[..., float]:
    return lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)


async def test_requests_are_counted_by_route_template_and_status(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    media_id = "med_" + "ab" * 12
    before = await scrape(client)
    assert (await client.get(f"/api/v1/media/{media_id}", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"/api/v1/media/{media_id}", headers=tenant.headers)).status_code == 404
    assert (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get(f"/no/such/{media_id}")).status_code == 404
    assert (await client.put("/api/v1/me", headers=tenant.headers)).status_code == 405
    after = await scrape(client)
    moved = delta(before, after)

    requests = "postengine_http_requests_total"
    assert moved(requests, method="GET", route="/api/v1/media/{media_id}", status="404") == 2
    assert moved(requests, method="GET", route="/api/v1/me", status="200") == 1
    assert moved(requests, method="GET", route="/api/v1/me", status="401") == 1
    assert moved(requests, method="GET", route="<unmatched>", status="404") == 1
    assert moved(requests, method="PUT", route="/api/v1/me", status="405") == 1
    latency = "postengine_http_request_duration_seconds"
    assert moved(f"{latency}_count", method="GET", route="/api/v1/media/{media_id}") == 2
    assert moved(f"{latency}_bucket", method="GET", route="/api/v1/media/{media_id}", le="+Inf") == 2
    assert moved(f"{latency}_sum", method="GET", route="/api/v1/media/{media_id}") > 0
    # No label anywhere carries an id or a raw path.
    assert not any(media_id in label for (_, labels) in after for label in dict(labels).values())


async def test_generations_and_credits(client: httpx.AsyncClient, make_tenant, settings, clock) -> None:
    tenant = await make_tenant(plan=Plan.NONE, bonus=15)
    before = await scrape(client)
    ok = await client.post(GEN, headers=tenant.headers, json={"prompt": "a lighthouse", "model": "flux-schnell"})
    assert ok.status_code == 200
    cost = ok.json()["data"]["credits_used"]
    # Refused before any reservation: neither a generation nor a credit movement.
    blocked = await client.post(GEN, headers=tenant.headers, json={"prompt": "nude photo", "model": "flux-schnell"})
    assert blocked.status_code == 400
    short = await client.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "nano-banana-pro"})
    assert short.status_code == 402
    async with client_with(settings, clock, ScriptedProvider(ProviderFailed("upstream 502"))) as failing:
        failed = await failing.post(GEN, headers=tenant.headers, json={"prompt": "a cat", "model": "gemini-3-pro"})
    assert failed.status_code == 500
    refunded = failed.json()["error"]["credits_refunded"]
    moved = delta(before, await scrape(client))

    seconds = "postengine_generation_duration_seconds"
    assert moved(f"{seconds}_count", model="flux-schnell", outcome="completed") == 1
    assert moved(f"{seconds}_count", model="gemini-3-pro", outcome="failed") == 1
    assert moved(f"{seconds}_count", model="flux-schnell", outcome="blocked") == 0
    assert moved(f"{seconds}_count", model="nano-banana-pro", outcome="failed") == 0
    assert moved("postengine_credits_reserved_total") == cost + refunded
    assert moved("postengine_credits_settled_total") == cost
    assert moved("postengine_credits_refunded_total") == refunded


async def test_rate_limited_requests_by_scope(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    before = await scrape(client)
    statuses = [(await client.get("/api/v1/me", headers=tenant.headers)).status_code for _ in range(62)]
    assert statuses.count(429) == 2  # the API scope admits 60 a minute
    moved = delta(before, await scrape(client))
    assert moved("postengine_rate_limited_total", scope="api") == 2
    assert moved("postengine_rate_limited_total", scope="ai") == 0
    assert moved("postengine_http_requests_total", method="GET", route="/api/v1/me", status="429") == 2


async def test_publish_outcomes(tmp_path: Path) -> None:
    """One publish of each kind, on a database of its own (so no other test's due posts join in)."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'publish.db'}"
    clock = FakeClock(start=time.time())
    db = Database(database_url)
    await migrate.upgrade(db)
    now = to_datetime(clock.time())
    async with db.write() as session:
        org = await orgs.create_org(session, name="Outcomes", plan=Plan.GROWTH, now=now)
        _, secret = await key_service.create_key(
            session, secret_key=SECRET.encode(), org_id=org.id, name="k", scopes=frozenset(Scope), now=now
        )
    accounts = [
        await add_account(db, clock, org.id, "x", name="@fine"),
        await add_account(db, clock, org.id, "x", name="@busy"),
        await add_account(db, clock, org.id, "linkedin", name="refuses"),
    ]

    def script(request: PublishRequest) -> PublishResult:
        if request.account_name == "@busy":
            raise TransientPublishError("X is over capacity (503).", retry_after=60)
        if request.account_name == "refuses":
            raise PermanentPublishError("LinkedIn refused the post.")
        return PublishResult(f"p-{request.destination_id}")

    class Scripted:
        def for_account(self, platform: str, is_sandbox: bool) -> "Scripted":
            return self

        async def publish(self, request: PublishRequest) -> PublishResult:
            return script(request)

        async def find_published(self, request: PublishRequest) -> PublishResult | None:
            return None

    app = create_app(make_settings(tmp_path, database_url), clock=clock, background=False)
    try:
        async with serving(app) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            created = await client.post("/api/v1/posts", headers=headers, json={"content": "hi", "account_ids": accounts})
            assert created.status_code == 201, created.text
            before = await scrape(client)
            await Publisher(db, clock, Scripted(), "http://testserver/cdn").drain()  # type: ignore[arg-type]
            moved = delta(before, await scrape(client))
    finally:
        await db.dispose()
    outcomes = "postengine_publish_outcomes_total"
    assert moved(outcomes, outcome="published") == 1
    assert moved(outcomes, outcome="transient") == 1
    assert moved(outcomes, outcome="permanent") == 1
    assert moved(outcomes, outcome="lost") == 0


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from postengine.app import create_app
    from postengine.config import Settings

    async def main(count: int) -> None:
        app = create_app(Settings(data_dir=sys.argv[2]), background=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(count):
                assert (await client.get("/healthz")).status_code == 200
            if sys.argv[3] != "-":  # the scrape goes to a file: stdout has the access log
                with open(sys.argv[3], "w") as out:
                    out.write((await client.get("/metrics")).text)

    asyncio.run(main(int(sys.argv[1])))
    """
)


def run_python(script: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def test_several_processes_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes serve requests and write into one directory; a third answers the scrape with
    the sum of all three (its own scrape request is counted once it has been answered)."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"stale file of an earlier run")
    monkeypatch.setenv(MULTIPROC_ENV, "")  # whatever prepare sets is undone after the test
    assert prepare_multiprocess_metrics(metrics_dir) == metrics_dir
    assert os.environ[MULTIPROC_ENV] == str(metrics_dir)
    assert list(metrics_dir.iterdir()) == []  # the earlier run's values are gone
    env = {key: val for key, val in os.environ.items() if key != "PE_METRICS_TOKEN"}
    data = str(tmp_path / "data")
    writers = [run_python(WRITER, str(n), data, "-", env=env) for n in (3, 4)]
    for writer in writers:
        finish(writer)
    assert len(list(metrics_dir.glob("*.db"))) >= 2  # one set of files per process
    scraped = tmp_path / "scrape.txt"
    finish(run_python(WRITER, "5", data, str(scraped), env=env))
    samples = parse(scraped.read_text())

    assert value(samples, "postengine_http_requests_total", method="GET", route="/healthz", status="200") == 12
    assert value(samples, "postengine_http_request_duration_seconds_count", method="GET", route="/healthz") == 12
    assert value(samples, "postengine_http_request_duration_seconds_bucket", method="GET", route="/healthz", le="+Inf") == 12


def test_prepare_without_a_directory_makes_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # set but empty: as unset
    path = prepare_multiprocess_metrics()
    try:
        assert path.is_dir() and os.environ[MULTIPROC_ENV] == str(path)
    finally:
        path.rmdir()

