"""The simulator's REST face (OCTOPUS_REST.md): the account, products, unit rates, standing charges.

``SimHomeMini.handle`` sends every ``GET /v1/...`` that is not GraphQL here. Routes are
regular expressions over the path (trailing slash optional, as in production); other
modules add theirs with :meth:`SimRest.route` (settled consumption does). Answers follow
the real API: ``{count, next, previous, results}`` lists, newest first, capped at
``page_size`` rows a page (a test lowers it so that ``next`` is followed; ``next`` is an
absolute URL on ``origin``, carrying the query's other parameters); errors are
``{"detail": ...}``: 401 "Invalid API key." for a wrong key (or no credentials where they
are required), 404 "Not found.", 400 for ``standard-unit-rates`` of an ``E-2R-`` tariff.

The account (identifiers in :mod:`octomon.sim.account`): a property moved out of, and the
current one whose import meter point switched from ``FIXED_IMPORT_TARIFF`` to
``AGILE_IMPORT_TARIFF`` ``SWITCH_AGO`` before the sim's clock at construction (at a UK
midnight), and a gas meter point with two meters on ``GAS_TARIFF``. ``economy7 = True``
makes the import an ``E-2R-`` tariff throughout (day and night rates). Fixed tariffs have
a DIRECT_DEBIT and a NON_DIRECT_DEBIT row; Agile rows have ``payment_method: null`` and a
price per half-hour, deterministic from the seed, sometimes negative, published up to
23:00 UK tomorrow at ``publish_at`` (16:00 UK by the sim's clock). A test's injected fault
(:meth:`SimHomeMini.fault`) answers before any route.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from octomon.sim import account as ids
from octomon.sim.products import Products, detail
from octomon.sim.protocol import SimResponse, json_answer

if TYPE_CHECKING:
    from octomon.sim.graphql import SimHomeMini

UK = ZoneInfo("Europe/London")
UTC = timezone.utc
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1500
STANDARD_REGISTER = {"identifier": "1", "rate": "STANDARD", "is_settlement_register": True}

Handler = Callable[[re.Match[str], dict[str, str], datetime], SimResponse]


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool  # credentials required (account and consumption); else only checked if sent


def uk_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UK).astimezone(UTC)


class SimRest(Products):
    """The REST back end of one :class:`SimHomeMini` (runs under its lock)."""

    def __init__(self, sim: SimHomeMini) -> None:
        self.sim = sim
        self.page_size = DEFAULT_PAGE_SIZE  # the cap on rows per page
        self.origin = "https://api.octopus.energy"  # SimServer sets its own
        self.economy7 = False
        # Account kinds: the import meter point on this one code instead (e.g. an ``E-4R-``
        # code), and an export meter point on ``export_tariff`` (a code the products API
        # here does not know answers 404, as an outgoing tariff missing from it does).
        self.import_tariff: str | None = None
        self.export_tariff: str | None = None
        self.publish_at = time(16, 0)  # UK time tomorrow's Agile prices appear
        self.calls: list[tuple[datetime, str]] = []  # (sim time, path) of REST requests
        today = sim.clock().astimezone(UK).date()
        self.switch_at = uk_midnight(today - ids.SWITCH_AGO)
        self.moved_in_at = uk_midnight(today - timedelta(days=120))
        self.rates_from = uk_midnight(today - timedelta(days=400))
        self.old_moved_in_at = uk_midnight(today - timedelta(days=900))
        self._routes: list[_Route] = []
        self.route(r"accounts/(?P<number>[^/]+)", self._account, auth=True)
        self.route(r"products/(?P<product>[^/]+)", self._product)
        self.route(
            r"products/(?P<product>[^/]+)/(?P<fuel>electricity|gas)-tariffs/(?P<tariff>[^/]+)/"
            r"(?P<kind>standard-unit-rates|day-unit-rates|night-unit-rates|standing-charges)",
            self._rates,
        )

    def route(self, pattern: str, handler: Handler, *, auth: bool = False) -> None:
        """Serve ``GET /v1/<pattern>[/]`` with ``handler(match, query, now)``."""
        self._routes.append(_Route(re.compile(rf"^/v1/{pattern}/?$"), handler, auth))

    # --- the request pipeline --------------------------------------------------------------

    def handle(self, method: str, target: str, authorization: str | None) -> SimResponse:
        now = self.sim.clock()
        parts = urlsplit(target)
        if self.sim.record:
            self.calls.append((now, parts.path))
        fault = self.sim.fault("rest")
        if fault is not None:
            return fault
        if method != "GET":
            return detail(405, f'Method "{method}" not allowed.')
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        for route in self._routes:
            match = route.pattern.match(parts.path)
            if match is None:
                continue
            refused = self._authorise(authorization, required=route.auth)
            if refused is not None:
                return refused
            try:
                return route.handler(match, query, now)
            except ValueError as err:
                return detail(400, str(err))
        return detail(404, "Not found.")

    def _authorise(self, header: str | None, *, required: bool) -> SimResponse | None:
        if not header:
            if required:
                return detail(401, "Authentication credentials were not provided.")
            return None
        scheme, _, value = header.partition(" ")
        try:
            user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if scheme.lower() != "basic" or user != self.sim.api_key:
            return detail(401, "Invalid API key.")
        return None

    def page(
        self, path: str, query: dict[str, str], count: int, rows: Callable[[int, int], list[Any]]
    ) -> SimResponse:
        """One page of a list of ``count`` rows; ``rows(lo, hi)`` makes rows lo..hi-1."""
        try:
            number = max(1, int(query.get("page", "1")))
            size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError:
            raise ValueError("Invalid page.") from None
        size = max(1, min(size, MAX_PAGE_SIZE, self.page_size))
        lo = (number - 1) * size
        if lo >= count and number > 1:
            return detail(404, "Invalid page.")
        hi = min(lo + size, count)

        def link(n: int) -> str | None:
            if n < 1 or (n - 1) * size >= count:
                return None
            return f"{self.origin}{path}?{urlencode({**query, 'page': n})}"

        return json_answer(
            200,
            {
                "count": count,
                "next": link(number + 1) if hi < count else None,
                "previous": link(number - 1),
                "results": rows(lo, hi),
            },
        )

    # --- the account -----------------------------------------------------------------------

    def _account(self, m: re.Match[str], query: dict[str, str], now: datetime) -> SimResponse:
        if m["number"].upper() != self.sim.account_number.upper():
            return detail(404, "Not found.")
        return json_answer(200, self.account())

    def import_agreements(self) -> list[dict[str, str | None]]:
        if self.import_tariff is not None:
            return [self._agreement(self.import_tariff, self.moved_in_at, None)]
        if self.economy7:
            return [self._agreement(ids.ECONOMY7_IMPORT_TARIFF, self.moved_in_at, None)]
        return [
            self._agreement(ids.FIXED_IMPORT_TARIFF, self.moved_in_at, self.switch_at),
            self._agreement(ids.AGILE_IMPORT_TARIFF, self.switch_at, None),
        ]

    @staticmethod
    def _agreement(code: str, start: datetime, end: datetime | None) -> dict[str, str | None]:
        # Agreements mix offsets: UK local time, "+01:00" in summer (OCTOPUS_REST.md §1).
        return {
            "tariff_code": code,
            "valid_from": start.astimezone(UK).isoformat(),
            "valid_to": end.astimezone(UK).isoformat() if end else None,
        }

    def account(self) -> dict[str, Any]:
        if self.economy7:
            registers = [
                {"identifier": "DY", "rate": "DAY", "is_settlement_register": True},
                {"identifier": "NT", "rate": "NIGHT", "is_settlement_register": True},
            ]
            standard: dict[str, Any] = {"consumption_day": 2627, "consumption_night": 2407}
            profile = 2
        else:
            registers = [STANDARD_REGISTER]
            standard, profile = {"consumption_standard": 2900}, 1
        current: dict[str, Any] = {
            "id": 4151012,
            "moved_in_at": self.moved_in_at.astimezone(UK).isoformat(),
            "moved_out_at": None,
            "address_line_1": "1 Simulated Terrace",
            "address_line_2": "",
            "address_line_3": "",
            "town": "LONDON",
            "county": "",
            "postcode": "SE1 7SM",
            "electricity_meter_points": [
                {
                    "mpan": ids.MPAN,
                    "profile_class": profile,
                    **standard,
                    "meters": [{"serial_number": ids.ELECTRICITY_SERIAL, "registers": registers}],
                    "agreements": self.import_agreements(),
                    "is_export": False,
                }
            ],
            "gas_meter_points": [
                {
                    "mprn": ids.MPRN,
                    "consumption_standard": 11500,
                    "meters": [
                        {"serial_number": ids.GAS_SERIAL_OLD},
                        {"serial_number": ids.GAS_SERIAL},
                    ],
                    "agreements": [self._agreement(ids.GAS_TARIFF, self.moved_in_at, None)],
                }
            ],
        }
        if self.export_tariff is not None:
            current["electricity_meter_points"] = [
                *current["electricity_meter_points"],
                {
                    "mpan": ids.EXPORT_MPAN,
                    "profile_class": None,
                    "consumption_standard": 0,
                    "meters": [
                        {"serial_number": ids.ELECTRICITY_SERIAL, "registers": [STANDARD_REGISTER]}
                    ],
                    "agreements": [self._agreement(self.export_tariff, self.moved_in_at, None)],
                    "is_export": True,
                },
            ]
        old = {
            "id": 3999001,
            "moved_in_at": self.old_moved_in_at.isoformat().replace("+00:00", "Z"),
            "moved_out_at": self.moved_in_at.isoformat().replace("+00:00", "Z"),
            "address_line_1": "9 Former Road",
            "address_line_2": "",
            "address_line_3": "",
            "town": "LEEDS",
            "county": "",
            "postcode": "LS1 1OL",
            "electricity_meter_points": [
                {
                    "mpan": ids.OLD_MPAN,
                    "profile_class": 1,
                    "consumption_standard": 3100,
                    "meters": [
                        {
                            "serial_number": ids.OLD_ELECTRICITY_SERIAL,
                            "registers": [STANDARD_REGISTER],
                        }
                    ],
                    "agreements": [
                        self._agreement(ids.OLD_IMPORT_TARIFF, self.old_moved_in_at, None)
                    ],
                    "is_export": False,
                }
            ],
            "gas_meter_points": [],
        }
        return {"number": self.sim.account_number, "properties": [old, current]}
