from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class Generation(Base):
    """One paid generation: `reserved` → `completed` | `failed` (refunded)."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_org_id_created_at", "org_id", "created_at"),
        Index("ix_generations_status_deadline_at", "status", "deadline_at"),
    )

    id: Mapped[str] = mapped_column(String(28), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(String(28))
    model: Mapped[str] = mapped_column(String(40))
    aspect_ratio: Mapped[str] = mapped_column(String(8))
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    credits: Mapped[int] = mapped_column(Integer)
    allowance_part: Mapped[int] = mapped_column(Integer)
    bonus_part: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    media_id: Mapped[str | None] = mapped_column(String(28), default=None)
    provider: Mapped[str | None] = mapped_column(String(40), default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
