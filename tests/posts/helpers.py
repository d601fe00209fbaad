"""Rows the posts tests build on: social accounts and media items, written straight to the tables
(their own APIs are tested in their own domains)."""

import secrets
from typing import Any

from sqlalchemy import insert, select

from postengine.db import Database
from postengine.kit.clock import Clock, to_datetime
from postengine.models import Media, SocialAccount


async def add_account(
    db: Database,
    clock: Clock,
    org_id: str,
    platform: str = "x",
    *,
    name: str | None = None,
    sandbox: bool = True,
    active: bool = True,
) -> int:
    now = to_datetime(clock.time())
    handle = name or f"@acct_{secrets.token_hex(4)}"

    def write(conn: Any) -> int:
        conn.execute(
            insert(SocialAccount).values(
                org_id=org_id,
                platform=platform,
                account_name=handle,
                display_name=handle,
                is_active=active,
                is_sandbox=sandbox,
                health_status="healthy",
                created_at=now,
            )
        )
        return int(
            conn.execute(
                select(SocialAccount.id).where(
                    SocialAccount.org_id == org_id,
                    SocialAccount.platform == platform,
                    SocialAccount.account_name == handle,
                )
            ).scalar_one()
        )

    return await db.run(write)


async def add_media(
    db: Database,
    clock: Clock,
    org_id: str,
    *,
    type: str = "image",
    status: str = "ready",
    size: int = 100_000,
    width: int | None = 1080,
    height: int | None = 1080,
) -> str:
    media_id = f"med_{secrets.token_hex(12)}"
    ext = {"image": "webp", "video": "mp4", "document": "pdf"}[type]
    content_type = {"image": "image/webp", "video": "video/mp4", "document": "application/pdf"}[type]
    if type != "image":
        width = height = None if type == "document" else width

    def write(conn: Any) -> None:
        conn.execute(
            insert(Media).values(
                id=media_id,
                org_id=org_id,
                type=type,
                status=status,
                source="upload",
                filename=f"file.{ext}",
                content_type=content_type,
                size=size,
                width=width,
                height=height,
                storage_key=f"media/{media_id}/original.{ext}",
                created_at=to_datetime(clock.time()),
            )
        )

    await db.run(write)
    return media_id
