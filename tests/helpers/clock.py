"""A clock the tests move by hand: octomon takes its clock as an argument (STYLE rule 5)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move time on (``advance(30)``, ``advance(minutes=1)``); returns the new now."""
        self.now += timedelta(seconds=seconds, **kwargs)
        return self.now


def uk_today_at(hour: int, minute: int = 0) -> datetime:
    """Today (the UK day of the wall clock) at ``hour:minute`` UK time, in UTC.

    For a test that also runs octomon in a subprocess (which reads the wall clock): the
    same UK day, so what was kept "today" is still today's, at a fixed time of day.
    """
    from zoneinfo import ZoneInfo

    uk = ZoneInfo("Europe/London")
    today = datetime.now(uk).date()
    return datetime.combine(today, time(hour, minute), uk).astimezone(timezone.utc)
