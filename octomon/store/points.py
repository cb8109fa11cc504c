"""InfluxDB line protocol, written once for the five measurements of SPEC §3.

One rule for each part of a point: tag values escaped (:func:`escape_tag`), tags in key
order, every number a float written as Python's ``repr`` (the shortest text that reads back
as the same float) unless it is an :class:`Integer` (``12i``), the time in whole seconds
(the writes are at second precision), and a list of points sent in batches of
:data:`BATCH` (:func:`write`).

The cache sync's byte fast path (``octomon.store.sync``) turns canonical cache lines into
the same bytes without going through here; ``tests/unit/test_points.py`` proves both agree.

Standard library only, nothing heavy: ``cache export`` and the daemon import this.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from decimal import Decimal

# The measurements (SPEC §3).
CONSUMPTION = "energy_consumption"
GAS_CONSUMPTION = "gas_consumption"
TARIFF = "energy_tariff"
SETTLED = "energy_settled"
RECONCILIATION = "energy_reconciliation"

SOURCE = "octopus_home_mini"  # the readings' ``source`` tag
BATCH = 5000  # points per write request


class Integer(int):
    """A field InfluxDB keeps as an integer (``readings=180i``); any other number is a float."""


Number: TypeAlias = "float | Decimal | Integer"


class LineSink(Protocol):
    """What :func:`write` needs of :class:`octomon.store.influx.InfluxSink`."""

    def write_lines(self, body: bytes | str, count: int) -> None: ...


def escape_tag(value: str) -> str:
    """Line-protocol escaping for a tag value: backslashes, commas, equals signs, spaces."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def number(value: Number) -> str:
    """A field value: ``12i`` for an :class:`Integer`, else the float's ``repr``."""
    if isinstance(value, Integer):
        return f"{int(value)}i"
    return repr(float(value))


def seconds(at: datetime) -> int:
    """The point's time at second precision (``at`` is aware)."""
    return int(at.timestamp())


def point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, Number], at: datetime
) -> str:
    """One point: tags escaped and in key order, fields in the order given."""
    tag_text = "".join(f",{k}={escape_tag(v)}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={number(v)}" for k, v in fields.items())
    return f"{measurement}{tag_text} {field_text} {seconds(at)}"


# --- the five measurements ------------------------------------------------------------------


def consumption(
    measurement: str, device_id: str, fields: Mapping[str, Number], read_at: datetime
) -> str:
    """A reading of either fuel (``energy_consumption`` / ``gas_consumption``)."""
    return point(measurement, {"device_id": device_id, "source": SOURCE}, fields, read_at)


def tariff(
    fuel: str, direction: str, tariff_code: str, fields: Mapping[str, Number], at: datetime
) -> str:
    """``energy_tariff``: a half-hour's unit rates, or a UK day's standing charges."""
    tags = {"direction": direction, "fuel": fuel, "tariff_code": tariff_code}
    return point(TARIFF, tags, fields, at)


def settled(
    fuel: str, direction: str, meter: str, kwh: Number, start: datetime, volume: Number | None
) -> str:
    """``energy_settled``: a settled half-hour in kWh, and a gas meter's m³ as ``volume``."""
    fields: dict[str, Number] = {"consumption": kwh}
    if volume is not None:
        fields["volume"] = volume
    return point(SETTLED, {"direction": direction, "fuel": fuel, "meter": meter}, fields, start)


def reconciliation(fuel: str, fields: Mapping[str, Number], start: datetime) -> str:
    """``energy_reconciliation``: a settled half-hour against the Home Mini's tally."""
    return point(RECONCILIATION, {"fuel": fuel}, fields, start)


# --- sending them ------------------------------------------------------------------------------


def batches(lines: Sequence[str], size: int = BATCH) -> Iterator[tuple[str, int]]:
    """(body, points) per request: ``size`` points at most, each line ending in a newline."""
    for i in range(0, len(lines), size):
        chunk = lines[i : i + size]
        yield "\n".join(chunk) + "\n", len(chunk)


def write(sink: LineSink, lines: Iterable[str], size: int = BATCH) -> None:
    """Send ``lines`` in batches (a year of Agile prices is 17,520 points); raises the first
    failure's error (what went before it was written: writing a point twice is harmless)."""
    for body, count in batches(list(lines), size):
        sink.write_lines(body, count)
