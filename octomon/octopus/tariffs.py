"""Discovery and pricing (SPEC §9): what each half-hour and each UK day costs, as Octopus bills it.

* **Discovery** (:func:`meter_points`): the property with ``moved_out_at`` null, its
  electricity meter points (import or export, from ``is_export``) and gas meter points,
  each with its agreements.
* **Rates** (:func:`fetch`): for each agreement overlapping the asked span, the rows of
  its tariff (``standard-unit-rates``, or ``day-``/``night-unit-rates`` for ``E-2R-``) and
  its standing charges, every page, kept as published: every payment method's rows, day
  and night apart. Each half-hour gets the rows of the agreement in force *then* (a switch
  mid-range prices each side right); each UK day's standing charge those of the agreement
  in force at its local midnight. Of one payment method (or of the null rows) the later
  row wins. Prices are pence; they become GBP exactly (``Decimal`` ÷ 100). Negative prices
  are kept.

The result is a :class:`~octomon.octopus.published.Published`; its ``priced(pricing)`` --
OCTOPUS_PAYMENT_METHOD's rows (a row naming it wins over a null one), the night rows in the
ECONOMY7_NIGHT window -- is the :class:`~octomon.octopus.pricebook.TariffBook` with
``price_at(half_hour_start, fuel, direction)`` and ``standing_charge(uk_day, fuel,
direction)`` for everything that needs a price (``energy_tariff``, ``octomon tariff``, costs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from octomon.errors import ApiError, NotFound
from octomon.octopus.pricebook import (
    Agreement,
    Charge,
    MeterPoint,
    Price,
    Series,
    TariffBook,
    half_hours,
    midnights,
)
from octomon.octopus.published import (
    DAY,
    METHODS,
    NIGHT,
    STANDARD,
    STANDING,
    Published,
    Rate,
    Rates,
)
from octomon.readings import format_time, parse_instant
from octomon.uktime import UTC
from octomon.units import ELECTRICITY, GAS, decimal_or_none

if TYPE_CHECKING:
    from octomon.octopus.rest import RestClient

log = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "Charge",
    "MeterPoint",
    "Price",
    "Published",
    "TariffBook",
    "fetch",
    "is_dual_register",
    "meter_points",
    "product_code",
    "unpriceable",
]

PAGE_SIZE = 1500
_TARIFF = re.compile(r"^(?P<fuel>[A-Z])-(?P<registers>[0-9A-Z]+)-(?P<product>[A-Z0-9-]+)-[A-Z]$")


# --- tariff codes --------------------------------------------------------------------------


def product_code(tariff_code: str) -> str:
    """``E-1R-AGILE-24-10-01-C`` -> ``AGILE-24-10-01``; a code without the fuel/register
    prefix (``V2G-EXPORT-12M-FIXED-22-12-01-C``) loses only its region."""
    m = _TARIFF.match(tariff_code)
    if m is not None:
        return m["product"]
    return tariff_code.rsplit("-", 1)[0]


def unpriceable(tariff_code: str) -> str | None:
    """Why octomon cannot price a tariff code's register layout (``E-4R-``: four registers
    with times octomon does not know), or None for one (``1R``) or two (``2R``) registers
    and for codes without the layout part (the API decides those)."""
    m = _TARIFF.match(tariff_code)
    if m is None or m["registers"] in ("1R", "2R"):
        return None
    return f"tariff {tariff_code}: octomon does not price a {m['registers']} register layout"


def is_dual_register(tariff_code: str) -> bool:
    """Economy 7 and friends: the register part holds a 2 (``E-2R-``)."""
    m = _TARIFF.match(tariff_code)
    return m is not None and "2" in m["registers"]


# --- discovery -----------------------------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _agreements(raw: Any) -> tuple[Agreement, ...]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("tariff_code"), str):
            continue
        start = _instant(item.get("valid_from"))
        if start is None:
            continue
        out.append(Agreement(item["tariff_code"], start, _instant(item.get("valid_to"))))
    return tuple(sorted(out, key=lambda a: a.valid_from))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def meter_points(account: Mapping[str, Any]) -> list[MeterPoint]:
    """The current property's meter points (``moved_out_at`` null; the latest move-in if
    several are open). An account without one is an ``ApiError`` naming it."""
    number = account.get("number", "the account")
    current = [p for p in _dicts(account.get("properties")) if p.get("moved_out_at") is None]
    if not current:
        raise ApiError(None, f"{number} has no current property (every one has moved_out_at)")
    prop = max(
        current, key=lambda p: _instant(p.get("moved_in_at")) or datetime.min.replace(tzinfo=UTC)
    )
    points: list[MeterPoint] = []
    for raw in _dicts(prop.get("electricity_meter_points")):
        points.append(
            MeterPoint(
                ELECTRICITY,
                "export" if raw.get("is_export") else "import",
                str(raw.get("mpan", "")),
                tuple(str(m.get("serial_number")) for m in _dicts(raw.get("meters"))),
                _agreements(raw.get("agreements")),
            )
        )
    for raw in _dicts(prop.get("gas_meter_points")):
        points.append(
            MeterPoint(
                GAS,
                "import",
                str(raw.get("mprn", "")),
                tuple(str(m.get("serial_number")) for m in _dicts(raw.get("meters"))),
                _agreements(raw.get("agreements")),
            )
        )
    return points


# --- fetching ----------------------------------------------------------------------------------


def gbp(value: Any) -> Decimal | None:
    """Pence as the API sends them (a JSON number) -> GBP, exactly; None if not a number."""
    pence = decimal_or_none(value)
    return None if pence is None else pence / 100


class _Row(NamedTuple):
    start: datetime
    end: datetime | None
    inc: Decimal
    exc: Decimal
    method: str | None  # the row's payment_method; None: every method


def _rows(raw: list[dict[str, Any]], what: str = "a tariff") -> list[_Row]:
    out = []
    unusable = 0
    for item in raw:
        pm = item.get("payment_method")
        start, inc, exc = (
            _instant(item.get("valid_from")),
            gbp(item.get("value_inc_vat")),
            gbp(item.get("value_exc_vat")),
        )
        if start is None or inc is None or exc is None or not isinstance(pm, (str, type(None))):
            unusable += 1
            continue
        out.append(_Row(start, _instant(item.get("valid_to")), inc, exc, pm))
    if unusable:  # one line; the half-hours they would price stay unpriced, and say so
        log.warning(
            "the Octopus API sent %d row(s) of %s without a valid_from or a numeric price: skipped",
            unusable,
            what,
        )
    return sorted(out, key=lambda r: r.start)  # applied in order: a later row wins


def _apply(rows: list[_Row], times: list[datetime]) -> dict[datetime, dict[str | None, _Row]]:
    """Per payment method, the row in force at each of ``times`` (sorted), by its validity."""
    found: dict[datetime, dict[str | None, _Row]] = {}
    if not times:
        return found
    import bisect

    for row in rows:
        lo = bisect.bisect_left(times, row.start)
        hi = len(times) if row.end is None else bisect.bisect_left(times, row.end)
        for t in times[lo:hi]:
            found.setdefault(t, {})[row.method] = row
    return found


def _rates(code: str, register: str, by_method: dict[str | None, _Row]) -> Rates:
    """The rows of one register in force at one time, in a stable order."""
    return tuple(
        Rate(code, register, method, row.inc, row.exc)
        for method, row in sorted(by_method.items(), key=lambda m: m[0] or "")
    )


def fetch(
    client: RestClient,
    points: list[MeterPoint],
    start: datetime,
    end: datetime,
    *,
    series: set[Series] | None = None,
    charges_from: Mapping[Series, date] | None = None,
) -> Published:
    """The published rows in force at every half-hour and UK midnight in ``[start, end)``
    the rates cover, for the meter points (only ``series`` if given); standing charges
    only for the UK days from ``charges_from[series]`` on (those before are had already).
    Raises the client's errors; a 404 becomes ``NotFound`` naming the tariff and product
    codes."""
    book = Published(points=list(points))
    for point in points:
        if series is not None and point.series not in series:
            continue
        for agreement in point.agreements:
            lo = max(start, agreement.valid_from)
            hi = min(end, agreement.valid_to) if agreement.valid_to else end
            if lo >= hi:
                continue
            first = (charges_from or {}).get(point.series, date.min)
            _fetch_agreement(client, book, point, agreement, lo, hi, first)
    return book


def _fetch_agreement(
    client: RestClient,
    book: Published,
    point: MeterPoint,
    agreement: Agreement,
    lo: datetime,
    hi: datetime,
    charges_from: date,
) -> None:
    code = agreement.tariff_code
    reason = unpriceable(code)
    if reason is not None:  # named without a request
        raise ApiError(None, reason)
    base = f"products/{product_code(code)}/{point.fuel}-tariffs/{code}/"
    params: dict[str, str | int] = {
        "period_from": format_time(lo),
        "period_to": format_time(hi),
        "page_size": PAGE_SIZE,
    }

    def get(kind: str) -> list[_Row]:
        try:
            return _rows(client.get_all(base + kind + "/", params), f"{kind} of {code}")
        except NotFound:
            raise NotFound(
                f"the Octopus API has no {kind} for tariff {code} (product "
                f"{product_code(code)}) on {point.fuel} meter point {point.identifier}",
                "the tariff code may not be in the products API; please report it",
            ) from None

    times = [t for t in half_hours(lo, hi) if point.agreement_at(t) == agreement]
    registers = (
        [(DAY, "day-unit-rates"), (NIGHT, "night-unit-rates")]
        if is_dual_register(code)
        else [(STANDARD, "standard-unit-rates")]
    )
    found: dict[datetime, Rates] = {}
    for register, kind in registers:
        for t, by_method in _apply(get(kind), times).items():
            found[t] = found.get(t, ()) + _rates(code, register, by_method)
    book.prices.setdefault(point.series, {}).update(sorted(found.items()))
    days = [
        (d, at)
        for d, at in midnights(lo, hi)
        if d >= charges_from and point.agreement_at(at) == agreement
    ]
    if days:
        charges = book.charges.setdefault(point.series, {})
        standing = _apply(get("standing-charges"), [at for _, at in days])
        for d, at in days:
            if at in standing:
                charges[d] = _rates(code, STANDING, standing[at])
