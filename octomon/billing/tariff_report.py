"""What ``octomon tariff`` shows (SPEC §9), from ``tariffs.json`` or, when that is not
today's, from one fetch within the shared budget.

The tariffs in force, today's standing charges, the current half-hour's unit rate, today's
and tomorrow's half-hourly import rates (UK days), and the cheapest contiguous 1/2/3-hour
windows still ahead. Results only; ``cli/tariff.py`` renders them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octomon.billing.tariffs import (
    PUBLISH,
    Cached,
    TariffCache,
    Tariffs,
    pricing,
    tomorrow_known,
)
from octomon.octopus.pricebook import (
    Price,
    Series,
    TariffBook,
    Window,
    cheapest_window,
    half_hour_floor,
)
from octomon.octopus.tariffs import product_code
from octomon.readings import format_time
from octomon.uktime import HALF_HOUR, UK, uk_day, uk_midnight
from octomon.units import IMPORT

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger(__name__)

WINDOW_HOURS = (1, 2, 3)


@dataclass(frozen=True)
class InForce:
    fuel: str
    direction: str
    tariff_code: str
    product_code: str
    since: datetime
    meter_point: str


@dataclass(frozen=True)
class Rate:
    start: datetime
    price: Price

    @property
    def end(self) -> datetime:
        return self.start + HALF_HOUR


@dataclass(frozen=True)
class Standing:
    fuel: str
    direction: str
    day: date
    tariff_code: str
    standing_charge: Decimal
    standing_charge_exc_vat: Decimal


@dataclass
class TariffReport:
    now: datetime
    fetched_at: datetime
    api_calls: int  # requests this run made (0: answered from tariffs.json)
    tariffs: list[InForce] = field(default_factory=list)
    standing: list[Standing] = field(default_factory=list)
    current: dict[Series, Rate] = field(default_factory=dict)
    today: list[Rate] = field(default_factory=list)  # electricity import, UK day
    tomorrow: list[Rate] = field(default_factory=list)
    cheapest: dict[int, Window | None] = field(default_factory=dict)
    stored: int = 0  # points written to InfluxDB (--since)
    unpriced: list[str] = field(default_factory=list)  # meter points whose rates can't be had

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object (keys documented in the README); money in GBP."""

        def rate(r: Rate, series: Series = IMPORT) -> dict[str, Any]:
            return {
                "fuel": series[0],
                "direction": series[1],
                "start": format_time(r.start),
                "end": format_time(r.end),
                "tariff_code": r.price.tariff_code,
                "unit_rate": float(r.price.unit_rate),
                "unit_rate_exc_vat": float(r.price.unit_rate_exc_vat),
            }

        current = self.current.get(IMPORT)
        return {
            "now": format_time(self.now),
            "fetched_at": format_time(self.fetched_at),
            "api_calls": self.api_calls,
            "tariffs": [
                {
                    "fuel": t.fuel,
                    "direction": t.direction,
                    "tariff_code": t.tariff_code,
                    "product_code": t.product_code,
                    "since": format_time(t.since),
                    "meter_point": t.meter_point,
                }
                for t in self.tariffs
            ],
            "standing_charges": [
                {
                    "fuel": s.fuel,
                    "direction": s.direction,
                    "day": s.day.isoformat(),
                    "tariff_code": s.tariff_code,
                    "standing_charge": float(s.standing_charge),
                    "standing_charge_exc_vat": float(s.standing_charge_exc_vat),
                }
                for s in self.standing
            ],
            "current_rate": rate(current) if current else None,
            "current_rates": [rate(r, s) for s, r in self.current.items()],
            "rates": {
                "today": [rate(r) for r in self.today],
                "tomorrow": [rate(r) for r in self.tomorrow],
            },
            "cheapest": {
                f"{h}h": (
                    {
                        "start": format_time(w.start),
                        "end": format_time(w.end),
                        "average_unit_rate": float(w.average),
                    }
                    if w is not None
                    else None
                )
                for h, w in self.cheapest.items()
            },
            "stored": self.stored,
            "unpriced": self.unpriced,
        }


def summarise(book: TariffBook, now: datetime, fetched_at: datetime, calls: int) -> TariffReport:
    report = TariffReport(now, fetched_at, calls)
    today = uk_day(now)
    for point in book.points:
        agreement = point.agreement_at(now)
        if agreement is None:
            continue
        report.tariffs.append(
            InForce(
                point.fuel,
                point.direction,
                agreement.tariff_code,
                product_code(agreement.tariff_code),
                agreement.valid_from,
                point.identifier,
            )
        )
        charge = book.standing_charge(today, *point.series)
        if charge is not None:
            report.standing.append(Standing(point.fuel, point.direction, today, *charge))
        price = book.price_at(now, *point.series)
        if price is not None:
            report.current[point.series] = Rate(half_hour_floor(now), price)
    for day, rows in ((today, report.today), (today + timedelta(days=1), report.tomorrow)):
        t, end = uk_midnight(day), uk_midnight(day + timedelta(days=1))
        while t < end:
            price = book.price_at(t, *IMPORT)
            if price is not None:
                rows.append(Rate(t, price))
            t += HALF_HOUR
    report.cheapest = {h: cheapest_window(book, now, h) for h in WINDOW_HOURS}
    return report


def is_current(cached: Cached, now: datetime) -> bool:
    """``tariffs.json`` answers without a call: fetched today (UK), and after 16:05 UK if
    it is past that now and tomorrow's prices were not in it yet."""
    if uk_day(cached.fetched_at) != uk_day(now) or not cached.points:
        return False
    publish = datetime.combine(uk_day(now), PUBLISH, UK)
    if now < publish or cached.fetched_at >= publish:
        return True
    return tomorrow_known(cached.book, now, cached.unpriced)


def report(settings: Settings, now: datetime, since: date | None = None) -> TariffReport:
    """The report; fetching (within the shared ledger) only what ``tariffs.json`` lacks.

    ``since``: fetch from that UK day and store it in InfluxDB (the caller checked that
    InfluxDB is configured); the daemon's tariff cursor is left alone.
    """
    cache_dir = Path(settings.cache_dir)
    cached = TariffCache(cache_dir, pricing(settings)).load()
    if since is None and cached is not None and is_current(cached, now):
        answer = summarise(cached.book, now, cached.fetched_at, 0)
        answer.unpriced = list(cached.unpriced.values())
        return answer
    from octomon.wiring import Wiring

    assert settings.octopus_api_key and settings.octopus_account_number
    wiring = Wiring(settings, clock=lambda: now)
    # Stored only from --since on (the caller checked that InfluxDB is configured).
    sink = wiring.sink if since is not None else None
    try:
        tariffs = Tariffs.from_settings(settings, wiring.rest, state=wiring.state, sink=sink)
        start = datetime.combine(since, time(0), UK) if since is not None else None
        run = tariffs.refresh(now, since=start, store=False)
    finally:
        wiring.close()
    fresh = tariffs.cached()
    book = fresh.book if fresh is not None else TariffBook()
    result = summarise(book, now, now, run.calls)
    result.stored = run.points if run.stored else 0
    result.unpriced = list(run.unpriced)
    return result
