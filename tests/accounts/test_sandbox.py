"""The sandbox connector publishes each destination once, also when asked several times at once."""

import asyncio

import pytest
from sqlalchemy import func, select

from postengine.accounts.connectors import PermanentPublishError
from postengine.accounts.connectors.registry import Connectors, UnavailableConnector
from postengine.accounts.connectors.sandbox import SandboxConnector
from postengine.models import SandboxOutboxEntry
from tests.accounts.helpers import connect, publish_request


async def outbox_rows(db, destination_id: str) -> list[SandboxOutboxEntry]:
    async with db.read() as session:
        query = select(SandboxOutboxEntry).where(SandboxOutboxEntry.destination_id == destination_id)
        return list((await session.execute(query)).scalars())


async def test_publish_records_one_row_and_repeats_return_it(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock)
    sandbox = SandboxConnector(db, clock)
    request = publish_request(account, content="Launch day")

    assert await sandbox.find_published(request) is None
    first = await sandbox.publish(request)
    assert first.platform_post_id.startswith("sbx_")
    assert first.platform_post_url == f"sandbox://x/{account.id}/{first.platform_post_id}"

    again = await sandbox.publish(request)
    assert again == first
    assert await sandbox.find_published(request) == first

    rows = await outbox_rows(db, request.destination_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row.account_id, row.platform, row.content) == (account.id, "x", "Launch day")
    assert row.media == [
        {
            "id": "med_" + "a" * 24,
            "type": "image",
            "content_type": "image/webp",
            "url": "http://testserver/cdn/media/med_x/original.webp",
        }
    ]
    assert row.settings == {"title": "t"}
    assert row.published_at.timestamp() == pytest.approx(clock.time(), abs=0.001)


async def test_concurrent_publishes_of_one_destination_agree(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock)
    sandbox = SandboxConnector(db, clock)
    request = publish_request(account)

    results = await asyncio.gather(*(sandbox.publish(request) for _ in range(8)))

    assert len({result.platform_post_id for result in results}) == 1
    assert len(await outbox_rows(db, request.destination_id)) == 1
    assert await sandbox.find_published(request) == results[0]


async def test_other_destinations_are_other_posts(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock)
    sandbox = SandboxConnector(db, clock)
    one, two = publish_request(account), publish_request(account)
    first, second = await sandbox.publish(one), await sandbox.publish(two)
    assert first.platform_post_id != second.platform_post_id
    async with db.read() as session:
        count = await session.execute(
            select(func.count()).select_from(SandboxOutboxEntry).where(SandboxOutboxEntry.account_id == account.id)
        )
    assert count.scalar_one() == 2


async def test_registry_routes_sandbox_and_refuses_platforms_without_connector(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    connectors = Connectors(db, clock)
    assert connectors.for_account("x", is_sandbox=True) is connectors.sandbox
    real = await connect(db, tenant.org_id, clock, platform="instagram", name="acme", sandbox=False)
    connector = connectors.for_account(real.platform, is_sandbox=False)
    assert isinstance(connector, UnavailableConnector)
    request = publish_request(real)
    with pytest.raises(PermanentPublishError, match="Publishing to instagram is not available"):
        await connector.publish(request)
    assert await connector.find_published(request) is None
    assert await outbox_rows(db, request.destination_id) == []
