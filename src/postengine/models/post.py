from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class Post(Base):
    """A post (API.md §7). `status`: `draft`, `scheduled`, `publishing`, `published`,
    `partially_failed`, `failed`; derived from its destinations once publishing starts."""

    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_org_id_created_at", "org_id", "created_at"),
        Index("ix_posts_org_id_scheduled_for", "org_id", "scheduled_for"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID v4
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(String(28), default=None)
    status: Mapped[str] = mapped_column(String(20))
    content: Mapped[str | None] = mapped_column(Text, default=None)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    platform_content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PostMedia(Base):
    """The media of a post, in order. Indexed by media for the `media_in_use` rule."""

    __tablename__ = "post_media"
    __table_args__ = (Index("ix_post_media_media_id", "media_id"),)

    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
