"""The simulator's products and rates (OCTOPUS_REST.md §2, §3), a part of :class:`SimRest`.

Fixed tariffs have one DIRECT_DEBIT and one NON_DIRECT_DEBIT row per kind, valid from
``rates_from`` on; the Agile-like tariff has a price per half-hour (``agile_price``, a pure
function of the seed, sometimes negative) with ``payment_method: null``, published up to
23:00 UK tomorrow at ``publish_at`` UK time by the sim's clock. ``standard-unit-rates`` of an
``E-2R-`` tariff is a 400, as in production.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from octomon.sim.protocol import SimResponse, json_answer

if TYPE_CHECKING:
    from octomon.sim.graphql import SimHomeMini

UK = ZoneInfo("Europe/London")
UTC = timezone.utc
HALF_HOUR = 1800
VAT = Decimal("1.05")
REGIONS = "ABCDEFGHJKLMNP"
DD, NON_DD = "DIRECT_DEBIT", "NON_DIRECT_DEBIT"

# Prices of the fixed tariffs, pence exc. VAT: {kind: {payment method: value}}.
FIXED_ELECTRICITY = {
    "standard-unit-rates": {DD: Decimal("23.81"), NON_DD: Decimal("25.05")},
    "standing-charges": {DD: Decimal("45.57"), NON_DD: Decimal("50.79")},
}
ECONOMY7 = {
    "day-unit-rates": {DD: Decimal("28.10"), NON_DD: Decimal("29.40")},
    "night-unit-rates": {DD: Decimal("12.588"), NON_DD: Decimal("13.60")},
    "standing-charges": {DD: Decimal("45.57"), NON_DD: Decimal("50.79")},
}
FIXED_GAS = {
    "standard-unit-rates": {DD: Decimal("5.70"), NON_DD: Decimal("6.10")},
    "standing-charges": {DD: Decimal("28.44"), NON_DD: Decimal("31.20")},
}
AGILE_STANDING = Decimal("47.60")  # payment_method null


def detail(status: int, text: str) -> SimResponse:
    return json_answer(status, {"detail": text})


def iso(ts: datetime) -> str:
    """Rate timestamps are UTC ``Z`` even in BST (OCTOPUS_REST.md §3)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_param(value: str) -> datetime:
    """An ISO 8601 query value; no offset means Europe/London (OCTOPUS_REST.md §0)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt.replace(tzinfo=UK) if dt.tzinfo is None else dt


def _pence(value: Decimal) -> float:
    return float(value)


class Products:
    """The product and rate endpoints; mixed into :class:`octomon.sim.rest.SimRest`."""

    sim: SimHomeMini
    origin: str
    rates_from: datetime
    publish_at: time
    page: Callable[[str, dict[str, str], int, Callable[[int, int], list[Any]]], SimResponse]

    @staticmethod
    def _catalogue() -> dict[str, dict[str, Any]]:
        """product code -> its tariffs: {section: (tariff prefix, payment key)}."""
        fixed = "OE-FIX-12M-25-09-01"
        return {
            fixed: {
                "full_name": "Octopus 12M Fixed September 2025",
                "is_variable": False,
                "term": 12,
                "sections": {
                    "single_register_electricity_tariffs": "E-1R",
                    "dual_register_electricity_tariffs": "E-2R",
                    "single_register_gas_tariffs": "G-1R",
                },
                "payment": "direct_debit_monthly",
            },
            "AGILE-24-10-01": {
                "full_name": "Agile Octopus October 2024 v1",
                "is_variable": True,
                "term": 12,
                "sections": {"single_register_electricity_tariffs": "E-1R"},
                "payment": "direct_debit_monthly",
            },
        }

    def _prices(self, tariff: str) -> dict[str, dict[str, Decimal]] | None:
        """Fixed tariffs' price table (any region), None for Agile or an unknown code."""
        m = re.match(r"^([EG])-(1R|2R)-(.+)-([A-P])$", tariff)
        if m is None or m[4] not in REGIONS:
            return None
        if m[3] == "OE-FIX-12M-25-09-01":
            if m[1] == "G":
                return FIXED_GAS if m[2] == "1R" else None
            return FIXED_ELECTRICITY if m[2] == "1R" else ECONOMY7
        return None

    def _is_agile(self, tariff: str) -> bool:
        return re.match(rf"^E-1R-AGILE-24-10-01-[{REGIONS}]$", tariff) is not None

    def _product(self, m: re.Match[str], query: dict[str, str], now: datetime) -> SimResponse:
        code = m["product"]
        spec = self._catalogue().get(code)
        if spec is None:
            return detail(404, "Not found.")
        body: dict[str, Any] = {
            "code": code,
            "direction": "IMPORT",
            "full_name": spec["full_name"],
            "display_name": spec["full_name"].rsplit(" ", 2)[0],
            "description": "Simulated by octomon.sim.",
            "is_variable": spec["is_variable"],
            "is_green": False,
            "is_tracker": False,
            "is_prepay": False,
            "is_business": False,
            "is_restricted": False,
            "term": spec["term"],
            "available_from": self.rates_from.isoformat().replace("+00:00", "Z"),
            "available_to": None,
            "tariffs_active_at": iso(now),
        }
        for section in (
            "single_register_electricity_tariffs",
            "dual_register_electricity_tariffs",
            "single_register_gas_tariffs",
        ):
            prefix = spec["sections"].get(section)
            body[section] = (
                {f"_{r}": {spec["payment"]: self._tariff_entry(code, prefix, r)} for r in REGIONS}
                if prefix
                else {}
            )
        body.update({"sample_quotes": {}, "sample_consumption": {}, "brand": "OCTOPUS_ENERGY"})
        body["links"] = [
            {"href": f"{self.origin}/v1/products/{code}/", "method": "GET", "rel": "self"}
        ]
        return json_answer(200, body)

    def _tariff_entry(self, product: str, prefix: str, region: str) -> dict[str, Any]:
        tariff = f"{prefix}-{product}-{region}"
        fuel = "gas" if prefix.startswith("G") else "electricity"
        base = f"{self.origin}/v1/products/{product}/{fuel}-tariffs/{tariff}"
        prices = self._prices(tariff)
        standing = prices["standing-charges"][DD] if prices else AGILE_STANDING
        entry: dict[str, Any] = {
            "code": tariff,
            "standing_charge_exc_vat": _pence(standing),
            "standing_charge_inc_vat": _pence(standing * VAT),
            "online_discount_exc_vat": 0,
            "online_discount_inc_vat": 0,
            "dual_fuel_discount_exc_vat": 0,
            "dual_fuel_discount_inc_vat": 0,
            "exit_fees_exc_vat": 0,
            "exit_fees_inc_vat": 0,
            "exit_fees_type": "NONE",
        }
        kinds = ["standing-charges"]
        if prices is ECONOMY7:
            kinds += ["day-unit-rates", "night-unit-rates"]
            for kind in ("day", "night"):
                value = prices[f"{kind}-unit-rates"][DD]
                entry[f"{kind}_unit_rate_exc_vat"] = _pence(value)
                entry[f"{kind}_unit_rate_inc_vat"] = _pence(value * VAT)
        else:
            kinds.append("standard-unit-rates")
            now = self.sim.clock()
            value = prices["standard-unit-rates"][DD] if prices else self.agile_price(now)
            entry["standard_unit_rate_exc_vat"] = _pence(value)
            entry["standard_unit_rate_inc_vat"] = _pence(value * VAT)
        entry["links"] = [
            {"href": f"{base}/{k}/", "method": "GET", "rel": k.replace("-", "_")} for k in kinds
        ]
        return entry

    def _rates(self, m: re.Match[str], query: dict[str, str], now: datetime) -> SimResponse:
        product, fuel, tariff, kind = m["product"], m["fuel"], m["tariff"], m["kind"]
        if f"-{product}-" not in f"-{tariff}" or (fuel == "gas") != tariff.startswith("G-"):
            return detail(404, "Not found.")
        start = parse_param(query["period_from"]) if "period_from" in query else None
        if "period_to" in query and start is None:
            raise ValueError("period_to requires period_from.")
        end = parse_param(query["period_to"]) if "period_to" in query else None
        path = m.string
        if self._is_agile(tariff):
            if kind == "standing-charges":
                rows = [self._row(AGILE_STANDING, self.rates_from, None, None)]
                rows = [r for r in rows if self._overlaps(r, start, end)]
                return self.page(path, query, len(rows), lambda lo, hi: rows[lo:hi])
            if kind != "standard-unit-rates":
                return detail(404, "Not found.")
            return self._agile(path, query, now, start, end)
        prices = self._prices(tariff)
        if prices is None:
            return detail(404, "Not found.")
        if kind not in prices:
            if kind == "standard-unit-rates":
                return detail(400, "This tariff has day and night rates, not a standard rate.")
            return detail(404, "Not found.")
        rows = [
            self._row(value, self.rates_from, None, method)
            for method, value in prices[kind].items()
        ]
        rows = [r for r in rows if self._overlaps(r, start, end)]
        return self.page(path, query, len(rows), lambda lo, hi: rows[lo:hi])

    @staticmethod
    def _row(
        exc: Decimal, start: datetime, end: datetime | None, method: str | None
    ) -> dict[str, Any]:
        return {
            "value_exc_vat": _pence(exc),
            "value_inc_vat": _pence(exc * VAT),
            "valid_from": iso(start),
            "valid_to": iso(end) if end else None,
            "payment_method": method,
        }

    @staticmethod
    def _overlaps(row: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
        lo = parse_param(row["valid_from"])
        hi = parse_param(row["valid_to"]) if row["valid_to"] else None
        return (end is None or lo < end) and (start is None or hi is None or hi > start)

    # --- Agile -----------------------------------------------------------------------------

    def published_until(self, now: datetime) -> datetime:
        """The end of the published Agile prices at ``now``: 23:00 UK today or tomorrow."""
        local = now.astimezone(UK)
        day = local.date() + timedelta(days=1 if local.time() >= self.publish_at else 0)
        return datetime.combine(day, time(23, 0), UK).astimezone(UTC)

    def agile_price(self, start: datetime) -> Decimal:
        """Pence exc. VAT for the half-hour starting at ``start``: a pure function of the seed."""
        slot = int(start.timestamp()) // HALF_HOUR
        digest = hashlib.sha256(f"octomon.sim:{self.sim.seed}:agile:{slot}".encode()).digest()
        noise = int.from_bytes(digest[:2], "big") % 700  # 0..6.99 p
        hour = datetime.fromtimestamp(slot * HALF_HOUR, UTC).astimezone(UK).hour
        if 1 <= hour < 5 and digest[2] % 9 == 0:  # a windy night: the price goes negative
            return -Decimal(noise % 450 + 1) / 100
        base = 1200 if hour < 6 else 3300 if 16 <= hour < 19 else 2000
        return Decimal(base + noise) / 100

    def _agile(
        self,
        path: str,
        query: dict[str, str],
        now: datetime,
        start: datetime | None,
        end: datetime | None,
    ) -> SimResponse:
        first = max(self.rates_from, start or self.rates_from)
        stop = min(self.published_until(now), end or self.published_until(now))
        lo_slot = math.floor(first.timestamp() / HALF_HOUR)
        hi_slot = math.ceil(stop.timestamp() / HALF_HOUR)
        count = max(0, hi_slot - lo_slot)

        def rows(lo: int, hi: int) -> list[dict[str, Any]]:
            out = []
            for i in range(lo, hi):  # newest first
                t = datetime.fromtimestamp((hi_slot - 1 - i) * HALF_HOUR, UTC)
                out.append(
                    self._row(self.agile_price(t), t, t + timedelta(seconds=HALF_HOUR), None)
                )
            return out

        return self.page(path, query, count, rows)
