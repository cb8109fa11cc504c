"""UK days (GMT/BST) over UTC half-hours: what a person in the UK calls "30 Nov".

Octopus bills by UK day; octomon stores UTC. A UK day is 48 half-hours, 46 on the day the
clocks go forward and 50 on the day they go back. One place for that, used by the settled
data, the reconciliation and the costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
UTC = timezone.utc
HALF_HOUR = timedelta(minutes=30)


def uk_day(at: datetime) -> date:
    """The UK calendar day holding the instant ``at``."""
    return at.astimezone(UK).date()


def uk_midnight(day: date) -> datetime:
    """The UTC instant of ``day``'s UK midnight."""
    return datetime.combine(day, time(0), UK).astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UK day in UTC (23, 24 or 25 hours long)."""
    return uk_midnight(day), uk_midnight(day + timedelta(days=1))


def half_hours(day: date) -> list[datetime]:
    """The UTC starts of a UK day's half-hours: 46, 48 or 50 of them."""
    start, end = day_bounds(day)
    n = int((end - start) / HALF_HOUR)
    return [start + i * HALF_HOUR for i in range(n)]


def days(since: date, until: date) -> Iterator[date]:
    """The UK days ``since`` .. ``until`` inclusive."""
    d = since
    while d <= until:
        yield d
        d += timedelta(days=1)


def local_iso(at: datetime) -> str:
    """``2026-07-01T00:30:00+01:00`` / ``2026-11-30T00:00:00Z``: the REST API's UK form."""
    text = at.astimezone(UK).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
