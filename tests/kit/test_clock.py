from datetime import UTC, datetime, timedelta, timezone

import pytest

from postengine.kit.clock import add_months, iso


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, tzinfo=UTC), 1, datetime(2028, 2, 29, 9, tzinfo=UTC)),  # leap year
        (datetime(2026, 12, 15, tzinfo=UTC), 1, datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), 13, datetime(2027, 4, 30, tzinfo=UTC)),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    assert iso(datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)) == "2026-03-02T10:00:00.000Z"
    assert iso(datetime(2026, 3, 2, 10, 0, 0, 987654)) == "2026-03-02T10:00:00.987Z"  # naive = UTC (SQLite)
    plus_two = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 3, 2, 12, 30, 0, 5000, tzinfo=plus_two)) == "2026-03-02T10:30:00.005Z"
    assert iso(None) is None
