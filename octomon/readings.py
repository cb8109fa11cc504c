"""A reading, and its three encodings: the API item, the cache line, line protocol (the
last written by :mod:`octomon.store.points`, the one place for every measurement).

Two fuels: :class:`Reading` (electricity, ``energy_consumption``) and :class:`GasReading`
(``gas_consumption``, SPEC §11). A cache line without ``fuel`` is electricity; a gas line
carries ``"fuel":"gas"`` right after ``device_id`` (SPEC §4.5); :func:`from_cache_obj` picks.

Units (SPEC §3): the API sends Wh, W and pence as decimal *strings*; octomon stores kWh,
kW and GBP. The conversion is done exactly with :class:`~decimal.Decimal`; floats appear
only at the edge (JSON and line protocol).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

from octomon.store import points
from octomon.units import ELECTRICITY, GAS, decimal, decimal_or_none

if TYPE_CHECKING:
    from decimal import Decimal

MEASUREMENT = points.CONSUMPTION
SOURCE = points.SOURCE

# (our field, API field, divisor), in the order of SPEC §3 and of the cache layout.
FIELD_MAP: tuple[tuple[str, str, int], ...] = (
    ("consumption_delta", "consumptionDelta", 1000),
    ("demand", "demand", 1000),
    ("cost_delta", "costDelta", 100),
    ("consumption", "consumption", 1000),
    ("cost_delta_with_tax", "costDeltaWithTax", 100),
    ("export", "export", 1000),
)
FIELDS: tuple[str, ...] = tuple(name for name, _, _ in FIELD_MAP)

GAS_MEASUREMENT = points.GAS_CONSUMPTION
# The gas meter's API values are energy (Wh, pence), like electricity's (OCTOPUS_REST.md §6).
GAS_FIELD_MAP: tuple[tuple[str, str, int], ...] = (
    ("consumption_delta", "consumptionDelta", 1000),
    ("consumption", "consumption", 1000),
    ("cost_delta", "costDelta", 100),
    ("cost_delta_with_tax", "costDeltaWithTax", 100),
)
GAS_FIELDS: tuple[str, ...] = (*(name for name, _, _ in GAS_FIELD_MAP), "volume_delta")
VOLUME_CORRECTION = "1.02264"  # the UK's standard temperature/pressure correction factor


def parse_instant(value: str) -> datetime:
    """ISO 8601 with any offset (or ``Z``, or none = UTC) -> aware UTC, exactly."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_time(value: str) -> datetime:
    """:func:`parse_instant` to whole seconds: a reading's time."""
    return parse_instant(value).replace(microsecond=0)


def format_time(dt: datetime) -> str:
    """``2026-11-27T14:00:10Z``: the cache's and the CLI's UTC form."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_values(
    item: Mapping[str, Any], field_map: tuple[tuple[str, str, int], ...]
) -> dict[str, Decimal]:
    """The numbers of one API item in octomon's units, exactly (absent/empty/unusable skipped)."""
    values: dict[str, Decimal] = {}
    for name, api_name, divisor in field_map:
        number = decimal_or_none(item.get(api_name))
        if number is None:
            continue
        try:
            value = number / divisor
            finite = math.isfinite(float(value))  # beyond float's range: not a usable number
        except ArithmeticError:  # decimal.Overflow beyond the context's exponent range
            continue
        if finite:
            values[name] = value
    return values


def _api_time(item: Mapping[str, Any]) -> datetime | None:
    read_at = item.get("readAt")
    if not isinstance(read_at, str) or not read_at.strip():
        return None
    try:
        return parse_time(read_at)
    except (ValueError, OverflowError):  # unparseable, or out of datetime's range
        return None


def _obj_values(
    obj: Mapping[str, Any], names: tuple[str, ...]
) -> tuple[datetime, str, dict[str, float]]:
    """read_at, device_id and the numbers of a cache object; ``ValueError`` if unusable."""
    read_at = obj.get("read_at")
    if not isinstance(read_at, str):
        raise ValueError("no read_at")
    values: dict[str, float] = {}
    for name in names:
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{name} is not a number")
        values[name] = float(value)
        if values[name] != values[name] or values[name] in (float("inf"), float("-inf")):
            raise ValueError(f"{name} is not a finite number")
    device_id = obj.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise ValueError("no device_id")
    if not device_id.isprintable():  # a newline, say: line protocol cannot carry it
        raise ValueError("device_id holds a control character")
    if not values:
        raise ValueError("no values")
    return parse_time(read_at), device_id, values


def _known(reading: tuple[Any, ...], names: tuple[str, ...]) -> dict[str, float]:
    """The fields of ``reading`` that are known, in the order of ``names``."""
    out: dict[str, float] = {}
    for name in names:
        value = getattr(reading, name)
        if value is not None:
            out[name] = value
    return out


def _json_line(
    read_at: datetime, device_id: str, fuel: str | None, fields: dict[str, float]
) -> str:
    import json  # here: `cache status` and `status` import this module, never write lines

    parts = [f'"read_at":"{format_time(read_at)}"', f'"device_id":{json.dumps(device_id)}']
    if fuel is not None:
        parts.append(f'"fuel":"{fuel}"')
    parts.extend(f'"{k}":{json.dumps(v)}' for k, v in fields.items())
    return "{" + ",".join(parts) + "}"


class Reading(NamedTuple):
    """One reading in octomon's units. A NamedTuple: immutable and compact like a slotted
    dataclass, quicker to build in bulk, and ~3 ms cheaper to import (SPEC §7)."""

    read_at: datetime  # aware, UTC, whole seconds
    device_id: str
    consumption_delta: float | None = None  # kWh
    demand: float | None = None  # kW
    cost_delta: float | None = None  # GBP ex VAT
    consumption: float | None = None  # kWh, cumulative register
    cost_delta_with_tax: float | None = None  # GBP inc VAT
    export: float | None = None  # kWh, cumulative

    @property
    def fuel(self) -> str:
        """Not a field: a cache line without ``fuel`` is electricity (SPEC §4.5)."""
        return ELECTRICITY

    # --- from the API ---------------------------------------------------------------

    @classmethod
    def from_api(cls, item: Mapping[str, Any], device_id: str) -> Reading | None:
        """Parse one telemetry item; ``None`` when it has no ``readAt`` or no number."""
        ts = _api_time(item)
        if ts is None:
            return None
        values = _api_values(item, FIELD_MAP)
        if not values:
            return None
        return cls(ts, device_id, **{k: float(v) for k, v in values.items()})

    # --- the cache line (SPEC §4.5) ---------------------------------------------------

    def fields(self) -> dict[str, float]:
        """The known fields, in SPEC order."""
        return _known(self, FIELDS)

    def to_json(self) -> str:
        """The canonical compact cache line (no newline), keys in the SPEC order."""
        return _json_line(self.read_at, self.device_id, None, self.fields())

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Reading:
        """From a cache object (any key order, ints or floats); ``ValueError`` if unusable."""
        read_at, device_id, values = _obj_values(obj, FIELDS)
        return cls(read_at, device_id, **values)

    # --- InfluxDB line protocol ---------------------------------------------------------

    def to_line_protocol(self) -> str:
        return points.consumption(MEASUREMENT, self.device_id, self.fields(), self.read_at)


class GasReading(NamedTuple):
    """One gas half-hour (SPEC §3 ``gas_consumption``): energy in kWh, money in GBP, and the
    volume in m³ derived from the calorific value (the API gives energy, not volume)."""

    read_at: datetime  # aware, UTC, whole seconds: the half-hour's start
    device_id: str
    consumption_delta: float | None = None  # kWh
    consumption: float | None = None  # kWh, cumulative register
    cost_delta: float | None = None  # GBP ex VAT
    cost_delta_with_tax: float | None = None  # GBP inc VAT
    volume_delta: float | None = None  # m³ = kWh x 3.6 / CV / 1.02264

    @property
    def fuel(self) -> str:
        """Not a field: the cache line's ``fuel`` and the tally's key."""
        return GAS

    @classmethod
    def from_api(
        cls, item: Mapping[str, Any], device_id: str, calorific_value: Decimal
    ) -> GasReading | None:
        """Parse one gas telemetry item; ``None`` when it has no ``readAt`` or no number."""
        ts = _api_time(item)
        if ts is None:
            return None
        values = _api_values(item, GAS_FIELD_MAP)
        if not values:
            return None
        kwh = values.get("consumption_delta")
        if kwh is not None:
            values["volume_delta"] = volume_m3(kwh, calorific_value)
        return cls(ts, device_id, **{k: float(v) for k, v in values.items()})

    def fields(self) -> dict[str, float]:
        """The known fields, in SPEC §3 order."""
        return _known(self, GAS_FIELDS)

    def to_json(self) -> str:
        """The canonical cache line: ``"fuel":"gas"`` right after ``device_id`` (SPEC §4.5)."""
        return _json_line(self.read_at, self.device_id, GAS, self.fields())

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> GasReading:
        read_at, device_id, values = _obj_values(obj, GAS_FIELDS)
        return cls(read_at, device_id, **values)

    def to_line_protocol(self) -> str:
        return points.consumption(GAS_MEASUREMENT, self.device_id, self.fields(), self.read_at)


AnyReading = Reading | GasReading


def volume_m3(kwh: Decimal, calorific_value: Decimal) -> Decimal:
    """Gas energy to volume: m³ = kWh x 3.6 / CV / 1.02264 (CV in MJ/m³), in Decimal."""
    from decimal import Decimal

    return kwh * Decimal("3.6") / calorific_value / Decimal(VOLUME_CORRECTION)


def energy_kwh(m3: Decimal, calorific_value: Decimal) -> Decimal:
    """Gas volume to energy, the inverse of :func:`volume_m3`: kWh = m³ x 1.02264 x CV / 3.6."""
    from decimal import Decimal

    return m3 * Decimal(VOLUME_CORRECTION) * calorific_value / Decimal("3.6")


def calorific(value: float | str) -> Decimal:
    """GAS_CALORIFIC_VALUE as the Decimal the user wrote (39.5 stays 39.5, not its binary float)."""
    return decimal(value)


def from_cache_obj(obj: Mapping[str, Any]) -> AnyReading:
    """A cache object of either fuel: no ``fuel`` (or ``electricity``) is electricity."""
    fuel = obj.get("fuel")
    if fuel is None or fuel == ELECTRICITY:
        return Reading.from_obj(obj)
    if fuel == GAS:
        return GasReading.from_obj(obj)
    raise ValueError(f"unknown fuel {fuel!r}")


_T = TypeVar("_T", Reading, GasReading)


@overload
def parse_items(
    items: Iterable[Mapping[str, Any]], device_id: str
) -> tuple[list[Reading], int]: ...
@overload
def parse_items(
    items: Iterable[Mapping[str, Any]],
    device_id: str,
    parse: Callable[[Mapping[str, Any], str], _T | None],
) -> tuple[list[_T], int]: ...
def parse_items(
    items: Iterable[Mapping[str, Any]],
    device_id: str,
    parse: Callable[[Mapping[str, Any], str], Any] | None = None,
) -> tuple[list[Any], int]:
    """Parse API items with ``parse`` (default ``Reading.from_api``; gas passes its own);
    returns (readings sorted by time, number dropped)."""
    parse = parse or Reading.from_api
    readings: list[Any] = []
    dropped = 0
    for item in items:
        reading = parse(item, device_id) if isinstance(item, Mapping) else None
        if reading is None:
            dropped += 1
        else:
            readings.append(reading)
    readings.sort(key=lambda r: r.read_at)
    return readings, dropped
