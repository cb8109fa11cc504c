"""The settled consumption octomon fetched, kept in ``CACHE_DIR/settled.json`` (SPEC §10),
and filling it for the commands (``reconcile``, ``costs``).

For the commands (``reconcile``, ``costs``): they answer from here without an API call, and
the daemon alerts from here whichever process fetched the data. Values are kept as the API
gave them, in the meter's unit (SPEC §10: electricity kWh; gas kWh or m³, the GraphQL
meter's ``consumptionUnits``): m³ becomes kWh with ``GAS_CALORIFIC_VALUE`` when it is
priced or reported, never when kept, so a corrected calorific value re-prices the past. A
unit octomon does not know is kept, and named, never guessed. Not the InfluxDB replay log
(the API is): this file only remembers the last :data:`KEEP` of half-hours per meter.
Read-modify-write under ``CACHE_DIR/settled.lock``, replaced atomically, 0600.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octomon import jsonfile
from octomon.errors import NotFound
from octomon.jsonfile import JsonFile, Kind
from octomon.octopus.consumption import Meter, Rest, discover, fetch, meters_of
from octomon.octopus.gas import KWH, M3, GasMeter, unit_of
from octomon.readings import energy_kwh, format_time, volume_m3
from octomon.uktime import days, half_hours, uk_day, uk_midnight
from octomon.units import ELECTRICITY, GAS

if TYPE_CHECKING:
    from octomon.octopus.rest import RestClient
    from octomon.state import StateStore

log = logging.getLogger(__name__)

SETTLED_FILE = "settled.json"
LOCK_FILE = "settled.lock"
KEEP = timedelta(days=400)  # what `costs`/`reconcile` asked for is kept for a year and more
RECHECK = timedelta(hours=1)  # `reconcile` does not ask again sooner
ABSENT = timedelta(days=1)  # a meter the API has no consumption for is asked again daily
DEFAULT_CV = Decimal("39.5")  # MJ/m³, GAS_CALORIFIC_VALUE's default
_VERSION = 1


@dataclass
class MeterData:
    meter: Meter
    values: dict[datetime, float]  # UTC half-hour start -> the API's value, in ``unit``
    checked_at: datetime | None = None  # the last time the API was asked
    unit: str | None = KWH  # kWh or m³ (gas: consumptionUnits); else not known or not ours
    checked_from: datetime | None = None  # ... from here to checked_at (None: unknown)
    checked_to: datetime | None = None  # ... or to here, when it asked less (None: checked_at)

    @property
    def usable(self) -> bool:
        return self.unit in (KWH, M3)


class SettledData:
    """What was fetched, per meter: ``settled_kwh(half_hour)``, UK days, completeness."""

    def __init__(
        self, meters: dict[str, MeterData] | None = None, calorific_value: Decimal = DEFAULT_CV
    ) -> None:
        self.meters = meters or {}
        self.calorific_value = calorific_value  # GAS_CALORIFIC_VALUE, applied when read
        self._order: dict[tuple[object, ...], list[MeterData]] = {}

    def of(self, fuel: str = ELECTRICITY, direction: str = "import") -> list[MeterData]:
        """The meters of a fuel and direction whose unit octomon knows."""
        return [
            m
            for m in self.meters.values()
            if m.meter.fuel == fuel and m.meter.direction == direction and m.usable
        ]

    def unknown_units(self) -> list[MeterData]:
        """Meters with values in a unit octomon does not know (named by the callers)."""
        return [m for m in self.meters.values() if m.values and not m.usable]

    def kwh(self, m: MeterData, value: float) -> float:
        """One of ``m``'s values as kWh (m³ with the calorific value and volume correction)."""
        if m.unit == M3:
            return float(energy_kwh(Decimal(repr(value)), self.calorific_value))
        return value

    def m3(self, m: MeterData, value: float) -> float:
        """One of a gas meter's values as m³ (kWh the other way round)."""
        if m.unit == M3:
            return value
        return float(volume_m3(Decimal(repr(value)), self.calorific_value))

    def settled_kwh(
        self, half_hour: datetime, fuel: str = ELECTRICITY, direction: str = "import"
    ) -> float | None:
        """The settled kWh of the half-hour starting at ``half_hour`` (None: not settled).

        Several meter points add up; several serials of one meter point (a meter exchange)
        never do: one value per point and half-hour, the current meter's (the serial with
        the newest settled half-hour, the one the smart meter's telemetry comes from)."""
        per_point: dict[str, float] = {}
        for m in self._current_first(fuel, direction):
            if half_hour in m.values and m.meter.point not in per_point:
                per_point[m.meter.point] = self.kwh(m, m.values[half_hour])
        return sum(per_point.values()) if per_point else None

    def _current_first(self, fuel: str, direction: str) -> list[MeterData]:
        meters = self.of(fuel, direction)
        key = (fuel, direction, *((m.meter.key, len(m.values)) for m in meters))
        order = self._order.get(key)
        if order is None:  # the newest half-hour is looked for once, not per half-hour
            oldest = datetime.min.replace(tzinfo=timezone.utc)
            order = sorted(
                meters,
                key=lambda m: (max(m.values) if m.values else oldest, m.meter.serial),
                reverse=True,
            )
            self._order[key] = order
        return order

    def day_settled(self, day: date, fuel: str = ELECTRICITY, direction: str = "import") -> bool:
        """Every half-hour of the UK day (46, 48 or 50) has a settled value."""
        meters = self.of(fuel, direction)
        return bool(meters) and all(any(hh in m.values for m in meters) for hh in half_hours(day))

    def newest(self, fuel: str = ELECTRICITY, direction: str = "import") -> datetime | None:
        starts = [max(m.values) for m in self.of(fuel, direction) if m.values]
        return max(starts) if starts else None


class SettledStore:
    """``CACHE_DIR/settled.json`` (:mod:`octomon.jsonfile`); see the module docstring."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.file = JsonFile(self.cache_dir, KIND, LOCK_FILE)
        self.path = self.file.path
        self.lock_path = self.file.lock_path

    def load(self) -> SettledData:
        """What was kept (empty when none; a damaged file is set aside)."""
        return self.file.load()

    def add(
        self,
        meter: Meter,
        values: dict[datetime, float],
        checked_at: datetime,
        unit: str | None = KWH,
        checked_from: datetime | None = None,
        checked_to: datetime | None = None,
    ) -> SettledData:
        """Merge fetched half-hours (as the API gave them, in ``unit``; None: the unit is not
        known yet) in, under the lock; OSError if not written."""

        def merge(data: SettledData) -> None:
            entry = data.meters.setdefault(meter.key, MeterData(meter, {}, unit=unit))
            entry.meter = meter
            entry.checked_at = checked_at
            entry.checked_from = checked_from
            entry.checked_to = checked_to
            entry.unit = unit if unit is not None else entry.unit
            entry.values.update(values)
            if entry.values:
                horizon = max(entry.values) - KEEP
                entry.values = {k: v for k, v in sorted(entry.values.items()) if k >= horizon}

        return self.file.update(merge)[0]


def _encode(data: SettledData) -> dict[str, Any]:
    meters: dict[str, Any] = {}
    for key, m in sorted(data.meters.items()):
        meters[key] = {
            "fuel": m.meter.fuel,
            "direction": m.meter.direction,
            "point": m.meter.point,
            "serial": m.meter.serial,
            "checked_at": format_time(m.checked_at) if m.checked_at else None,
            "checked_from": format_time(m.checked_from) if m.checked_from else None,
            **({"checked_to": format_time(m.checked_to)} if m.checked_to else {}),
            "unit": m.unit,
            "half_hours": {format_time(k): v for k, v in sorted(m.values.items())},
        }
    return {"meters": meters}


def _decode(obj: dict[str, Any]) -> SettledData:
    """Strict: a value of the wrong type anywhere is damage."""

    def halves(table: Any, what: str) -> dict[datetime, float]:
        return {
            jsonfile.instant(k).astimezone(timezone.utc): jsonfile.number(v, what)
            for k, v in jsonfile.mapping(table, what).items()
        }

    meters: dict[str, MeterData] = {}
    for key, m in jsonfile.mapping(obj["meters"], "meters").items():
        m = jsonfile.mapping(m, "a meter")
        meter = Meter(*(jsonfile.text(m[k], k) for k in ("fuel", "direction", "point", "serial")))
        checked = m.get("checked_at")
        at = jsonfile.instant(checked) if checked is not None else None
        since = m.get("checked_from")
        since_at = jsonfile.instant(since) if since is not None else None
        to = m.get("checked_to")
        to_at = jsonfile.instant(to) if to is not None else None
        values = halves(m["half_hours"], "half_hours")
        if "unit" in m:
            unit = jsonfile.text(m["unit"], "unit") if m["unit"] is not None else None
        elif meter.fuel == GAS:  # before units were kept: kWh at 39.5, the m³ as "volumes"
            unit, values = M3, halves(m.get("volumes", {}), "volumes")
        else:
            unit = KWH
        meters[str(key)] = MeterData(meter, values, at, unit, since_at, to_at)
    return SettledData(meters)


KIND: Kind[SettledData] = Kind(
    name=SETTLED_FILE,
    version=_VERSION,
    decode=_decode,
    encode=_encode,
    empty=SettledData,
    held=jsonfile.days_held("settled consumption"),
    then="settled data is fetched again",
)


Units = Callable[[Meter], str | None]  # a meter's unit as the API names it (None: unknown)


def electricity_in_kwh(meter: Meter) -> str | None:
    """The unit rule without a gas meter known: electricity is kWh; gas is not known."""
    return KWH if meter.fuel == ELECTRICITY else None


def units_from_state(store: StateStore) -> Units:
    """The units the daemon's gas discovery kept in ``state.json`` (its smart gas meter's
    ``consumptionUnits``, and those of its point's other meters, a replaced one);
    electricity is kWh."""

    def unit(meter: Meter) -> str | None:
        if meter.fuel == ELECTRICITY:
            return KWH
        state = store.load()
        if state.gas_serial == meter.serial:
            return state.gas_units
        return dict(GasMeter.others_from(state.gas_others)).get(meter.serial)

    return unit


def keep(
    settled: SettledStore,
    meter: Meter,
    values: dict[datetime, float],
    now: datetime,
    units: Units = electricity_in_kwh,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SettledData:
    """Into ``settled.json`` as the API gave them, with the meter's unit (``kWh``, ``m³``, a
    unit octomon does not know as it was said, or None while not known), and that
    ``[since, until)`` (``until`` None: ``now``) was asked at ``now``."""
    said = units(meter)
    unit = unit_of(said) or said
    return settled.add(meter, values, now, unit, since, until)


def absent(data: SettledData, meter: Meter, now: datetime) -> bool:
    """The API had no consumption for ``meter`` when last asked, less than a day ago."""
    entry = data.meters.get(meter.key)
    return (
        entry is not None
        and not entry.values
        and entry.checked_at is not None
        and entry.checked_at > now - ABSENT
    )


def _day_in(data: SettledData, meter: Meter, day: date) -> bool:
    values = data.meters[meter.key].values
    return all(hh in values for hh in half_hours(day))


def fill(
    rest: Callable[[], Rest],
    meters: list[Meter],
    settled: SettledStore,
    since: date,
    until: date,
    now: datetime,
    calorific_value: Decimal = DEFAULT_CV,
    units: Units = electricity_in_kwh,
) -> tuple[SettledData, int]:
    """``octomon reconcile``/``costs``: fetch the settled UK days in ``[since, until]`` the
    file lacks, before today, in one request per meter. A settled day is never asked again;
    a day the API was asked for within the last hour (and had not settled) is not asked
    again yet — days outside that span are.
    ``rest`` makes the client when a request is needed (none: no ``requests`` import).
    Returns the data and the number of meters asked; raises the Octopus errors."""
    data = settled.load()
    data.calorific_value = calorific_value
    asked = 0
    today = uk_day(now)
    for meter in meters:
        entry = data.meters.get(meter.key)
        if absent(data, meter, now):
            continue
        recent = (
            (entry.checked_from, entry.checked_to or entry.checked_at)
            if entry is not None
            and entry.checked_at
            and entry.checked_from
            and entry.checked_at > now - RECHECK
            else None
        )
        lacking = [
            d
            for d in days(since, min(until, today - timedelta(days=1)))
            if (entry is None or not all(hh in entry.values for hh in half_hours(d)))
            and (recent is None or not recent[0] <= uk_midnight(d) < recent[1])
        ]
        if not lacking:
            continue
        lo, hi = uk_midnight(lacking[0]), min(uk_midnight(lacking[-1] + timedelta(days=1)), now)
        asked += 1
        try:
            values = fetch(rest(), meter, lo, hi)
        except NotFound:
            values = {}  # remembered as absent for a day
        data = keep(settled, meter, values, now, units, lo, hi)
        data.calorific_value = calorific_value
    return data, asked


def known_meters(
    cache_dir: Path, rest: Callable[[], RestClient], account_number: str
) -> list[Meter]:
    """The account's meters without a call when they are known: from ``tariffs.json`` (the
    tariffs job reads the account daily), else ``settled.json``, else the account."""
    from octomon.billing.tariffs import TariffCache

    cached = TariffCache(cache_dir).load()
    if cached is not None and cached.points:
        return meters_of(cached.points)
    kept = [m.meter for m in SettledStore(cache_dir).load().meters.values()]
    return kept or discover(rest(), account_number)
