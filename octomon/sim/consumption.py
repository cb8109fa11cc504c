"""The simulated meters' settled half-hourly consumption (OCTOPUS_REST.md §4, SPEC §8/§10).

The gas meter (``gas-meter-points/{mprn}/meters/{serial}/consumption/``, the smart one only)
answers in m³, as a SMETS2 meter does: the household's gas energy at 39.5 MJ/m³, to 3 dp.

``GET /v1/electricity-meter-points/{mpan}/meters/{serial}/consumption/`` answers from the
same household model as the telemetry, but from the *meter's* register: every 10-s step
counts, including those the Home Mini "missed" (its gaps, a freeze, the bad day). So for a
half-hour, settled kWh − the Home Mini's stored kWh = the energy of the missed steps, exactly.

Like the real endpoint: ``interval_start``/``interval_end`` in UK time (``+01:00`` in BST,
``Z`` in GMT), newest first unless ``order_by=period``, ``page_size`` (default 100, at most
25,000; ``page_size_cap`` caps it further so tests exercise ``next``), ``page`` and an
absolute ``next``, ``period_from`` inclusive and ``period_to`` exclusive (a datetime without
an offset is UK time), data only up to the end of yesterday (UK), and sometimes a row more on
each side than asked for (``extra_rows``).

Knobs, plain attributes of :class:`SimSettled` (``sim.settled``):

* ``delay``: yesterday's data appears this long after UK midnight (default 2 h).
* ``bad_day``: a UK day on which the Home Mini misses about a fifth of its readings (40
  holes of 3-12 minutes, never two within 10 minutes of each other, so no "stale" alert),
  while the meter measures everything. Default: the day before yesterday at construction.
* ``extra_rows``: on (the default), a request whose ``period_from`` starts an even
  half-hour gets the half-hour before it and the one at ``period_to`` too, when available.
* ``served``: ``{(serial, interval start UTC): kWh}`` of every row answered (tests compare).
* ``old_gas_until``: a gas meter exchange. The replaced meter (``GAS_SERIAL_OLD``, no smart
  device) answers for the half-hours before this instant too, in m³, each a tenth more than
  the smart meter's figure (so a test sees which serial counted); the smart meter answers as
  always. Default None: the old serial has no consumption (a 404).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from octomon.readings import volume_m3
from octomon.sim.account import ELECTRICITY_SERIAL, GAS_SERIAL, GAS_SERIAL_OLD, MPAN, MPRN
from octomon.sim.gas import gas_model
from octomon.sim.household import _DAY, _STEP, _model
from octomon.uktime import UK, day_bounds, local_iso, uk_day, uk_midnight

if TYPE_CHECKING:
    from octomon.sim.graphql import SimHomeMini
    from octomon.sim.protocol import SimResponse

UTC = timezone.utc
HALF_HOUR = 1800
_STEPS = HALF_HOUR // _STEP
MAX_PAGE_SIZE = 25_000
DEFAULT_PAGE_SIZE = 100
DEFAULT_LOOKBACK = timedelta(days=30)  # rows served when no period_from is given
BAD_DAY_HOLES = 40
CALORIFIC_VALUE = Decimal("39.5")  # MJ/m³: the sim's gas, as octomon's default


class SimSettled:
    """The meter behind the Home Mini: settled consumption, and the Home Mini's bad day."""

    def __init__(self, sim: SimHomeMini) -> None:
        self.sim = sim
        self.delay = timedelta(hours=2)
        self.bad_day: date | None = uk_day(sim.clock()) - timedelta(days=2)
        self.extra_rows = True
        self.page_size_cap: int | None = None
        self.served: dict[tuple[str, datetime], float] = {}
        self.old_gas_until: datetime | None = None
        self.requests = 0
        self._holes_of: date | None = None
        self._holes: frozenset[int] = frozenset()
        for kind in ("electricity", "gas"):
            sim.rest.route(
                rf"(?P<kind>{kind})-meter-points/(?P<point>[^/]+)/meters/(?P<serial>[^/]+)/"
                "consumption",
                self.answer,
                auth=True,
            )

    # --- the meter's truth -------------------------------------------------------------

    def wh(self, start: datetime) -> int:
        """Whole Wh the meter measured in the UTC half-hour starting at ``start``."""
        t = int(start.timestamp())
        day, offset = divmod(t - t % HALF_HOUR, _DAY)
        i = offset // _STEP
        return sum(_model(self.sim.seed).day(day).delta[i : i + _STEPS])

    def kwh(self, start: datetime) -> Decimal:
        """The settled kWh of the half-hour at ``start`` (what the endpoint answers)."""
        return Decimal(self.wh(start)) / 1000

    def gas_m3(self, start: datetime) -> Decimal:
        """The gas meter's m³ for the half-hour at ``start`` (SMETS2 reports volume): the
        household's gas energy at :data:`CALORIFIC_VALUE`, to 3 decimal places."""
        t = int(start.timestamp())
        day, offset = divmod(t - t % HALF_HOUR, _DAY)
        wh = gas_model(self.sim.seed).day(day).wh[offset // HALF_HOUR]
        return volume_m3(Decimal(wh) / 1000, CALORIFIC_VALUE).quantize(Decimal("0.001"))

    def gas_kwh(self, start: datetime) -> Decimal:
        """The gas meter's kWh for the half-hour at ``start`` (a SMETS1 meter reports energy),
        to 3 decimal places."""
        t = int(start.timestamp())
        day, offset = divmod(t - t % HALF_HOUR, _DAY)
        wh = gas_model(self.sim.seed).day(day).wh[offset // HALF_HOUR]
        return (Decimal(wh) / 1000).quantize(Decimal("0.001"))

    def gas_value(self, start: datetime) -> Decimal:
        """What the gas meter's consumption endpoint says: in its ``consumptionUnits``."""
        return self.gas_kwh(start) if self.sim.gas_units == "kWh" else self.gas_m3(start)

    def old_gas_m3(self, start: datetime) -> Decimal:
        """The replaced gas meter's m³ for the half-hour at ``start`` (``old_gas_until``)."""
        return (self.gas_m3(start) * Decimal("1.1")).quantize(Decimal("0.001"))

    def available_until(self, now: datetime) -> datetime:
        """The end of the newest settled half-hour at ``now``: the end of yesterday (UK),
        once ``delay`` has passed since UK midnight; else the end of the day before."""
        midnight = uk_midnight(uk_day(now))
        if now >= midnight + self.delay:
            return midnight
        return uk_midnight(uk_day(now) - timedelta(days=1))

    # --- the Home Mini's bad day -------------------------------------------------------

    def hidden(self, ts: int) -> bool:
        """Is the 10-s reading at Unix time ``ts`` one the Home Mini misses on its bad day?"""
        if self.bad_day is None:
            return False
        if self._holes_of != self.bad_day:
            self._holes, self._holes_of = self._make_holes(self.bad_day), self.bad_day
        return ts in self._holes

    def _make_holes(self, day: date) -> frozenset[int]:
        start, end = (int(t.timestamp()) for t in day_bounds(day))
        steps = (end - start) // _STEP
        segment = steps // BAD_DAY_HOLES
        rng = random.Random(f"octomon.sim:{self.sim.seed}:{day.isoformat()}:bad-day")
        holes: set[int] = set()
        for k in range(BAD_DAY_HOLES):
            length = rng.randint(18, 72)
            at = k * segment + rng.randint(30, segment - 30 - length)
            holes.update(start + (at + j) * _STEP for j in range(length))
        return frozenset(holes)

    # --- the endpoint ------------------------------------------------------------------

    def answer(self, m: re.Match[str], query: dict[str, str], now: datetime) -> SimResponse:
        """One consumption request (authorised by ``sim.rest``, under the sim's lock)."""
        from octomon.sim.protocol import json_answer

        self.requests += 1
        meter = (m["kind"], m["point"], m["serial"])
        known = [("electricity", MPAN, ELECTRICITY_SERIAL)]
        if not self.sim.no_gas:
            known.append(("gas", MPRN, GAS_SERIAL))
            if self.old_gas_until is not None:
                known.append(("gas", MPRN, GAS_SERIAL_OLD))
        if meter not in known:
            return json_answer(404, {"detail": "Not found."})
        try:
            rows, page, size = self._rows(query, now)
        except ValueError as err:
            return json_answer(400, json.loads(str(err)))
        if m["serial"] == GAS_SERIAL_OLD and self.old_gas_until is not None:
            end = self.old_gas_until - timedelta(seconds=HALF_HOUR)
            rows = [t for t in rows if t <= end]
        first = (page - 1) * size
        if page > 1 and first >= len(rows):
            return json_answer(404, {"detail": "Invalid page."})
        path = f"/v1/{m['kind']}-meter-points/{m['point']}/meters/{m['serial']}/consumption/"

        def link(n: int) -> str:
            params = {**{k: v for k, v in query.items() if k != "page"}, "page": str(n)}
            return f"{self.sim.rest.origin}{path}?{urlencode(params)}"

        body: dict[str, Any] = {
            "count": len(rows),
            "next": link(page + 1) if first + size < len(rows) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [
                self._row(m["kind"], m["serial"], start) for start in rows[first : first + size]
            ],
        }
        return json_answer(200, body)

    def _row(self, kind: str, serial: str, start: datetime) -> dict[str, Any]:
        if serial == GAS_SERIAL_OLD:
            value = self.old_gas_m3(start)
        else:
            value = self.gas_value(start) if kind == "gas" else self.kwh(start)
        if self.sim.record:
            self.served[(serial, start)] = float(value)
        return {
            "consumption": float(value),
            "interval_start": local_iso(start),
            "interval_end": local_iso(start + timedelta(seconds=HALF_HOUR)),
        }

    def _rows(self, get: dict[str, str], now: datetime) -> tuple[list[datetime], int, int]:
        """The half-hour starts answered, in the asked order; the page and page size."""
        until = self.available_until(now)
        lo = _instant(get, "period_from")
        hi = _instant(get, "period_to")
        if hi is not None and lo is None:
            raise ValueError(json.dumps({"period_to": ["period_to needs period_from."]}))
        if lo is None:
            lo = until - DEFAULT_LOOKBACK
        first = -(-int(lo.timestamp()) // HALF_HOUR) * HALF_HOUR
        last = int(min(hi, until).timestamp()) if hi is not None else int(until.timestamp())
        if self.extra_rows and (first // HALF_HOUR) % 2 == 0:
            first -= HALF_HOUR
            last = min(last + HALF_HOUR, int(until.timestamp()))
        starts = [
            datetime.fromtimestamp(t, UTC)
            for t in range(first, last - HALF_HOUR + 1, HALF_HOUR)
            if t + HALF_HOUR <= int(until.timestamp())
        ]
        order = get.get("order_by", "-period")
        if order not in ("period", "-period"):
            raise ValueError(json.dumps({"order_by": [f'"{order}" is not a valid choice.']}))
        if order == "-period":
            starts.reverse()
        page = _positive(get, "page", 1)
        size = min(_positive(get, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        if self.page_size_cap is not None:
            size = min(size, self.page_size_cap)
        return starts, page, size


def _instant(get: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 parameter; without an offset it is UK time (OCTOPUS_REST.md §0)."""
    text = get.get(name)
    if text is None:
        return None
    try:
        text = text.strip()
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except (ValueError, IndexError):
        raise ValueError(json.dumps({name: ["Enter a valid date/time."]})) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UK)).astimezone(UTC)


def _positive(get: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(get.get(name, default))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(json.dumps({name: ["A positive integer is required."]}))
    return value
