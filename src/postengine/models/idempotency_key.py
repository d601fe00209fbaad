from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class IdempotencyKey(Base):
    """The stored response of one organisation's `Idempotency-Key`, replayed byte for byte until
    `expires_at`. Written in the same transaction as what the request created or charged."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(80))  # "POST /api/v1/posts", for the 422's message
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of endpoint + canonical body
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
