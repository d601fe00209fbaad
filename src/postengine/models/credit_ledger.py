from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class CreditLedgerEntry(Base):
    """Append-only: every change of a balance is one row, so `sum(amount) == balance` always.

    `allowance_delta + bonus_delta == amount`: which bucket the change touched, so a refund returns
    credits to the bucket they came from.
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        Index("ix_credit_ledger_org_id_id", "org_id", "id"),
        # At most one reservation and one refund per generation, enforced by the database.
        Index("uq_credit_ledger_generation_kind", "generation_id", "kind", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(Integer)
    allowance_delta: Mapped[int] = mapped_column(Integer)
    bonus_delta: Mapped[int] = mapped_column(Integer)
    generation_id: Mapped[str | None] = mapped_column(String(28), default=None)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
