"""Date-times from untrusted input (mail headers, cursors, query bounds), made safe to store and to query.

Python accepts UTC offsets up to ±23:59 and years 1–9999, but PostgreSQL refuses offsets past
±15:59 and converting 9999-12-31 -01:00 to UTC overflows. Everything that reaches a query or an
INSERT goes through as_utc first, so a hostile value is refused here instead of failing in SQL.
"""

from datetime import datetime, timedelta, timezone

# Real time zones span UTC-12 to UTC+14.
MAX_UTC_OFFSET = timedelta(hours=14)
MIN_YEAR = 1
# Not 9999: a value on the last day can still overflow when shifted to a local time for display.
MAX_YEAR = 9998


def as_utc(value: datetime, *, min_year: int = MIN_YEAR, max_year: int = MAX_YEAR) -> datetime:
    """`value` converted to UTC (a naive value is taken as UTC already).

    Raises ValueError, with a sentence fit to show, when the offset is beyond ±14 hours or the
    year in UTC falls outside min_year–max_year.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    offset = value.utcoffset()
    if offset is None or abs(offset) > MAX_UTC_OFFSET:
        raise ValueError("the UTC offset is beyond ±14 hours")
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"the year is outside {min_year}–{max_year}") from None
    if not min_year <= value.year <= max_year:
        raise ValueError(f"the year is outside {min_year}–{max_year}")
    return value
