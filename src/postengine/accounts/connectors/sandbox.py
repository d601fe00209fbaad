"""The sandbox connector: a real destination that "publishes" into the `sandbox_outbox` table.

One row per destination id (the primary key): publishing the same destination twice returns the
first row's post id and writes nothing, so the outbox shows exactly what a platform would have.
Concurrent publishes of one destination agree too: on SQLite writers are serialised (`BEGIN
IMMEDIATE`), so the second finds the first's row; on PostgreSQL the second insert waits for the
first transaction and then violates the primary key, and the row the first one wrote is returned.
`postengine accounts outbox ACCOUNT` lists the outbox.
"""

import secrets
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from postengine.accounts.connectors.base import MediaRef, PublishRequest, PublishResult
from postengine.db import Database
from postengine.kit.clock import Clock, to_datetime
from postengine.models import SandboxOutboxEntry

SANDBOX_URL = "sandbox://{platform}/{account}/{post_id}"


class SandboxConnector:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def publish(self, request: PublishRequest) -> PublishResult:
        now = to_datetime(self.clock.time())
        new_post_id = f"sbx_{secrets.token_hex(8)}"

        def write(conn: Connection) -> str:
            existing = _find(conn, request.destination_id)
            if existing is not None:
                return existing
            conn.execute(
                _INSERT,
                {
                    "destination_id": request.destination_id,
                    "account_id": request.account_id,
                    "platform": request.platform,
                    "platform_post_id": new_post_id,
                    "content": request.content,
                    "media": [_media_json(media) for media in request.media],
                    "settings": request.settings,
                    "published_at": now,
                },
            )
            return new_post_id

        try:
            post_id = await self.db.run(write)
        except IntegrityError:
            # Another worker wrote this destination's row between our read and our insert.
            found = await self.db.run_read(lambda conn: _find(conn, request.destination_id))
            if found is None:
                raise
            post_id = found
        return PublishResult(post_id, _url(request, post_id))

    async def find_published(self, request: PublishRequest) -> PublishResult | None:
        found = await self.db.run_read(lambda conn: _find(conn, request.destination_id))
        return None if found is None else PublishResult(found, _url(request, found))


def _find(conn: Connection, destination_id: str) -> str | None:
    """The platform post id already recorded for this destination, if any."""
    post_id: str | None = conn.execute(_FIND, {"b_destination_id": destination_id}).scalar_one_or_none()
    return post_id


# Built once: the publisher runs these for every destination.
_INSERT = insert(SandboxOutboxEntry)
_FIND = select(SandboxOutboxEntry.platform_post_id).where(
    SandboxOutboxEntry.destination_id == bindparam("b_destination_id")
)


def _url(request: PublishRequest, post_id: str) -> str:
    return SANDBOX_URL.format(platform=request.platform, account=request.account_id, post_id=post_id)


def _media_json(media: MediaRef) -> dict[str, Any]:
    return {"id": media.id, "type": media.type, "content_type": media.content_type, "url": media.url}
