from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class Media(Base):
    __tablename__ = "media"
    """A media item. `status`: `uploading` (upload started, bytes not verified) → `ready` | `failed`."""

    __table_args__ = (Index("ix_media_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(28), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(12))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    storage_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    ai_model: Mapped[str | None] = mapped_column(String(40), default=None)
    ai_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    ai_aspect_ratio: Mapped[str | None] = mapped_column(String(8), default=None)
    thumbnail_key: Mapped[str | None] = mapped_column(String(255), default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)  # seconds, for videos
    # An upload in progress: the signed URL stops working at this time.
    upload_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
