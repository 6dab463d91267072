"""The programme's calendar: the business day is the date in Brussels, and so are deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")
# The dates the programme can speak of: outside them, date arithmetic (a due date 60 days after a
# project's end) would run off the calendar.
EARLIEST, LATEST = date(1990, 1, 1), date(2199, 12, 31)


def out_of_range(day: date) -> str | None:
    """Why a date cannot be used (None when it can)."""
    if EARLIEST <= day <= LATEST:
        return None
    return f"{day.isoformat()} is out of range; use a date from {EARLIEST} to {LATEST}"


def business_day(instant: datetime) -> date:
    """The date in Brussels at an instant: what "today" means for due dates and guards."""
    return instant.astimezone(BRUSSELS).date()


def start_of(day: date) -> datetime:
    """The first instant of a business day (00:00 Brussels time), in UTC."""
    return datetime.combine(day, time(0, 0), tzinfo=BRUSSELS).astimezone(UTC)


@lru_cache(maxsize=256)
def brussels_time(instant: datetime) -> str:
    """An instant as the programme states its deadlines: Brussels time."""
    return f"{instant.astimezone(BRUSSELS):%Y-%m-%d %H:%M} Brussels time"


def stay_days(start: date, end: date) -> int:
    """Calendar days of a stay abroad, both ends counted."""
    return (end - start).days + 1
