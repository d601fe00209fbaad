"""Connecting accounts and building publish requests in tests (the service, as the CLI calls it)."""

import uuid
from datetime import datetime

from postengine.accounts import service
from postengine.accounts.connectors import MediaRef, PublishRequest
from postengine.accounts.repository import AccountRow
from postengine.db import Database
from postengine.kit.clock import FakeClock, to_datetime


async def connect(
    db: Database,
    org_id: str,
    clock: FakeClock,
    *,
    platform: str = "x",
    name: str = "@acme",
    sandbox: bool = True,
    display_name: str | None = None,
) -> AccountRow:
    return await service.connect_account(
        db,
        org_id=org_id,
        platform=platform,
        account_name=name,
        display_name=display_name,
        sandbox=sandbox,
        now=to_datetime(clock.time()),
    )


def publish_request(account: AccountRow, destination_id: str | None = None, content: str = "Hello") -> PublishRequest:
    return PublishRequest(
        destination_id=destination_id or str(uuid.uuid4()),
        post_id=str(uuid.uuid4()),
        org_id=account.org_id,
        account_id=account.id,
        platform=account.platform,
        account_name=account.account_name,
        content=content,
        media=(
            MediaRef(
                id="med_" + "a" * 24,
                type="image",
                content_type="image/webp",
                url="http://testserver/cdn/media/med_x/original.webp",
                storage_key="media/med_x/original.webp",
                size=10,
                width=1,
                height=1,
            ),
        ),
        settings={"title": "t"},
    )


def at(clock: FakeClock, offset: float = 0.0) -> datetime:
    return to_datetime(clock.time() + offset)
