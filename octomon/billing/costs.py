"""What the bill will say (SPEC §12): per UK day and fuel, the kWh, the energy cost (each
half-hour's kWh × the unit rate in force that half-hour), the standing charge and the total,
inc. VAT, in GBP to the penny.

Pure: it takes what octomon keeps in CACHE_DIR -- the prices (:class:`TariffBook`), the
settled consumption (:class:`SettledData`) and the Home Mini's tally (:class:`TallyData`) --
and returns rows; fetching what is lacking is :mod:`octomon.billing.bill`'s.

A day is **settled** when Octopus's settled consumption covers every one of its half-hours
(46, 48 or 50): those are the figures the bill is made of. Otherwise, if the Home Mini stored
anything that day, it is **live**: the tally's kWh, an estimate (what the Home Mini missed is
not in it). Otherwise it is **missing** — never shown as zero. Export (where the account has an
export tariff) is earnings, from settled data only (the Home Mini's export is a register, not
half-hours).

Rounding: the energy cost is summed exactly (Decimal) over the half-hours and rounded to the
penny once per day; the standing charge is rounded to the penny; the total is their sum, so a
row adds up as printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from octomon.billing.settled import SettledData
from octomon.octopus.pricebook import TariffBook
from octomon.store.tally import TallyData
from octomon.uktime import half_hours
from octomon.units import EXPORT as EXPORT
from octomon.units import GAS_IMPORT, Series, decimal
from octomon.units import IMPORT as IMPORT

PENNY = Decimal("0.01")
SETTLED = "settled"
LIVE = "live"
MISSING = "missing"
GAS = GAS_IMPORT  # the gas series, as the costs' callers name it


def pennies(value: Decimal) -> Decimal:
    return value.quantize(PENNY, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class DayCost:
    """One UK day of one fuel. Money in GBP inc. VAT (``*_exc_vat`` without); None = unknown."""

    day: date
    fuel: str
    direction: str
    source: str  # settled | live | missing
    kwh: Decimal | None = None
    energy: Decimal | None = None
    energy_exc_vat: Decimal | None = None
    standing: Decimal | None = None
    standing_exc_vat: Decimal | None = None
    half_hours: int = 48  # in this UK day: 46, 48 or 50
    tariffs: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # what is lacking: "consumption", "prices", "standing charge"

    @property
    def total(self) -> Decimal | None:
        if self.energy is None:
            return None
        if self.direction == "export":
            return self.energy  # earnings: no standing charge
        if self.standing is None:
            return None
        return self.energy + self.standing


@dataclass
class CostReport:
    days: list[DayCost] = field(default_factory=list)

    def series(self) -> list[Series]:
        return list(dict.fromkeys((d.fuel, d.direction) for d in self.days))

    def total(self, series: Series | None = None) -> Decimal:
        """The sum of the known totals (export as earnings, i.e. subtracted, when ``None``)."""
        out = Decimal(0)
        for d in self.days:
            if series is not None and (d.fuel, d.direction) != series:
                continue
            if d.total is None:
                continue
            earned = d.direction == "export" and series is None
            out += -d.total if earned else d.total
        return out

    def complete(self, series: Series | None = None) -> bool:
        return all(
            d.total is not None
            for d in self.days
            if series is None or (d.fuel, d.direction) == series
        )

    @property
    def any_known(self) -> bool:
        return any(d.source != MISSING for d in self.days)


def _consumption(
    day: date, series: Series, settled: SettledData, tally: TallyData
) -> tuple[str, dict[datetime, Decimal]]:
    fuel, direction = series
    slots = half_hours(day)
    if settled.day_settled(day, fuel, direction):
        values = {hh: settled.settled_kwh(hh, fuel, direction) for hh in slots}
        return SETTLED, {hh: decimal(v) for hh, v in values.items() if v is not None}
    if direction == "import":
        live: dict[datetime, Decimal] = {}
        for hh in slots:
            got = tally.half_hour(hh, fuel)
            if got is not None:
                live[hh] = Decimal(got.micro_kwh) / 1_000_000
        if live:
            return LIVE, live
    return MISSING, {}


def day_cost(
    day: date, series: Series, book: TariffBook, settled: SettledData, tally: TallyData
) -> DayCost:
    fuel, direction = series
    slots = half_hours(day)
    source, kwh = _consumption(day, series, settled, tally)
    charge = book.standing_charge(day, fuel, direction) if direction == "import" else None
    standing = pennies(charge.standing_charge) if charge is not None else None
    standing_exc = pennies(charge.standing_charge_exc_vat) if charge is not None else None
    if source == MISSING:
        return DayCost(
            day,
            fuel,
            direction,
            MISSING,
            half_hours=len(slots),
            missing=("consumption",),
            standing=standing,
            standing_exc_vat=standing_exc,
        )
    energy = energy_exc = Decimal(0)
    tariffs: dict[str, None] = {}
    unpriced = 0
    for hh, amount in sorted(kwh.items()):
        price = book.price_at(hh, fuel, direction)
        if price is None:
            unpriced += 1
            continue
        tariffs[price.tariff_code] = None
        energy += amount * price.unit_rate
        energy_exc += amount * price.unit_rate_exc_vat
    if charge is not None:
        tariffs.setdefault(charge.tariff_code, None)
    missing = []
    if unpriced:
        missing.append("prices")
    if direction == "import" and charge is None:
        missing.append("standing charge")
    return DayCost(
        day,
        fuel,
        direction,
        source,
        kwh=sum(kwh.values(), Decimal(0)),
        energy=None if unpriced else pennies(energy),
        energy_exc_vat=None if unpriced else pennies(energy_exc),
        standing=standing,
        standing_exc_vat=standing_exc,
        half_hours=len(slots),
        tariffs=tuple(tariffs),
        missing=tuple(missing),
    )


def costs(
    days: Iterable[date],
    series: Iterable[Series],
    book: TariffBook,
    settled: SettledData,
    tally: TallyData,
) -> CostReport:
    """Every (day, series) pair, days in order, series in the order given."""
    wanted = list(series)
    return CostReport([day_cost(d, s, book, settled, tally) for d in days for s in wanted])
