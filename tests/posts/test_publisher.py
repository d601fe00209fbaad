"""The publisher (API.md §7.4) against the real database, with the clock and the platform edge
scripted: claim → publish → record, retries with backoff, permanent failures, the post's derived
status, and never publishing a destination twice (leases, crashes between send and record, several
workers at once)."""

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy import func, select, update

from postengine.accounts.connectors import (
    PermanentPublishError,
    PublishRequest,
    PublishResult,
    TransientPublishError,
)
from postengine.accounts.connectors.registry import Connectors
from postengine.kit.clock import to_datetime
from postengine.models import Post, SandboxOutboxEntry, SocialAccount
from postengine.posts.publisher import Publisher, PublisherConfig, backoff_seconds
from tests.api.test_conventions import assert_envelope
from tests.api.test_posts import POSTS, at
from tests.posts.helpers import add_account, add_media

BASE = "http://testserver/cdn"


class ScriptedConnector:
    """The platform edge for one organisation's destinations: `script(request)` returns a result or
    raises. Destinations of other tests' organisations (the database is shared) just succeed."""

    def __init__(self, org_id: str, script: Callable[[PublishRequest], PublishResult]) -> None:
        self.org_id = org_id
        self.script = script
        self.published: list[PublishRequest] = []
        self.looked_up: list[PublishRequest] = []

    async def publish(self, request: PublishRequest) -> PublishResult:
        if request.org_id != self.org_id:
            return PublishResult(f"other-{request.destination_id}")
        self.published.append(request)
        return self.script(request)

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        if request.org_id == self.org_id:
            self.looked_up.append(request)
        return None

    def for_account(self, platform: str, is_sandbox: bool) -> "ScriptedConnector":
        return self


class CountingSandbox:
    """The real sandbox connector, counting calls."""

    def __init__(self, db, clock) -> None:
        self.inner = Connectors(db, clock)
        self.publishes: list[str] = []
        self.lookups: list[str] = []

    def for_account(self, platform: str, is_sandbox: bool) -> "CountingSandbox":
        return self

    async def publish(self, request: PublishRequest) -> PublishResult:
        self.publishes.append(request.destination_id)
        return await self.inner.sandbox.publish(request)

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        self.lookups.append(request.destination_id)
        return await self.inner.sandbox.find_published(request)


async def post_now(client, tenant, account_ids: list[int], **extra) -> dict:
    body = {"content": "hello", "account_ids": account_ids, **extra}
    return assert_envelope(await client.post(POSTS, headers=tenant.headers, json=body), 201)["data"]


async def fetch(client, tenant, post_id: str) -> dict:
    return assert_envelope(await client.get(f"{POSTS}/{post_id}", headers=tenant.headers), 200)["data"]


async def outbox(db, destination_ids: list[str]) -> dict[str, str]:
    async with db.read() as session:
        rows = await session.execute(
            select(SandboxOutboxEntry.destination_id, SandboxOutboxEntry.platform_post_id).where(
                SandboxOutboxEntry.destination_id.in_(destination_ids)
            )
        )
        return {row.destination_id: row.platform_post_id for row in rows}


async def test_publishes_through_the_sandbox(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    accounts = [await add_account(db, clock, tenant.org_id, "x"), await add_account(db, clock, tenant.org_id, "linkedin")]
    post = await post_now(client, tenant, accounts)
    await Publisher(db, clock, Connectors(db, clock), BASE).drain()

    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "published"
    ids = [d["id"] for d in got["destinations"]]
    rows = await outbox(db, ids)
    for dest in got["destinations"]:
        assert dest["status"] == "published" and dest["attempts"] == 1 and dest["error"] is None
        assert dest["platform_post_id"] == rows[dest["id"]]
        assert dest["platform_post_url"] == f"sandbox://{dest['platform']}/{dest['account_id']}/{dest['platform_post_id']}"
        assert dest["published_at"] is not None
    async with db.read() as session:
        last = (await session.execute(select(SocialAccount.last_published_at).where(SocialAccount.id == accounts[0]))).scalar_one()
    assert last == to_datetime(clock.time())


async def test_scheduled_post_waits_for_its_time(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account], scheduled_at=at(clock, 30))
    publisher = Publisher(db, clock, Connectors(db, clock), BASE)
    await publisher.drain()
    assert (await fetch(client, tenant, post["id"]))["status"] == "scheduled"
    clock.advance(31)
    await publisher.drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "published" and got["destinations"][0]["status"] == "published"


async def test_request_carries_override_settings_and_media(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x", name="@acme")
    li = await add_account(db, clock, tenant.org_id, "linkedin")
    media = await add_media(db, clock, tenant.org_id)
    connector = ScriptedConnector(tenant.org_id, lambda r: PublishResult(f"p-{r.platform}", f"https://{r.platform}/1"))
    await post_now(
        client, tenant, [x, li], media_ids=[media],
        platform_content={"x": {"content": "short", "settings": {"reply_settings": "following"}}},
    )
    await Publisher(db, clock, connector, BASE).drain()
    by_platform = {r.platform: r for r in connector.published}
    assert by_platform["x"].content == "short" and by_platform["x"].settings == {"reply_settings": "following"}
    assert by_platform["x"].account_name == "@acme"
    assert by_platform["linkedin"].content == "hello" and by_platform["linkedin"].settings == {}
    assert by_platform["x"].media[0].url == f"{BASE}/media/{media}/original.webp"
    assert by_platform["x"].media[0].width == 1080
    assert connector.looked_up == []  # first attempts do not ask the platform


async def test_transient_failures_back_off_then_give_up(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)

    def busy(request: PublishRequest) -> PublishResult:
        raise TransientPublishError("X is over capacity (503).", retry_after=120)

    connector = ScriptedConnector(tenant.org_id, busy)
    config = PublisherConfig(max_attempts=3, backoff_base_seconds=10)
    publisher = Publisher(db, clock, connector, BASE, config)
    post = await post_now(client, tenant, [account])
    await publisher.drain()
    dest = (await fetch(client, tenant, post["id"]))["destinations"][0]
    assert dest["status"] == "queued" and dest["attempts"] == 1
    assert dest["error"] == "X is over capacity (503)."
    retry_at = dest["next_retry_at"]
    assert retry_at is not None and retry_at >= at(clock, 119.9)[:23]  # retry_after is honoured
    assert (await fetch(client, tenant, post["id"]))["status"] == "publishing"

    await publisher.drain()
    assert len(connector.published) == 1  # not due again yet
    clock.advance(121)
    await publisher.drain()
    assert len(connector.published) == 2
    assert len(connector.looked_up) == 1  # a repeated claim asks the platform first
    clock.advance(3600)
    await publisher.drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "failed"
    assert got["destinations"][0]["status"] == "failed" and got["destinations"][0]["attempts"] == 3
    assert "gave up after 3 attempts" in got["destinations"][0]["error"]
    assert got["destinations"][0]["next_retry_at"] is None


def test_backoff_grows_and_is_capped() -> None:
    config = PublisherConfig(backoff_base_seconds=30, backoff_max_seconds=600)
    assert 15 <= backoff_seconds(config, 1, None) <= 30
    assert 60 <= backoff_seconds(config, 3, None) <= 120
    assert 300 <= backoff_seconds(config, 10, None) <= 600
    assert backoff_seconds(config, 1, 900) == 900


async def test_permanent_failure_and_derived_statuses(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    x = await add_account(db, clock, tenant.org_id, "x")
    li = await add_account(db, clock, tenant.org_id, "linkedin")
    refuse_x = {"on": True}

    def script(request: PublishRequest) -> PublishResult:
        if request.platform == "x" and refuse_x["on"]:
            raise PermanentPublishError("X refused the post: duplicate content.")
        return PublishResult(f"ok-{request.destination_id}")

    publisher = Publisher(db, clock, ScriptedConnector(tenant.org_id, script), BASE)
    post = await post_now(client, tenant, [x, li])
    await publisher.drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "partially_failed"
    by_platform = {d["platform"]: d for d in got["destinations"]}
    assert by_platform["x"]["status"] == "failed" and by_platform["x"]["error"] == "X refused the post: duplicate content."
    assert by_platform["linkedin"]["status"] == "published"

    only_x = await post_now(client, tenant, [x])
    await publisher.drain()
    assert (await fetch(client, tenant, only_x["id"]))["status"] == "failed"

    refuse_x["on"] = False
    retried = assert_envelope(await client.post(f"{POSTS}/{post['id']}/retry", headers=tenant.headers), 200)["data"]
    assert retried["retried_count"] == 1
    await publisher.drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "published"
    assert all(d["status"] == "published" for d in got["destinations"])


async def test_disabled_account_fails_without_calling_the_platform(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    connector = ScriptedConnector(tenant.org_id, lambda r: PublishResult("never"))
    post = await post_now(client, tenant, [account], scheduled_at=at(clock, 10))
    await db.run(lambda conn: conn.execute(update(SocialAccount).where(SocialAccount.id == account).values(is_active=False)))
    clock.advance(11)
    await Publisher(db, clock, connector, BASE).drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "failed" and "disabled" in got["destinations"][0]["error"]
    assert connector.published == []


async def test_a_live_lease_is_not_claimed_again_and_a_lost_lease_records_nothing(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account])
    dest_id = post["destinations"][0]["id"]
    first = Publisher(db, clock, Connectors(db, clock), BASE, PublisherConfig(lease_seconds=30))
    second = Publisher(db, clock, Connectors(db, clock), BASE, PublisherConfig(lease_seconds=30))
    claimed = [c for c in await first.claim() if c.id == dest_id]
    assert len(claimed) == 1 and claimed[0].attempts == 1
    assert (await fetch(client, tenant, post["id"]))["status"] == "publishing"
    assert dest_id not in [c.id for c in await second.claim()]  # the lease holds

    clock.advance(31)  # the first worker stalls past its lease; the second takes over
    taken = [c for c in await second.claim() if c.id == dest_id]
    assert len(taken) == 1 and taken[0].attempts == 2
    from postengine.posts.publisher import CycleReport

    late = CycleReport()
    await first.publish(claimed[0], late)  # sends (idempotent sandbox), but may not record
    assert late.lost == 1 and late.published == 0
    report = CycleReport()
    await second.publish(taken[0], report)
    assert report.published == 1
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "published"
    assert got["destinations"][0]["platform_post_id"] == (await outbox(db, [dest_id]))[dest_id]


async def test_crash_between_send_and_record_is_not_published_twice(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account])
    dest_id = post["destinations"][0]["id"]
    crashed = Publisher(db, clock, Connectors(db, clock), BASE, PublisherConfig(lease_seconds=60))
    claimed = next(c for c in await crashed.claim() if c.id == dest_id)
    sent = await Connectors(db, clock).sandbox.publish(crashed.request_for(claimed))  # then the process dies

    clock.advance(61)
    counting = CountingSandbox(db, clock)
    await Publisher(db, clock, counting, BASE).drain()
    assert dest_id in counting.lookups and dest_id not in counting.publishes
    got = await fetch(client, tenant, post["id"])
    assert got["destinations"][0]["platform_post_id"] == sent.platform_post_id
    assert got["status"] == "published" and got["destinations"][0]["attempts"] == 2
    async with db.read() as session:
        rows = (
            await session.execute(select(func.count()).select_from(SandboxOutboxEntry).where(SandboxOutboxEntry.destination_id == dest_id))
        ).scalar_one()
    assert rows == 1


async def test_concurrent_workers_publish_each_destination_once(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant = await make_tenant()
    accounts = [await add_account(db, clock, tenant.org_id) for _ in range(6)]
    posts = [await post_now(client, tenant, accounts) for _ in range(5)]
    dest_ids = [d["id"] for p in posts for d in p["destinations"]]
    counters = [CountingSandbox(db, clock) for _ in range(4)]
    workers = [Publisher(db, clock, c, BASE, PublisherConfig(batch_size=5, concurrency=4)) for c in counters]
    await asyncio.gather(*(w.drain() for w in workers))
    sends = [d for c in counters for d in c.publishes if d in dest_ids]
    assert sorted(sends) == sorted(dest_ids)  # every destination sent exactly once
    rows = await outbox(db, dest_ids)
    assert len(rows) == len(dest_ids)
    for post in posts:
        got = await fetch(client, tenant, post["id"])
        assert got["status"] == "published"
        assert all(d["platform_post_id"] == rows[d["id"]] for d in got["destinations"])


async def test_deleted_post_is_never_published(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account], scheduled_at=at(clock, 5))
    assert_envelope(await client.delete(f"{POSTS}/{post['id']}", headers=tenant.headers), 200)
    clock.advance(6)
    connector = ScriptedConnector(tenant.org_id, lambda r: PublishResult("never"))
    await Publisher(db, clock, connector, BASE).drain()
    assert connector.published == []
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(Post).where(Post.id == post["id"]))).scalar_one() == 0


async def test_embedded_loop_publishes_an_immediate_post_promptly(settings, make_tenant, db) -> None:
    """`background=True`: the lifespan runs the publisher; a new post wakes it."""
    from postengine.app import create_app
    from postengine.kit.clock import SystemClock

    tenant = await make_tenant()
    clock = SystemClock()
    account = await add_account(db, clock, tenant.org_id)
    app = create_app(settings, clock=clock, background=True)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        post = await post_now(http, tenant, [account])
        for _ in range(200):  # bounded: 10 s
            got = await fetch(http, tenant, post["id"])
            if got["status"] != "publishing":
                break
            await asyncio.sleep(0.05)
    assert got["status"] == "published"
    assert got["destinations"][0]["platform_post_id"].startswith("sbx_")


def test_backoff_bounds_a_platforms_retry_after() -> None:
    """A Retry-After of years (or not a number) must not overflow the next due time."""
    config = PublisherConfig(backoff_base_seconds=30, backoff_max_seconds=600)
    assert backoff_seconds(config, 1, 1e12) == config.max_retry_after_seconds
    assert 15 <= backoff_seconds(config, 1, float("inf")) <= config.max_retry_after_seconds
    assert 15 <= backoff_seconds(config, 1, float("nan")) <= 30


async def test_a_huge_retry_after_is_recorded_not_a_crash(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)

    def far_future(request: PublishRequest) -> PublishResult:
        raise TransientPublishError("X asks to come back much later (429).", retry_after=1e12)

    post = await post_now(client, tenant, [account])
    report = await Publisher(db, clock, ScriptedConnector(tenant.org_id, far_future), BASE).drain()
    assert report.retrying >= 1
    dest = (await fetch(client, tenant, post["id"]))["destinations"][0]
    assert dest["status"] == "queued" and dest["attempts"] == 1
    assert dest["next_retry_at"] is not None and dest["next_retry_at"] <= at(clock, 86_400.5)


async def test_a_retried_destination_is_looked_up_before_it_is_sent_again(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    """`POST /posts/{id}/retry` gives a fresh budget of attempts, but the platform may have posted
    during the attempt that failed (a timeout after it accepted): the retry asks first."""
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account])

    def refuse(request: PublishRequest) -> PublishResult:
        raise PermanentPublishError("X timed out after accepting the post.")

    connector = ScriptedConnector(tenant.org_id, refuse)
    await Publisher(db, clock, connector, BASE).drain()
    assert (await fetch(client, tenant, post["id"]))["status"] == "failed"
    assert connector.looked_up == []  # a first claim sends without asking

    retry = await client.post(f"{POSTS}/{post['id']}/retry", headers=tenant.headers)
    assert assert_envelope(retry, 200)["data"]["retried_count"] == 1
    connector.script = lambda request: PublishResult("x-2")
    await Publisher(db, clock, connector, BASE).drain()
    got = await fetch(client, tenant, post["id"])
    assert got["status"] == "published" and got["destinations"][0]["attempts"] == 1
    assert [r.destination_id for r in connector.looked_up] == [got["destinations"][0]["id"]]


async def test_a_long_platform_post_id_and_url_are_recorded(client: httpx.AsyncClient, make_tenant, db, clock) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id)
    post = await post_now(client, tenant, [account])
    long_id, long_url = "9" * 400, "https://x.example/" + "a" * 1500
    connector = ScriptedConnector(tenant.org_id, lambda request: PublishResult(long_id, long_url))
    await Publisher(db, clock, connector, BASE).drain()
    destination = (await fetch(client, tenant, post["id"]))["destinations"][0]
    assert (destination["status"], destination["platform_post_id"], destination["platform_post_url"]) == (
        "published", long_id, long_url
    )
