"""Time: one injectable clock so tests can move time instead of sleeping."""

from datetime import UTC, datetime
from time import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds."""
        ...


class SystemClock:
    def time(self) -> float:
        return time()


class FakeClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_datetime(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def iso(value: datetime | None) -> str | None:
    """The API's one timestamp form: ISO 8601, UTC, milliseconds, `Z` (API.md §1.1)."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; everything we store is UTC
        value = value.replace(tzinfo=UTC)
    if value.utcoffset():
        value = value.astimezone(UTC)
    # isoformat is several times faster than strftime; the offset of a UTC value is "+00:00".
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def add_months(value: datetime, months: int) -> datetime:
    """Same day next month, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month0 = value.month - 1 + months
    year, month = value.year + month0 // 12, month0 % 12 + 1
    days_in_month = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return value.replace(year=year, month=month, day=min(value.day, days_in_month))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
