"""Settled half-hourly consumption from the REST API (OCTOPUS_REST.md §4, SPEC §10).

``interval_start`` carries the UK offset (``+01:00`` in BST, ``Z`` in GMT); rows come
newest first unless ``order_by=period``; the endpoint sometimes answers a little more than
the window asked for, so rows outside it are dropped here, in one place.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from octomon.readings import energy_kwh, format_time, parse_instant
from octomon.units import ELECTRICITY, decimal

if TYPE_CHECKING:
    from octomon.octopus.pricebook import MeterPoint
    from octomon.octopus.rest import RestClient

PAGE_SIZE = 25_000  # a year of half-hours: one request for any window octomon asks for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Meter:
    """A meter whose settled consumption octomon reads."""

    fuel: str  # electricity | gas
    direction: str  # import | export
    point: str  # MPAN or MPRN
    serial: str

    @property
    def key(self) -> str:
        return f"{self.fuel}/{self.direction}/{self.serial}"

    @property
    def path(self) -> str:
        kind = "electricity-meter-points" if self.fuel == ELECTRICITY else "gas-meter-points"
        return f"{kind}/{self.point}/meters/{self.serial}/consumption/"


class Rest(Protocol):
    def get_all(
        self, path: str, params: dict[str, str | int] | None = None
    ) -> list[dict[str, Any]]: ...


def fetch(client: Rest, meter: Meter, since: datetime, until: datetime) -> dict[datetime, float]:
    """The API's value (kWh; m³ for a gas meter, see :func:`gas_kwh`) of every half-hour
    starting in ``[since, until)``, keyed by its UTC start. Raises octomon's Octopus errors."""
    rows = client.get_all(
        meter.path,
        {
            "period_from": format_time(since),
            "period_to": format_time(until),
            "order_by": "period",
            "page_size": PAGE_SIZE,
        },
    )
    out: dict[datetime, float] = {}
    unusable = 0
    for row in rows:
        start, value = row.get("interval_start"), row.get("consumption")
        try:
            at = parse_instant(start) if isinstance(start, str) else None
        except ValueError:
            at = None
        number = (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else math.nan
        )
        if at is None or not math.isfinite(number):
            unusable += 1
            continue
        if since <= at < until:
            out[at] = number
    if unusable:  # one line: those half-hours stay unsettled and are asked for again
        log.warning(
            "the Octopus API sent %d consumption row(s) for meter %s without a usable "
            "interval_start or consumption: skipped",
            unusable,
            meter.serial,
        )
    return out


def meters_of(points: list[MeterPoint]) -> list[Meter]:
    """Every meter of the account's current meter points (discovery: octopus.tariffs)."""
    return [Meter(p.fuel, p.direction, p.identifier, s) for p in points for s in p.serials if s]


def discover(rest: RestClient, account_number: str) -> list[Meter]:
    """The account's meters, from ``GET accounts/{number}/`` (one call)."""
    from octomon.octopus.tariffs import meter_points

    return meters_of(meter_points(rest.account(account_number)))


def gas_kwh(m3: dict[datetime, float], calorific_value: Decimal) -> dict[datetime, float]:
    """A gas meter's settled m³ as kWh (SMETS2 meters, the Home Mini's kind, report volume:
    OCTOPUS_REST.md §4), with GAS_CALORIFIC_VALUE and the volume correction."""
    return {k: float(energy_kwh(decimal(v), calorific_value)) for k, v in m3.items()}
