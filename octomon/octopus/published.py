"""The rates as Octopus publishes them (SPEC §9), resolved for the settings when they are used.

For every half-hour (and every UK day, for standing charges) :class:`Published` keeps each
row in force then: every payment method's (``DIRECT_DEBIT``, ``NON_DIRECT_DEBIT``, or null for
all) and, for an ``E-2R-`` tariff, the day register's and the night register's. This is what
``CACHE_DIR/tariffs.json`` holds, so a corrected ``OCTOPUS_PAYMENT_METHOD`` or
``ECONOMY7_NIGHT`` re-prices every half-hour already kept, without a call:
:meth:`Published.priced` turns it into the :class:`~octomon.octopus.pricebook.TariffBook`
of one :class:`Pricing` -- the row naming the payment method, else the null one; on a
dual-register tariff the night row inside the night window, the day row outside it.

In the file each series has a table of its distinct rates (a fixed tariff: a handful; Agile:
48 a day) and each half-hour or day names its rates by their place in that table. Prices are
decimal strings, so a price read back is exactly the one fetched; the reader is strict (a
value of the wrong type raises, see :mod:`octomon.jsonfile`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from octomon import jsonfile
from octomon.config_rules import night_window
from octomon.octopus.pricebook import (
    Book,
    Charge,
    MeterPoint,
    Price,
    Series,
    TariffBook,
    in_window,
    points_from_obj,
    points_to_obj,
)
from octomon.readings import format_time
from octomon.units import decimal

METHODS = {"direct_debit": "DIRECT_DEBIT", "non_direct_debit": "NON_DIRECT_DEBIT"}
STANDARD, DAY, NIGHT, STANDING = "standard", "day", "night", "standing"
REGISTERS = (STANDARD, DAY, NIGHT, STANDING)


class Rate(NamedTuple):
    """One published row, as it holds a half-hour (GBP/kWh) or a UK day (GBP/day)."""

    tariff_code: str
    register: str  # standard | day | night | standing
    payment_method: str | None  # as published; None: every payment method
    inc: Decimal  # inc. VAT
    exc: Decimal


Rates = tuple[Rate, ...]


class Pricing(NamedTuple):
    """The settings that choose among the published rows."""

    payment_method: str  # OCTOPUS_PAYMENT_METHOD: direct_debit | non_direct_debit
    night: tuple[int, int]  # ECONOMY7_NIGHT: minutes after UTC midnight, end exclusive

    @property
    def method(self) -> str:
        """The ``payment_method`` the API writes for this setting (``DIRECT_DEBIT``)."""
        return METHODS.get(self.payment_method, self.payment_method.upper())

    def signature(self) -> str:
        """``direct_debit 00:30-07:30``: what the daemon stored its points under."""
        return (
            f"{self.payment_method} {'-'.join(f'{m // 60:02d}:{m % 60:02d}' for m in self.night)}"
        )

    @classmethod
    def parse(cls, signature: str) -> Pricing | None:
        """The inverse of :meth:`signature`; None for text that is not one."""
        method, _, night = signature.partition(" ")
        try:
            return cls(method, night_window(night))
        except ValueError:
            return None


def choose(rates: Rates, register: str, method: str) -> Rate | None:
    """The row of ``register`` for the API's ``method``: one naming it wins over a null one."""
    found = None
    for rate in rates:
        fits = rate.register == register and rate.payment_method in (method, None)
        if fits and (found is None or found.payment_method is None):
            found = rate
    return found


@dataclass
class Published(Book[Rates, Rates]):
    """Every published row in force per half-hour and per UK day (see the module docstring)."""

    def priced(self, pricing: Pricing) -> TariffBook:
        """The prices and standing charges for ``pricing``; a half-hour without a row for it
        (no night row, only the other payment method's) is left unpriced."""
        method = pricing.method
        book = TariffBook(list(self.points))
        for series, known in self.prices.items():
            prices = book.prices.setdefault(series, {})
            for t, rates in known.items():
                register = STANDARD
                if any(r.register in (DAY, NIGHT) for r in rates):
                    register = NIGHT if in_window(t, pricing.night) else DAY
                rate = choose(rates, register, method)
                if rate is not None:
                    prices[t] = Price(rate.tariff_code, rate.inc, rate.exc)
        for series, days in self.charges.items():
            charges = book.charges.setdefault(series, {})
            for d, rates in days.items():
                rate = choose(rates, STANDING, method)
                if rate is not None:
                    charges[d] = Charge(rate.tariff_code, rate.inc, rate.exc)
        return book

    # --- CACHE_DIR/tariffs.json ----------------------------------------------------------

    def to_obj(self) -> dict[str, Any]:
        rates: dict[str, list[list[Any]]] = {}
        prices: dict[str, list[list[Any]]] = {}
        charges: dict[str, list[list[Any]]] = {}
        for series in sorted({*self.prices, *self.charges}):
            key = "/".join(series)
            table: dict[Rate, int] = {}
            ids = _interner(table)
            known = sorted(self.prices.get(series, {}).items())
            prices[key] = [[format_time(t), *ids(found)] for t, found in known]
            days = sorted(self.charges.get(series, {}).items())
            charges[key] = [[d.isoformat(), *ids(found)] for d, found in days]
            rates[key] = [
                [r.tariff_code, r.register, r.payment_method, str(r.inc), str(r.exc)] for r in table
            ]
        return {
            "points": points_to_obj(self.points),
            "rates": rates,
            "prices": prices,
            "charges": charges,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Published:
        """The inverse of :meth:`to_obj`. Strict: raises one of :data:`octomon.jsonfile.DAMAGE`
        on any value of the wrong type (a price ``"n/a"``, an unknown register)."""
        book = cls(_points(jsonfile.array(obj["points"], "points")))
        tables = {
            _series(key): [_rate(row) for row in jsonfile.array(rows, "rates")]
            for key, rows in jsonfile.mapping(obj["rates"], "rates").items()
        }
        for key, rows in jsonfile.mapping(obj["prices"], "prices").items():
            table = tables[_series(key)]
            book.prices[_series(key)] = {
                jsonfile.instant(at): tuple(table[_index(i)] for i in ids)
                for at, *ids in map(_row, jsonfile.array(rows, "prices"))
            }
        for key, rows in jsonfile.mapping(obj["charges"], "charges").items():
            table = tables[_series(key)]
            book.charges[_series(key)] = {
                jsonfile.day(at): tuple(table[_index(i)] for i in ids)
                for at, *ids in map(_row, jsonfile.array(rows, "charges"))
            }
        return book


def _row(value: Any) -> list[Any]:
    row = jsonfile.array(value, "a half-hour or a day")
    if not row:
        raise jsonfile.Damaged("an empty row")
    return row


def _interner(table: dict[Rate, int]) -> Callable[[Rates], list[int]]:
    """Rates -> their places in ``table``, adding those not in it yet."""
    return lambda found: [table.setdefault(r, len(table)) for r in found]


def _series(key: str) -> Series:
    fuel, direction = jsonfile.text(key, "a series").split("/")
    return fuel, direction


def _index(value: Any) -> int:
    if jsonfile.integer(value, "a rate's place") < 0:
        raise jsonfile.Damaged("a rate's place is negative")
    return int(value)


def _rate(row: Any) -> Rate:
    code, register, method, inc, exc = jsonfile.array(row, "a rate")
    if register not in REGISTERS:
        raise jsonfile.Damaged(f"a register of {register!r}")
    return Rate(
        jsonfile.text(code, "a tariff code"),
        register,
        None if method is None else jsonfile.text(method, "a payment method"),
        decimal(jsonfile.text(inc, "a price")),  # "n/a": BadNumber, a ValueError
        decimal(jsonfile.text(exc, "a price")),
    )


def _points(raw: list[Any]) -> list[MeterPoint]:
    for p in raw:
        point = jsonfile.mapping(p, "a meter point")
        for name in ("fuel", "direction", "id"):
            jsonfile.text(point[name], name)
        for serial in jsonfile.array(point["serials"], "serials"):
            jsonfile.text(serial, "a serial")
        for agreement in jsonfile.array(point["agreements"], "agreements"):
            code, start, end = jsonfile.array(agreement, "an agreement")
            jsonfile.text(code, "a tariff code")
            jsonfile.instant(start)
            if end is not None:
                jsonfile.instant(end)
    return points_from_obj(raw)
