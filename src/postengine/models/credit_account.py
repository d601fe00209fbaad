from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from postengine.models.base import Base, UTCDateTime


class CreditAccount(Base):
    """One row per organisation: the monthly allowance of the current period plus bonus credits.

    `allowance - allowance_used + bonus` is the balance; the CHECK constraints are the last line of
    defence behind the conditional UPDATE that reserves credits.
    """

    __tablename__ = "credit_accounts"
    __table_args__ = (
        CheckConstraint("allowance_used >= 0 AND allowance_used <= allowance", name="allowance_in_range"),
        CheckConstraint("bonus >= 0", name="bonus_non_negative"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    allowance: Mapped[int] = mapped_column(Integer)
    allowance_used: Mapped[int] = mapped_column(Integer, default=0)
    bonus: Mapped[int] = mapped_column(Integer, default=0)
