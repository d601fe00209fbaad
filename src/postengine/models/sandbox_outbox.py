from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class SandboxOutboxEntry(Base):
    """What a sandbox account "published": one row per destination, never two (the destination id
    is the primary key, so a repeated publish finds the first row instead of adding one)."""

    __tablename__ = "sandbox_outbox"

    destination_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("social_accounts.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_post_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    media: Mapped[list[Any]] = mapped_column(JSON, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
