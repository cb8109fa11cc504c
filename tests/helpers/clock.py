"""A clock the tests move by hand: octomon takes its clock as an argument (STYLE rule 5)."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move time on (``advance(30)``, ``advance(minutes=1)``); returns the new now."""
        self.now += timedelta(seconds=seconds, **kwargs)
        return self.now
