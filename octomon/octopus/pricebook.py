"""The prices of an account, per half-hour and per UK day: the result of pricing (SPEC §9).

:class:`TariffBook` answers ``price_at(half_hour_start, fuel, direction)`` and
``standing_charge(uk_day, fuel, direction)`` -- for the ``energy_tariff`` points, ``octomon
tariff``, and the costs of settled consumption. It is what the published rates
(:mod:`octomon.octopus.published`, kept in ``CACHE_DIR/tariffs.json``) say for one payment
method and night window. It also holds the meter points and agreements it was priced for.
Times are UTC; UK days follow Europe/London (23- and 25-hour days at the clock changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar

from octomon.readings import format_time, parse_instant
from octomon.uktime import HALF_HOUR as HALF_HOUR  # UK days live in octomon.uktime;
from octomon.uktime import UK as UK  # re-exported for the tariffs' modules
from octomon.uktime import UTC as UTC
from octomon.uktime import uk_day as uk_day
from octomon.uktime import uk_midnight as uk_midnight
from octomon.units import ELECTRICITY, IMPORT
from octomon.units import Series as Series  # (fuel, direction), named in octomon.units


class Price(NamedTuple):
    """One half-hour's unit rate, GBP/kWh."""

    tariff_code: str
    unit_rate: Decimal  # inc. VAT
    unit_rate_exc_vat: Decimal


class Charge(NamedTuple):
    """One UK day's standing charge, GBP/day."""

    tariff_code: str
    standing_charge: Decimal  # inc. VAT
    standing_charge_exc_vat: Decimal


# --- times ---------------------------------------------------------------------------------


def half_hour_floor(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=t.minute - t.minute % 30, second=0, microsecond=0)


def half_hours(start: datetime, end: datetime) -> Iterator[datetime]:
    t = half_hour_floor(start)
    if t < start:
        t += HALF_HOUR
    while t < end:
        yield t
        t += HALF_HOUR


def midnights(start: datetime, end: datetime) -> Iterator[tuple[date, datetime]]:
    """(UK day, its UTC start) for every UK midnight in [start, end)."""
    day = uk_day(start)
    while True:
        at = uk_midnight(day)
        if at >= end:
            return
        if at >= start:
            yield day, at
        day += timedelta(days=1)


def in_window(t: datetime, window: tuple[int, int]) -> bool:
    """Is ``t`` (UTC) inside the (start, end) minutes-after-UTC-midnight window (may wrap)?"""
    m = t.hour * 60 + t.minute
    lo, hi = window
    return lo <= m < hi if lo < hi else (m >= lo or m < hi)


# --- meter points and agreements ----------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    tariff_code: str
    valid_from: datetime
    valid_to: datetime | None  # None: open-ended

    def covers(self, t: datetime) -> bool:
        return self.valid_from <= t and (self.valid_to is None or t < self.valid_to)


@dataclass(frozen=True)
class MeterPoint:
    fuel: str  # electricity | gas
    direction: str  # import | export
    identifier: str  # MPAN or MPRN
    serials: tuple[str, ...]
    agreements: tuple[Agreement, ...]

    @property
    def series(self) -> Series:
        return (self.fuel, self.direction)

    def agreement_at(self, t: datetime) -> Agreement | None:
        """The agreement in force at ``t`` (the latest start wins if two overlap)."""
        found = [a for a in self.agreements if a.covers(t)]
        return max(found, key=lambda a: a.valid_from) if found else None


# --- the books: per half-hour and per UK day, per (fuel, direction) ----------------------------

P = TypeVar("P")  # what a half-hour holds
C = TypeVar("C")  # what a UK day holds
B = TypeVar("B", bound="Book[Any, Any]")


@dataclass
class Book(Generic[P, C]):
    """What is known per half-hour and per UK day, per (fuel, direction), and the meter
    points it is for: priced (:class:`TariffBook`) or as published
    (:class:`~octomon.octopus.published.Published`)."""

    points: list[MeterPoint] = field(default_factory=list)
    prices: dict[Series, dict[datetime, P]] = field(default_factory=dict)
    charges: dict[Series, dict[date, C]] = field(default_factory=dict)

    def covered_until(self, series: Series) -> datetime | None:
        """The end of the last known half-hour of ``series``."""
        known = self.prices.get(series)
        return max(known) + HALF_HOUR if known else None

    def merge(self, other: Book[P, C]) -> None:
        """Add ``other``'s half-hours and days (newer answers win); its meter points if any."""
        if other.points:
            self.points = list(other.points)
        for series, prices in other.prices.items():
            self.prices.setdefault(series, {}).update(prices)
        for series, charges in other.charges.items():
            self.charges.setdefault(series, {}).update(charges)

    def count(self) -> int:
        return sum(map(len, self.prices.values())) + sum(map(len, self.charges.values()))

    def since(self: B, start: datetime) -> B:
        """A copy without the half-hours before ``start`` (and the days before its UK day)."""
        first = uk_day(start)
        return type(self)(
            list(self.points),
            {s: {t: p for t, p in v.items() if t >= start} for s, v in self.prices.items()},
            {s: {d: c for d, c in v.items() if d >= first} for s, v in self.charges.items()},
        )


@dataclass
class TariffBook(Book[Price, Charge]):
    """Prices per half-hour and standing charges per UK day, per (fuel, direction): the
    published rates resolved for one payment method and night window."""

    def price_at(
        self, half_hour_start: datetime, fuel: str = ELECTRICITY, direction: str = "import"
    ) -> Price | None:
        """The unit rate of the half-hour holding ``half_hour_start``; None if unknown."""
        return self.prices.get((fuel, direction), {}).get(half_hour_floor(half_hour_start))

    def standing_charge(
        self, day: date, fuel: str = ELECTRICITY, direction: str = "import"
    ) -> Charge | None:
        return self.charges.get((fuel, direction), {}).get(day)


# --- meter points in CACHE_DIR/tariffs.json ----------------------------------------------------


def points_to_obj(points: list[MeterPoint]) -> list[dict[str, Any]]:
    return [
        {
            "fuel": p.fuel,
            "direction": p.direction,
            "id": p.identifier,
            "serials": list(p.serials),
            "agreements": [
                [a.tariff_code, format_time(a.valid_from), _time_or_none(a.valid_to)]
                for a in p.agreements
            ],
        }
        for p in points
    ]


def points_from_obj(obj: list[Any]) -> list[MeterPoint]:
    """The inverse of :func:`points_to_obj`; ``ValueError``/``KeyError``/``TypeError`` if
    damaged."""
    return [
        MeterPoint(
            p["fuel"],
            p["direction"],
            p["id"],
            tuple(p["serials"]),
            tuple(
                Agreement(code, parse_instant(a), parse_instant(b) if b else None)
                for code, a, b in p["agreements"]
            ),
        )
        for p in obj
    ]


def _time_or_none(t: datetime | None) -> str | None:
    return format_time(t) if t is not None else None


class Window(NamedTuple):
    start: datetime
    end: datetime
    average: Decimal  # GBP/kWh inc. VAT, the mean of its half-hours


def cheapest_window(
    book: TariffBook, now: datetime, hours: int, series: Series = IMPORT
) -> Window | None:
    """The cheapest contiguous run of ``hours`` known half-hours not yet begun (the current
    half-hour counts if ``now`` is at its start); None if the prices ahead are too few."""
    prices = book.prices.get(series, {})
    ahead = sorted(t for t in prices if t >= now or t == half_hour_floor(now) == now)
    n = hours * 2
    best: Window | None = None
    for i in range(len(ahead) - n + 1):
        run = ahead[i : i + n]
        if run[-1] - run[0] != HALF_HOUR * (n - 1):
            continue  # a hole in the published prices
        average = sum((prices[t].unit_rate for t in run), Decimal(0)) / n
        if best is None or average < best.average:
            best = Window(run[0], run[-1] + HALF_HOUR, average)
    return best
