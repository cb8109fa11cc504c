"""A reading, and its three encodings: the API item, the cache line, line protocol.

Units (SPEC §3): the API sends Wh, W and pence as decimal *strings*; octomon stores kWh,
kW and GBP. The conversion is done exactly with :class:`~decimal.Decimal`; floats appear
only at the edge (JSON and line protocol).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from decimal import Decimal

MEASUREMENT = "energy_consumption"
SOURCE = "octopus_home_mini"

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


def _decimal(value: Any) -> Decimal | None:
    # Imported here: `cache status` and `status` load this module but never parse the API.
    from decimal import Decimal, InvalidOperation

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


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

    # --- from the API ---------------------------------------------------------------

    @classmethod
    def from_api(cls, item: Mapping[str, Any], device_id: str) -> Reading | None:
        """Parse one telemetry item; ``None`` when it has no ``readAt`` or no number."""
        read_at = item.get("readAt")
        if not isinstance(read_at, str) or not read_at.strip():
            return None
        try:
            ts = parse_time(read_at)
        except (ValueError, OverflowError):  # unparseable, or out of datetime's range
            return None
        values: dict[str, float] = {}
        for name, api_name, divisor in FIELD_MAP:
            number = _decimal(item.get(api_name))
            if number is None:
                continue
            try:
                value = float(number / divisor)
            except ArithmeticError:  # decimal.Overflow beyond the context's exponent range
                continue
            if math.isfinite(value):  # beyond float's range: not a usable number
                values[name] = value
        if not values:
            return None
        return cls(ts, device_id, **values)

    # --- the cache line (SPEC §4.5) ---------------------------------------------------

    def fields(self) -> dict[str, float]:
        """The known fields, in SPEC order."""
        out: dict[str, float] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> str:
        """The canonical compact cache line (no newline), keys in the SPEC order."""
        import json  # here: `cache status` and `status` import this module, never write lines

        parts = [
            f'"read_at":"{format_time(self.read_at)}"',
            f'"device_id":{json.dumps(self.device_id)}',
        ]
        parts.extend(f'"{k}":{json.dumps(v)}' for k, v in self.fields().items())
        return "{" + ",".join(parts) + "}"

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Reading:
        """From a cache object (any key order, ints or floats); ``ValueError`` if unusable."""
        read_at = obj.get("read_at")
        if not isinstance(read_at, str):
            raise ValueError("no read_at")
        values: dict[str, float] = {}
        for name in FIELDS:
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
        if not values:
            raise ValueError("no values")
        return cls(parse_time(read_at), device_id, **values)

    # --- InfluxDB line protocol ---------------------------------------------------------

    def to_line_protocol(self) -> str:
        fields = ",".join(f"{k}={float(v)!r}" for k, v in self.fields().items())
        return (
            f"{MEASUREMENT},device_id={escape_tag(self.device_id)},source={SOURCE} "
            f"{fields} {int(self.read_at.timestamp())}"
        )


def escape_tag(value: str) -> str:
    """Line-protocol escaping for a tag value: commas, equals signs and spaces."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def parse_items(items: Iterable[Mapping[str, Any]], device_id: str) -> tuple[list[Reading], int]:
    """Parse API items; returns (readings sorted by time, number dropped)."""
    readings: list[Reading] = []
    dropped = 0
    for item in items:
        reading = Reading.from_api(item, device_id) if isinstance(item, Mapping) else None
        if reading is None:
            dropped += 1
        else:
            readings.append(reading)
    readings.sort(key=lambda r: r.read_at)
    return readings, dropped
