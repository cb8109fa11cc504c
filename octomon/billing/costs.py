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

Octopus's billing rules: each half-hour's kWh is rounded to 0.01 kWh, half to even, before it
is multiplied by the unit rate in force that half-hour. A **bill line** is one charge over the
range — the energy of one tariff and fuel, or a standing charge as "N days @ p/day" — summed
exactly and rounded to the penny once; the range's total is the sum of its lines, as on the
bill. Each day's row is rounded on its own (energy and standing charge to the penny, the
total their sum, so a row adds up as printed): the rows can differ from the total by a few
pence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from octomon.billing.settled import SettledData
from octomon.octopus.pricebook import Charge, TariffBook
from octomon.store.tally import TallyData
from octomon.uktime import half_hours
from octomon.units import EXPORT as EXPORT
from octomon.units import GAS_IMPORT, Series, decimal
from octomon.units import IMPORT as IMPORT

PENNY = Decimal("0.01")
KWH_STEP = Decimal("0.01")  # Octopus bills each half-hour's kWh to this, half to even
SETTLED = "settled"
LIVE = "live"
MISSING = "missing"
GAS = GAS_IMPORT  # the gas series, as the costs' callers name it


def pennies(value: Decimal) -> Decimal:
    return value.quantize(PENNY, rounding=ROUND_HALF_UP)


def billed_kwh(kwh: Decimal) -> Decimal:
    """A half-hour's kWh as Octopus bills it: to 0.01 kWh, half to even."""
    return kwh.quantize(KWH_STEP, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Energy:
    """A day's energy under one tariff: billed kWh and the exact (unrounded) cost."""

    tariff_code: str
    kwh: Decimal
    amount: Decimal  # GBP inc. VAT, exact
    amount_exc_vat: Decimal
    rates: frozenset[Decimal] = frozenset()  # the unit rates met (GBP/kWh inc. VAT)


@dataclass(frozen=True)
class BillLine:
    """One line of the bill over a range: energy of one tariff and fuel, or a standing charge
    ("N days @ p/day"). ``quantity`` is kWh or days; ``amount`` is rounded once."""

    kind: str  # "energy" | "standing charge"
    fuel: str
    direction: str
    tariff_code: str
    quantity: Decimal
    amount: Decimal  # GBP inc. VAT, to the penny
    amount_exc_vat: Decimal
    rate: Decimal | None = None  # GBP per kWh or per day inc. VAT, when one rate applies

    @property
    def signed(self) -> Decimal:
        """What it adds to the range's total: export earnings are subtracted."""
        return -self.amount if self.direction == "export" else self.amount

    @property
    def signed_exc_vat(self) -> Decimal:
        return -self.amount_exc_vat if self.direction == "export" else self.amount_exc_vat

    def describe(self) -> str:
        """The line as a bill words it."""
        if self.kind == "standing charge":
            days = int(self.quantity)
            each = f" @ {_pence(self.rate)}p/day" if self.rate is not None else ""
            return f"{self.tariff_code} standing charge: {days} day{'s' * (days != 1)}{each}"
        each = f" @ {_pence(self.rate)}p/kWh" if self.rate is not None else ""
        label = "export" if self.direction == "export" else self.fuel
        return f"{self.tariff_code} {label}: {self.quantity:,.2f} kWh{each}"


def _pence(gbp: Decimal | None) -> str:
    assert gbp is not None
    text = f"{gbp * 100:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


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
    covered: int = 0  # half-hours with consumption (a live day may have fewer than half_hours)
    energies: tuple[Energy, ...] = ()  # per tariff, exact: what the bill lines are made of
    charge: Charge | None = None  # the day's standing charge, exact

    @property
    def partial(self) -> bool:
        """A live day whose tally does not cover every half-hour."""
        return self.source == LIVE and self.covered < self.half_hours

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

    def lines(self, series: Series | None = None) -> list[BillLine]:
        """The bill's lines over the range, from the days whose total is known: per series,
        the energy of each tariff, then each standing charge (tariff and rate)."""
        energy: dict[tuple[str, str, str], list[Energy]] = {}
        standing: dict[tuple[str, str, str, Decimal, Decimal], int] = {}
        for d in self.days:
            if d.total is None or (series is not None and (d.fuel, d.direction) != series):
                continue
            for e in d.energies:
                energy.setdefault((d.fuel, d.direction, e.tariff_code), []).append(e)
            c = d.charge
            if c is not None and d.direction == "import":
                key = (
                    d.fuel,
                    d.direction,
                    c.tariff_code,
                    c.standing_charge,
                    c.standing_charge_exc_vat,
                )
                standing[key] = standing.get(key, 0) + 1
        out: list[BillLine] = []
        for (fuel, direction, code), parts in energy.items():
            rates = frozenset().union(*(e.rates for e in parts))
            out.append(
                BillLine(
                    "energy",
                    fuel,
                    direction,
                    code,
                    sum((e.kwh for e in parts), Decimal(0)),
                    pennies(sum((e.amount for e in parts), Decimal(0))),
                    pennies(sum((e.amount_exc_vat for e in parts), Decimal(0))),
                    next(iter(rates)) if len(rates) == 1 else None,
                )
            )
        for (fuel, direction, code, rate, rate_exc), n in standing.items():
            out.append(
                BillLine(
                    "standing charge",
                    fuel,
                    direction,
                    code,
                    Decimal(n),
                    pennies(rate * n),
                    pennies(rate_exc * n),
                    rate,
                )
            )
        order = {s: i for i, s in enumerate(self.series())}
        out.sort(key=lambda x: (order.get((x.fuel, x.direction), 99), x.kind != "energy"))
        return out

    def total(self, series: Series | None = None, *, exc_vat: bool = False) -> Decimal:
        """The sum of the bill's lines (export earnings subtracted when ``series`` is None)."""
        lines = self.lines(series)
        if series is not None:
            return sum((x.amount_exc_vat if exc_vat else x.amount for x in lines), Decimal(0))
        return sum((x.signed_exc_vat if exc_vat else x.signed for x in lines), Decimal(0))

    def rows_total(self) -> Decimal:
        """The sum of the rows as printed (each rounded on its own); export subtracted."""
        out = Decimal(0)
        for d in self.days:
            if d.total is not None:
                out += -d.total if d.direction == "export" else d.total
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
        return SETTLED, {hh: billed_kwh(decimal(v)) for hh, v in values.items() if v is not None}
    if direction == "import":
        live: dict[datetime, Decimal] = {}
        for hh in slots:
            got = tally.half_hour(hh, fuel)
            if got is not None:
                live[hh] = billed_kwh(Decimal(got.micro_kwh) / 1_000_000)
        if live:
            return LIVE, live
    return MISSING, {}


def day_cost(
    day: date, series: Series, book: TariffBook, settled: SettledData, tally: TallyData
) -> DayCost:
    fuel, direction = series
    slots = half_hours(day)
    points = [p for p in book.points if p.series == series]
    if points and not any(p.agreement_at(hh) for p in points for hh in (slots[0], slots[-1])):
        # no tariff of the account in force that day (before it was yours): not a cost
        return DayCost(day, fuel, direction, MISSING, half_hours=len(slots), missing=("tariff",))
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
    per_tariff: dict[str, tuple[Decimal, Decimal, Decimal, set[Decimal]]] = {}
    unpriced = 0
    for hh, amount in sorted(kwh.items()):
        price = book.price_at(hh, fuel, direction)
        if price is None:
            unpriced += 1
            continue
        tariffs[price.tariff_code] = None
        cost, cost_exc = amount * price.unit_rate, amount * price.unit_rate_exc_vat
        energy += cost
        energy_exc += cost_exc
        k, a, x, rates = per_tariff.get(
            price.tariff_code, (Decimal(0), Decimal(0), Decimal(0), set())
        )
        rates.add(price.unit_rate)
        per_tariff[price.tariff_code] = (k + amount, a + cost, x + cost_exc, rates)
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
        covered=len(kwh),
        energies=tuple(
            Energy(code, k, a, x, frozenset(r)) for code, (k, a, x, r) in per_tariff.items()
        ),
        charge=charge,
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
