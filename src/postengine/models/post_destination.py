from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class PostDestination(Base):
    """One (post, account) pair, published on its own (API.md §7.4).

    `status`: `queued` → `published` | `failed`; deleting a post deletes its destinations.
    The publisher claims a due destination by setting `lease_owner`/`lease_until`; an expired lease
    (the worker died) makes it claimable again. A destination with a `platform_post_id` is never
    sent again."""

    __tablename__ = "post_destinations"
    __table_args__ = (
        Index("ix_post_destinations_status_due_at", "status", "due_at"),
        Index("ix_post_destinations_post_id", "post_id"),
        Index("ix_post_destinations_account_id", "account_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID v4; the idempotency key
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("social_accounts.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12))
    # When it may be published: the post's time, or the next retry. None while the post is a draft.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # the retry budget; 0 again on retry
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # ever; never reset
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    platform_post_id: Mapped[str | None] = mapped_column(Text, default=None)
    platform_post_url: Mapped[str | None] = mapped_column(Text, default=None)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
