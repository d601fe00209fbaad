from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class IdempotencyKey(Base):
    """One `Idempotency-Key` of one organisation: `running` (no `status_code` yet, held by `token`
    until `locked_until`), then the stored response, replayed byte for byte until `expires_at`."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(80))  # "POST /api/v1/posts", for the 422's message
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of endpoint + canonical body
    token: Mapped[str] = mapped_column(String(32))  # which attempt holds the key
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
