"""The Home Mini's own tally (SPEC §10): per half-hour, the distinct readings stored and
their energy, for the last 35 days, in ``CACHE_DIR/tally.json``.

A reading stored twice (the overlap, a restart, a second backfill, ``run`` and ``backfill``
at once) must count once, without keeping every timestamp: each half-hour keeps a bitmap of
its 180 ten-second slots and the energy of the slots whose bit it set. Merging a reading is
"set the bit; add its energy only if the bit was clear", which is idempotent and
order-independent, so the tally of any sequence of stores is the tally of the set of
distinct readings. Energy is kept as an integer of micro-kWh (exact for the API's Wh
values), so the sum does not depend on the order either. The first value stored for a slot
wins.

Every change is a read-modify-write under ``CACHE_DIR/tally.lock`` (``fcntl``), and the file
is replaced atomically (0600), so ``run`` and ``backfill`` can both record at once.

Gas half-hours use the same structure (a gas reading sits in slot 0 of its half-hour);
their readings count is not a coverage figure (gas reports half-hourly).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from octomon import fsutil
from octomon.readings import AnyReading, GasReading, format_time, parse_instant
from octomon.units import ELECTRICITY as ELECTRICITY  # re-exported: the tally's fuel keys
from octomon.units import GAS as GAS

log = logging.getLogger(__name__)

TALLY_FILE = "tally.json"
LOCK_FILE = "tally.lock"
HALF_HOUR = 1800
SLOT = 10
SLOTS = HALF_HOUR // SLOT  # 180 ten-second readings make a complete half-hour
KEEP = timedelta(days=35)
_MICRO = 1_000_000  # energy is kept in micro-kWh
_VERSION = 1
_PENDING_MAX = 200_000  # readings kept in memory while the file cannot be written


def half_hour_of(at: datetime) -> datetime:
    """The UTC-aligned start of the half-hour holding ``at``."""
    t = int(at.timestamp())
    return datetime.fromtimestamp(t - t % HALF_HOUR, timezone.utc)


def fuel_of(reading: AnyReading) -> str:
    return GAS if isinstance(reading, GasReading) else ELECTRICITY


@dataclass(frozen=True)
class HalfHour:
    """One half-hour of the tally: which slots were stored, and their energy."""

    start: datetime
    bits: int  # bit i = the reading at start + 10 s * i was stored
    micro_kwh: int

    @property
    def readings(self) -> int:
        return self.bits.bit_count()

    @property
    def kwh(self) -> float:
        return self.micro_kwh / _MICRO

    @property
    def coverage(self) -> float:
        """Readings stored ÷ 180 (electricity only)."""
        return self.readings / SLOTS

    def missing_slots(self) -> list[int]:
        return [i for i in range(SLOTS) if not self.bits >> i & 1]


class TallyData:
    """An immutable view of the tally: ``{fuel: {half-hour start (Unix s): (bits, µkWh)}}``."""

    def __init__(self, fuels: dict[str, dict[int, tuple[int, int]]] | None = None) -> None:
        self._fuels = fuels or {}

    def half_hour(self, start: datetime, fuel: str = ELECTRICITY) -> HalfHour | None:
        """The half-hour starting at ``start`` (UTC-aligned), or None if nothing was stored."""
        key = int(start.timestamp())
        entry = self._fuels.get(fuel, {}).get(key)
        if entry is None:
            return None
        return HalfHour(start.astimezone(timezone.utc), entry[0], entry[1])

    def kwh(self, start: datetime, fuel: str = ELECTRICITY) -> float | None:
        """The energy the Home Mini stored for the half-hour at ``start``, or None."""
        hh = self.half_hour(start, fuel)
        return None if hh is None else hh.kwh

    def half_hours(
        self, fuel: str = ELECTRICITY, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[HalfHour]:
        """Every half-hour of ``fuel`` with data in ``[since, until)``, oldest first."""
        lo = int(since.timestamp()) if since else None
        hi = int(until.timestamp()) if until else None
        for key, (bits, micro) in sorted(self._fuels.get(fuel, {}).items()):
            if (lo is None or key >= lo) and (hi is None or key < hi):
                yield HalfHour(datetime.fromtimestamp(key, timezone.utc), bits, micro)

    def fuels(self) -> list[str]:
        return sorted(self._fuels)


def merge(
    fuels: dict[str, dict[int, tuple[int, int]]], readings: Iterable[AnyReading]
) -> tuple[int, int]:
    """Count ``readings`` into ``fuels`` in place; (readings newly counted, half-hours touched)."""
    added = 0
    touched: set[tuple[str, int]] = set()
    for r in readings:
        t = int(r.read_at.timestamp())
        key = t - t % HALF_HOUR
        bit = 1 << ((t - key) // SLOT)
        fuel = fuel_of(r)
        table = fuels.setdefault(fuel, {})
        bits, micro = table.get(key, (0, 0))
        if bits & bit:
            continue
        energy = r.consumption_delta
        table[key] = (bits | bit, micro + (round(energy * _MICRO) if energy is not None else 0))
        added += 1
        touched.add((fuel, key))
    return added, len(touched)


def prune(fuels: dict[str, dict[int, tuple[int, int]]]) -> None:
    """Keep the 35 days before the newest half-hour of each fuel (no clock needed)."""
    span = int(KEEP.total_seconds())
    for table in fuels.values():
        if table:
            horizon = max(table) - span
            for key in [k for k in table if k < horizon]:
                del table[key]


class Tally:
    """``CACHE_DIR/tally.json``; see the module docstring for the rules."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / TALLY_FILE
        self.lock_path = self.cache_dir / LOCK_FILE

    def load(self) -> TallyData:
        """The tally on disk (empty when missing; a damaged file is logged and read as empty)."""
        return TallyData(self._read())

    def record(self, readings: Iterable[AnyReading]) -> int:
        """Count stored readings in (under the lock); the number newly counted.

        Raises ``OSError`` when the file cannot be written (nothing is changed then).
        """
        batch = list(readings)
        if not batch:
            return 0
        with fsutil.flocked(self.lock_path):
            fuels = self._read()
            added, _ = merge(fuels, batch)
            if added:
                prune(fuels)
                fsutil.atomic_write(self.path, _encode(fuels), 0o600)
            return added

    def _read(self) -> dict[str, dict[int, tuple[int, int]]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read %s (%s): the tally starts empty", self.path, exc.strerror)
            return {}
        try:
            return _decode(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("%s is damaged: the Home Mini tally starts again empty", self.path.name)
            return {}


class TallyRecorder:
    """The hook after a durable store: record into the tally, or keep the readings in memory
    and try again after the next store when the file cannot be written (a full disk must not
    lose the count of readings that *were* stored)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self._pending: list[AnyReading] = []
        self._failing = False

    def stored(self, readings: Iterable[AnyReading]) -> None:
        self._pending.extend(readings)
        if not self._pending:
            return
        try:
            self.tally.record(self._pending)
        except OSError as exc:
            if not self._failing:
                log.error(
                    "could not update %s (%s); retrying after the next store",
                    self.tally.path.name,
                    exc.strerror or exc,
                )
            self._failing = True
            del self._pending[: max(0, len(self._pending) - _PENDING_MAX)]
            return
        self._failing = False
        self._pending = []


def _encode(fuels: dict[str, dict[int, tuple[int, int]]]) -> bytes:
    obj: dict[str, Any] = {"version": _VERSION}
    for fuel, table in sorted(fuels.items()):
        obj[fuel] = {
            format_time(datetime.fromtimestamp(key, timezone.utc)): [f"{bits:x}", micro]
            for key, (bits, micro) in sorted(table.items())
        }
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _decode(obj: Any) -> dict[str, dict[int, tuple[int, int]]]:
    if not isinstance(obj, dict) or obj.get("version") != _VERSION:
        raise ValueError("not a tally")
    fuels: dict[str, dict[int, tuple[int, int]]] = {}
    for fuel, table in obj.items():
        if fuel == "version":
            continue
        out: dict[int, tuple[int, int]] = {}
        for start, (bits, micro) in table.items():
            key = int(parse_instant(start).timestamp())
            value = int(bits, 16)
            if key % HALF_HOUR or not 0 <= value < 1 << SLOTS or not isinstance(micro, int):
                raise ValueError(start)
            out[key] = (value, micro)
        fuels[str(fuel)] = out
    return fuels
