"""The bill computed by hand from the simulator's own REST answers (SPEC §12), independently of
octomon's parsing: the raw JSON read with urllib, every figure a :class:`~decimal.Decimal`.

Octopus's billing rules (OCTOPUS_REST.md §4): each half-hour's consumption is turned into kWh
(gas in m³: × the calorific value × 1.02264 ÷ 3.6; SMETS1 gas is kWh already), rounded to
0.01 kWh half to even, and multiplied by the unit rate in force that half-hour (the
DIRECT_DEBIT row, or a row without a payment method; an ``E-2R-`` tariff's night row inside
the ``ECONOMY7_NIGHT`` window, its day row outside). A bill line is one charge over the range:
the energy of one tariff and fuel summed exactly and rounded to the penny once, or a standing
charge as N days × p/day rounded once (the charge in force at each UK midnight, of the tariff
in force then). The total is the sum of the lines, export earnings subtracted; each day's row
is rounded on its own (energy and standing charge to the penny, the total their sum).

Money is rounded to the penny half up, as octomon does (SPEC §12 says "to the penny" and
names no rounding mode; OCTOPUS_REST.md §4 leaves it unconfirmed too).

A meter point listing several serials (a meter exchange): each half-hour counted once, the
smart meter's figure where both serials report (SPEC §10). A meter point whose rates cannot
be had (a code the products API does not know, a register layout other than ``E-1R-``,
``E-2R-``, ``G-1R-``) is not priced: :attr:`HandAccount.unpriceable` names it.

:meth:`HandAccount.priced` reads a whole range once (one consumption request per serial, the
rates once per tariff); :meth:`HandAccount.bill` then gives the bill of any days within it.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

UTC = timezone.utc
UK = ZoneInfo("Europe/London")
PENNY = Decimal("0.01")
HUNDREDTH_KWH = Decimal("0.01")
VOLUME_CORRECTION = Decimal("1.02264")
HALF_HOUR = timedelta(minutes=30)

Series = tuple[str, str]  # (fuel, direction): ("electricity", "import"), ("gas", "import") ...


def penny(x: Decimal) -> Decimal:
    """Money to the penny, half up (octomon's rounding; see the module docstring)."""
    return x.quantize(PENNY, rounding=ROUND_HALF_UP)


def billed(kwh: Decimal) -> Decimal:
    """A half-hour's kWh as Octopus bills it: to 0.01 kWh, half to even."""
    return kwh.quantize(HUNDREDTH_KWH, rounding=ROUND_HALF_EVEN)


def uk_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants of a UK day's midnight and the next (23, 24 or 25 hours apart)."""
    lo = datetime(day.year, day.month, day.day, tzinfo=UK).astimezone(UTC)
    nxt = day + timedelta(days=1)
    return lo, datetime(nxt.year, nxt.month, nxt.day, tzinfo=UK).astimezone(UTC)


def uk_half_hours(day: date) -> list[datetime]:
    lo, hi = uk_day_bounds(day)
    return [lo + HALF_HOUR * i for i in range(int((hi - lo) / HALF_HOUR))]


def instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def holds(row: dict[str, Any], at: datetime) -> bool:
    start, end = instant(row["valid_from"]), instant(row["valid_to"])
    return (start is None or start <= at) and (end is None or at < end)


def in_force(
    rows: list[dict[str, Any]], at: datetime, method: str = "DIRECT_DEBIT"
) -> tuple[Decimal, Decimal]:
    """(inc VAT, exc VAT) pence of the row holding ``at``: the one of ``method`` (the API's
    name, ``DIRECT_DEBIT``), else the one for every payment method (null)."""
    found = [r for r in rows if holds(r, at)]
    mine = [r for r in found if r["payment_method"] == method]
    found = mine or [r for r in found if r["payment_method"] is None]
    assert len(found) == 1, (at, found)
    return Decimal(str(found[0]["value_inc_vat"])), Decimal(str(found[0]["value_exc_vat"]))


def is_night(at: datetime, night: tuple[int, int]) -> bool:
    """``at`` (UTC) is in the ECONOMY7_NIGHT window of minutes after UTC midnight."""
    minute = at.hour * 60 + at.minute
    start, end = night
    return start <= minute < end if start < end else minute >= start or minute < end


@dataclass
class HalfHour:
    """One priced half-hour: billed kWh and its exact cost (GBP)."""

    series: Series
    start: datetime
    code: str
    kwh: Decimal
    cost: Decimal
    cost_exc: Decimal


@dataclass
class DayRow:
    """One UK day of one series, as ``costs`` prints it."""

    kwh: Decimal
    energy: Decimal  # to the penny
    energy_exc: Decimal
    standing: Decimal | None  # to the penny (None for export)
    standing_exc: Decimal | None
    tariffs: set[str]

    @property
    def total(self) -> Decimal:
        return self.energy + (self.standing or Decimal(0))


@dataclass
class HandBill:
    """The bill of a range of UK days."""

    first: date
    last: date
    # (kind, fuel, direction, tariff code) -> amount to the penny (inc VAT, exc VAT)
    lines: dict[tuple[str, str, str, str], tuple[Decimal, Decimal]]
    line_kwh: dict[tuple[str, str, str, str], Decimal]  # energy lines' billed kWh
    line_days: dict[tuple[str, str, str, str], int]  # standing-charge lines' days
    days: dict[tuple[str, str, str], DayRow]  # (day ISO, fuel, direction) -> the row

    def total(self, series: Series | None = None, *, exc_vat: bool = False) -> Decimal:
        out = Decimal(0)
        for (_, fuel, direction, _), amounts in self.lines.items():
            if series is not None and (fuel, direction) != series:
                continue
            amount = amounts[1 if exc_vat else 0]
            out += -amount if direction == "export" and series is None else amount
        return out

    def rows_total(self) -> Decimal:
        return sum(
            (
                -r.total if direction == "export" else r.total
                for (_, _, direction), r in self.days.items()
            ),
            Decimal(0),
        )


@dataclass
class Point:
    """A meter point of the current property, as the account JSON gives it."""

    fuel: str
    direction: str
    number: str  # MPAN or MPRN
    serials: list[str]
    agreements: list[dict[str, Any]]

    @property
    def series(self) -> Series:
        return (self.fuel, self.direction)

    def tariff_at(self, at: datetime) -> str | None:
        found = [a for a in self.agreements if holds(a, at)]
        assert len(found) <= 1, found
        return str(found[0]["tariff_code"]) if found else None


@dataclass
class HandAccount:
    """The simulator's account read over HTTP, and the half-hours of a range priced by hand.

    ``gas_units``: the unit of the smart gas meter's consumption (its GraphQL
    ``consumptionUnits``), ``smart_serials`` the serials with a smart device (their figures
    win over another serial's for the same half-hour), ``other_units`` the unit of any other
    serial (the sim's replaced gas meter reports m³)."""

    rest_url: str
    api_key: str
    account_number: str
    gas_units: str = "m³"
    smart_serials: frozenset[str] = frozenset()
    other_units: str = "m³"
    calorific_value: Decimal = Decimal("39.5")
    night: tuple[int, int] = (30, 450)  # ECONOMY7_NIGHT as minutes after UTC midnight
    payment_method: str = "DIRECT_DEBIT"  # OCTOPUS_PAYMENT_METHOD as the API names it
    points: list[Point] = field(default_factory=list)
    unpriceable: dict[Series, str] = field(default_factory=dict)  # series -> tariff code
    priced_half_hours: list[HalfHour] = field(default_factory=list)
    consumption: dict[tuple[str, str], dict[datetime, Decimal]] = field(default_factory=dict)
    _rates: dict[tuple[str, str], list[Any] | None] = field(default_factory=dict)

    # --- raw HTTP -------------------------------------------------------------------------

    def _get(self, url: str) -> Any:
        token = base64.b64encode(f"{self.api_key}:".encode()).decode()
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=30) as answer:
            return json.loads(answer.read())

    def get_all(self, path: str, **params: str) -> list[Any] | None:
        """Every row of a paged list (``next`` followed); None for a 404 or a 400."""
        url: str | None = self.rest_url + path + "?" + urllib.parse.urlencode(params)
        rows: list[Any] = []
        while url:
            try:
                page = self._get(url)
            except urllib.error.HTTPError as err:
                if err.code in (400, 404):
                    return None
                raise
            rows += page["results"]
            url = page["next"]
        return rows

    # --- the account ----------------------------------------------------------------------

    def read_account(self) -> None:
        body = self._get(self.rest_url + f"accounts/{self.account_number}/")
        (prop,) = [p for p in body["properties"] if p["moved_out_at"] is None]
        self.points = [
            Point(
                "electricity",
                "export" if p["is_export"] else "import",
                p["mpan"],
                [m["serial_number"] for m in p["meters"]],
                p["agreements"],
            )
            for p in prop["electricity_meter_points"]
        ] + [
            Point(
                "gas",
                "import",
                p["mprn"],
                [m["serial_number"] for m in p["meters"]],
                p["agreements"],
            )
            for p in prop["gas_meter_points"]
        ]

    def _rate_rows(self, code: str, kind: str, lo: datetime, hi: datetime) -> list[Any] | None:
        key = (code, kind)
        if key not in self._rates:
            fuel = "gas" if code.startswith("G-") else "electricity"
            product = "-".join(code.split("-")[2:-1])
            self._rates[key] = self.get_all(
                f"products/{product}/{fuel}-tariffs/{code}/{kind}/",
                period_from=lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
                period_to=hi.strftime("%Y-%m-%dT%H:%M:%SZ"),
                page_size="1500",
            )
        return self._rates[key]

    def _unit_kinds(self, code: str) -> list[str] | None:
        """The rate lists a code is priced from; None: a layout not priced (``E-4R-``...)."""
        layout = code[:4]
        if layout in ("E-1R", "G-1R"):
            return ["standard-unit-rates"]
        if layout == "E-2R":
            return ["day-unit-rates", "night-unit-rates"]
        return None

    def _priceable(self, code: str, lo: datetime, hi: datetime) -> bool:
        kinds = self._unit_kinds(code)
        return kinds is not None and all(
            self._rate_rows(code, k, lo, hi) is not None for k in [*kinds, "standing-charges"]
        )

    def _is_night(self, at: datetime) -> bool:
        return is_night(at, self.night)

    # --- pricing a range ------------------------------------------------------------------

    def priced(self, first: date, last: date) -> HandAccount:
        """Read the account, the consumption of every serial of every meter point for
        ``first``..``last`` (UK days), and price every half-hour by hand."""
        self.read_account()
        lo, _ = uk_day_bounds(first)
        _, hi = uk_day_bounds(last)
        rates_lo, rates_hi = lo - timedelta(days=1), hi + timedelta(days=1)
        for point in self.points:
            codes = {point.tariff_at(hh) for d in _days(first, last) for hh in uk_half_hours(d)}
            bad = sorted(c for c in codes if c and not self._priceable(c, rates_lo, rates_hi))
            if bad:
                self.unpriceable[point.series] = bad[0]
                continue
            values = self._values(point, lo, hi)
            for hh, value in sorted(values.items()):
                code = point.tariff_at(hh)
                if code is None:
                    continue
                kwh = billed(value)
                kinds = self._unit_kinds(code)
                assert kinds is not None
                kind = kinds[0] if len(kinds) == 1 else kinds[1 if self._is_night(hh) else 0]
                rows = self._rate_rows(code, kind, rates_lo, rates_hi)
                assert rows is not None
                inc, exc = in_force(rows, hh, self.payment_method)
                self.priced_half_hours.append(
                    HalfHour(point.series, hh, code, kwh, kwh * inc / 100, kwh * exc / 100)
                )
        return self

    def _values(self, point: Point, lo: datetime, hi: datetime) -> dict[datetime, Decimal]:
        """Each half-hour's kWh (exact, before the billing rounding) of a meter point: one
        figure per half-hour, the smart meter's where several serials report it."""
        kind = "electricity" if point.fuel == "electricity" else "gas"
        per_serial: list[tuple[bool, dict[datetime, Decimal]]] = []
        for serial in point.serials:
            rows = self.get_all(
                f"{kind}-meter-points/{point.number}/meters/{serial}/consumption/",
                period_from=lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
                period_to=hi.strftime("%Y-%m-%dT%H:%M:%SZ"),
                order_by="period",
                page_size="25000",
            )
            got = {
                t: Decimal(str(r["consumption"]))
                for r in rows or []
                if (t := instant(r["interval_start"])) is not None and lo <= t < hi
            }
            self.consumption[(point.number, serial)] = got
            per_serial.append((serial in self.smart_serials, got))
        out: dict[datetime, Decimal] = {}
        for smart, got in sorted(per_serial, key=lambda x: not x[0]):  # smart first
            unit = (
                "kWh"
                if point.fuel == "electricity"
                else (self.gas_units if smart else self.other_units)
            )
            for t, value in got.items():
                if t not in out:
                    out[t] = self.kwh(value, unit)
        return out

    def kwh(self, value: Decimal, unit: str) -> Decimal:
        if unit == "kWh":
            return value
        assert unit == "m³", unit
        return value * self.calorific_value * VOLUME_CORRECTION / Decimal("3.6")

    def standing(self, point: Point, day: date) -> tuple[str, Decimal, Decimal] | None:
        """(tariff code, inc VAT GBP, exc VAT GBP) of a day's standing charge: the charge in
        force at the UK midnight, of the tariff in force then."""
        lo, _ = uk_day_bounds(day)
        code = point.tariff_at(lo)
        if code is None:
            return None
        rows = self._rates[(code, "standing-charges")]
        assert rows is not None
        inc, exc = in_force(rows, lo, self.payment_method)
        return code, inc / 100, exc / 100

    # --- the bill of some days ------------------------------------------------------------

    def bill(self, first: date, last: date) -> HandBill:
        """The bill of UK days ``first``..``last`` (within the range :meth:`priced` read)."""
        lo, _ = uk_day_bounds(first)
        _, hi = uk_day_bounds(last)
        exact: dict[tuple[str, str, str, str], list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )
        line_kwh: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
        per_day: dict[tuple[str, str, str], list[HalfHour]] = defaultdict(list)
        for h in self.priced_half_hours:
            if not lo <= h.start < hi:
                continue
            key = ("energy", *h.series, h.code)
            exact[key][0] += h.cost
            exact[key][1] += h.cost_exc
            line_kwh[key] += h.kwh
            day = h.start.astimezone(UK).date()
            per_day[(day.isoformat(), *h.series)].append(h)
        days: dict[tuple[str, str, str], DayRow] = {}
        standing_days: dict[tuple[str, str, str, str, Decimal, Decimal], int] = defaultdict(int)
        for point in self.points:
            if point.series in self.unpriceable:
                continue
            for day in _days(first, last):
                halves = per_day.get((day.isoformat(), *point.series), [])
                assert len(halves) == len(uk_half_hours(day)), (day, point.series, len(halves))
                charge = self.standing(point, day) if point.direction == "import" else None
                if charge is not None:
                    code, inc, exc = charge
                    standing_days[("standing charge", *point.series, code, inc, exc)] += 1
                days[(day.isoformat(), *point.series)] = DayRow(
                    sum((h.kwh for h in halves), Decimal(0)),
                    penny(sum((h.cost for h in halves), Decimal(0))),
                    penny(sum((h.cost_exc for h in halves), Decimal(0))),
                    penny(charge[1]) if charge else None,
                    penny(charge[2]) if charge else None,
                    {h.code for h in halves} | ({charge[0]} if charge else set()),
                )
        lines = {k: (penny(v[0]), penny(v[1])) for k, v in exact.items()}
        line_days: dict[tuple[str, str, str, str], int] = {}
        for (kind, fuel, direction, code, inc, exc), n in standing_days.items():
            key = (kind, fuel, direction, code)
            assert key not in lines, f"two standing charges of {code} in the range: {key}"
            lines[key] = (penny(inc * n), penny(exc * n))
            line_days[key] = n
        return HandBill(first, last, lines, dict(line_kwh), line_days, days)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
