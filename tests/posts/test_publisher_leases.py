"""The lease covers every send. A claimed batch larger than the publisher's concurrency waits for
free slots; a destination whose lease ran out meanwhile may belong to another worker by now, so it is
not sent; one whose lease is running short is renewed before it is sent."""

from collections.abc import Awaitable, Callable

import httpx

from postengine.accounts.connectors import PublishRequest, PublishResult
from postengine.posts.publisher import CycleReport, Publisher, PublisherConfig
from tests.posts.helpers import add_account
from tests.posts.test_publisher import BASE, fetch, post_now


class SlowPlatform:
    """An idempotent platform (it remembers what it posted, by destination id) whose sends take
    time on the fake clock; `during[n]` runs inside the n-th send (1-based) of this organisation."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.sent: list[str] = []
        self.during: dict[int, Callable[[], Awaitable[None]]] = {}

    def for_account(self, platform: str, is_sandbox: bool) -> "SlowPlatform":
        return self

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        return PublishResult(f"p-{request.destination_id}") if request.destination_id in self.sent else None

    async def publish(self, request: PublishRequest) -> PublishResult:
        if request.org_id != self.org_id:
            return PublishResult(f"other-{request.destination_id}")
        self.sent.append(request.destination_id)
        if (hook := self.during.get(len(self.sent))) is not None:
            await hook()
        return PublishResult(f"p-{request.destination_id}")


async def setup(client: httpx.AsyncClient, make_tenant, db, clock) -> tuple:
    """A post due now to two accounts, and two publishers sharing one slow platform: batches of
    two, one send at a time, 10 s leases."""
    tenant = await make_tenant()
    accounts = [await add_account(db, clock, tenant.org_id) for _ in range(2)]
    post = await post_now(client, tenant, accounts)
    platform = SlowPlatform(tenant.org_id)
    config = PublisherConfig(batch_size=2, concurrency=1, lease_seconds=10)
    return (tenant, post, platform, Publisher(db, clock, platform, BASE, config),
            Publisher(db, clock, platform, BASE, config))


async def test_a_destination_whose_lease_ran_out_in_the_slot_queue_is_not_sent(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant, post, platform, first, second = await setup(client, make_tenant, db, clock)
    taken_over = []

    async def slow_send_then_takeover() -> None:
        clock.advance(11)  # the first send outlasts the batch's lease; another worker claims it all
        taken_over.extend(c for c in await second.claim() if c.post_id == post["id"])

    platform.during[1] = slow_send_then_takeover
    report = await first.run_once()
    assert len(taken_over) == 2 and report.lost == 2 and report.published == 0
    assert len(platform.sent) == 1  # the second destination, no longer ours, was not sent

    late = CycleReport()
    for item in taken_over:
        await second.publish(item, late)
    assert late.published == 2
    assert sorted(platform.sent) == sorted(d["id"] for d in post["destinations"])  # each sent once
    assert (await fetch(client, tenant, post["id"]))["status"] == "published"


async def test_a_lease_running_short_is_renewed_before_sending(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    tenant, post, platform, first, second = await setup(client, make_tenant, db, clock)
    stolen = []

    async def slow_send() -> None:
        clock.advance(9)  # the next send starts with 1 s of the batch's lease left

    async def past_the_first_lease() -> None:
        clock.advance(2)
        stolen.extend(c for c in await second.claim() if c.post_id == post["id"])

    platform.during[1] = slow_send
    platform.during[2] = past_the_first_lease
    report = await first.run_once()
    assert stolen == []  # renewed before the second send: nothing could be taken over
    assert report.published == 2 and report.lost == 0
    assert sorted(platform.sent) == sorted(d["id"] for d in post["destinations"])
    assert (await fetch(client, tenant, post["id"]))["status"] == "published"
