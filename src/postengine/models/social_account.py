from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class SocialAccount(Base):
    """A connected social account (API.md §6). Ids are positive integers, as in the API.

    A `sandbox` account is a real destination that publishes into `sandbox_outbox` instead of a
    social network. `health_status`: `healthy` | `expired` | `unhealthy`."""

    __tablename__ = "social_accounts"
    __table_args__ = (
        UniqueConstraint("org_id", "platform", "account_name", name="uq_social_accounts_org_platform_name"),
        Index("ix_social_accounts_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    account_name: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    avatar_url: Mapped[str | None] = mapped_column(String(500), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    health_status: Mapped[str] = mapped_column(String(16), default="healthy")
    health_message: Mapped[str | None] = mapped_column(Text, default=None)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
