"""Settled consumption against the Home Mini's tally (SPEC §10), per half-hour and UK day.

Pure: it reads a :class:`~octomon.billing.settled.SettledData` and a
:class:`~octomon.store.tally.TallyData` and returns results; the daemon turns them into
points and alerts, ``octomon reconcile`` into a table.

A half-hour is compared only from the moment the tally began (its oldest half-hour): before
octomon ran there is nothing to compare, and "the Home Mini missed everything" would be a
false alarm. A UK day is judged only when it is settled (every one of its 46, 48 or 50
half-hours) and the tally began by its first half-hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from octomon.billing.costs import billed_kwh
from octomon.billing.settled import SettledData
from octomon.store import points
from octomon.store.tally import SLOTS, TallyData
from octomon.uktime import HALF_HOUR, days, half_hours
from octomon.units import ELECTRICITY, decimal

THRESHOLD = 0.95  # below this share of the settled energy or of the readings: a warning


@dataclass(frozen=True)
class HalfHourRecon:
    start: datetime
    settled: float
    home_mini: float
    readings: int

    @property
    def difference(self) -> float:
        return self.settled - self.home_mini

    @property
    def coverage(self) -> float:
        return self.readings / SLOTS

    def line(self) -> str:
        """The ``energy_reconciliation`` point (SPEC §3)."""
        fields: dict[str, points.Number] = {
            "settled": self.settled,
            "home_mini": self.home_mini,
            "difference": round(self.difference, 6),
            "readings": points.Integer(self.readings),
            "coverage": round(self.coverage, 6),
        }
        return points.reconciliation(ELECTRICITY, fields, self.start)


@dataclass(frozen=True)
class DayReport:
    """One UK day. ``settled_kwh`` is None until every half-hour is settled."""

    day: date
    half_hours: int  # 46, 48 or 50
    settled_kwh: float | None
    home_mini_kwh: float
    readings: int
    tallied: bool  # the tally began by the day's first half-hour: the day can be judged
    missing: list[tuple[datetime, datetime, int]] = field(default_factory=list)
    """Spans of half-hours where the Home Mini is missing readings: (start, end, readings)."""
    billed_kwh: float | None = None  # the day's kWh as the bill counts it: what `costs` shows

    @property
    def settled(self) -> bool:
        return self.settled_kwh is not None

    @property
    def expected_readings(self) -> int:
        return self.half_hours * SLOTS

    @property
    def coverage(self) -> float:
        return self.readings / self.expected_readings

    @property
    def difference_kwh(self) -> float | None:
        return None if self.settled_kwh is None else self.settled_kwh - self.home_mini_kwh

    @property
    def difference_pct(self) -> float | None:
        if self.settled_kwh is None or self.difference_kwh is None or self.settled_kwh == 0:
            return None
        return self.difference_kwh / self.settled_kwh * 100

    @property
    def judged(self) -> bool:
        return self.settled and self.tallied

    @property
    def short(self) -> bool:
        """The Home Mini caught less than 95 % of the settled energy or of the readings."""
        if not self.judged or self.settled_kwh is None:
            return False
        return (
            self.home_mini_kwh < THRESHOLD * self.settled_kwh
            or self.readings < THRESHOLD * self.expected_readings
        )


def tally_start(tally: TallyData) -> datetime | None:
    return next((hh.start for hh in tally.half_hours(ELECTRICITY)), None)


def half_hour_recons(
    settled: SettledData, tally: TallyData, since: datetime, until: datetime
) -> Iterator[HalfHourRecon]:
    """Every settled electricity import half-hour in ``[since, until)`` from the tally's start."""
    begun = tally_start(tally)
    if begun is None:
        return
    at = max(since, begun)
    while at < until:
        value = settled.settled_kwh(at)
        if value is not None:
            hh = tally.half_hour(at)
            yield HalfHourRecon(at, value, hh.kwh if hh else 0.0, hh.readings if hh else 0)
        at += HALF_HOUR


def day_report(settled: SettledData, tally: TallyData, day: date) -> DayReport:
    begun = tally_start(tally)
    starts = half_hours(day)
    total: float | None = 0.0
    billed: Decimal | None = Decimal(0)  # each half-hour as Octopus bills it (costs' figure)
    micro, readings = 0, 0
    missing: list[tuple[datetime, datetime, int]] = []
    for start in starts:
        value = settled.settled_kwh(start)
        total = None if value is None or total is None else total + value
        billed = None if value is None or billed is None else billed + billed_kwh(decimal(value))
        hh = tally.half_hour(start)
        got = hh.readings if hh else 0
        micro += hh.micro_kwh if hh else 0
        readings += got
        if begun is not None and start >= begun and got < SLOTS:
            end = start + HALF_HOUR
            if missing and missing[-1][1] == start:
                missing[-1] = (missing[-1][0], end, missing[-1][2] + SLOTS - got)
            else:
                missing.append((start, end, SLOTS - got))
    tallied = begun is not None and begun <= starts[0]
    home = micro / 1_000_000
    shown = float(billed) if billed is not None else None
    return DayReport(day, len(starts), total, home, readings, tallied, missing, shown)


def day_reports(
    settled: SettledData, tally: TallyData, since: date, until: date
) -> list[DayReport]:
    return [day_report(settled, tally, d) for d in days(since, until)]


def last_days(today: date, n: int = 7) -> tuple[date, date]:
    """The ``n`` UK days before ``today``."""
    return today - timedelta(days=n), today - timedelta(days=1)
