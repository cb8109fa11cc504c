"""The Home Mini tally's counting (SPEC §10): per half-hour, a bitmap of its 180 ten-second
slots and the energy of the slots whose bit is set.

Counting a reading is "set the bit; add its energy only if the bit was clear", which is
idempotent and order-independent, so the tally of any sequence of stores is the tally of the
set of distinct readings. Energy is an integer of micro-kWh (exact for the API's Wh values),
so the sum does not depend on the order either. The first value stored for a slot wins.
Where the tally is kept: :mod:`octomon.store.tally`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from octomon.readings import AnyReading, GasReading
from octomon.units import ELECTRICITY as ELECTRICITY  # re-exported: the tally's fuel keys
from octomon.units import GAS as GAS

HALF_HOUR = 1800
SLOT = 10
SLOTS = HALF_HOUR // SLOT  # 180 ten-second readings make a complete half-hour
KEEP = timedelta(days=35)
_MICRO = 1_000_000  # energy is kept in micro-kWh

Fuels = dict[str, dict[int, tuple[int, int]]]  # fuel -> half-hour start (Unix s) -> bits, µkWh
Entry = tuple[str, int, int]  # one reading as the tally sees it: fuel, Unix time, µkWh


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


def entry_of(item: AnyReading | Entry) -> Entry:
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str):
        return item
    reading: AnyReading = item
    energy = reading.consumption_delta
    micro = round(energy * _MICRO) if energy is not None else 0
    return fuel_of(reading), int(reading.read_at.timestamp()), micro


def count(fuels: Fuels, entry: Entry) -> bool:
    """Set the reading's bit; add its energy only if the bit was clear. True: newly counted."""
    fuel, t, micro = entry
    key = t - t % HALF_HOUR
    bit = 1 << ((t - key) // SLOT)
    table = fuels.setdefault(fuel, {})
    bits, total = table.get(key, (0, 0))
    if bits & bit:
        return False
    table[key] = (bits | bit, total + micro)
    return True


def merge(fuels: Fuels, readings: Iterable[AnyReading | Entry]) -> tuple[int, int]:
    """Count ``readings`` into ``fuels`` in place; (readings newly counted, half-hours touched)."""
    added = 0
    touched: set[tuple[str, int]] = set()
    for item in readings:
        entry = entry_of(item)
        if count(fuels, entry):
            added += 1
            touched.add((entry[0], entry[1] - entry[1] % HALF_HOUR))
    return added, len(touched)


def runs(entries: Iterable[Entry]) -> dict[str, list[list[int]]]:
    """Per fuel, runs of consecutive 10-s slots: ``[first Unix time, µkWh, µkWh, …]``
    (the first value of a slot wins, as when counting)."""
    by_fuel: dict[str, dict[int, int]] = {}
    for fuel, t, micro in entries:
        by_fuel.setdefault(fuel, {}).setdefault(t, micro)
    out: dict[str, list[list[int]]] = {}
    for fuel, slots in sorted(by_fuel.items()):
        fuel_runs: list[list[int]] = []
        last = None
        for t, micro in sorted(slots.items()):
            if last is not None and t == last + SLOT:
                fuel_runs[-1].append(micro)
            else:
                fuel_runs.append([t, micro])
            last = t
        out[fuel] = fuel_runs
    return out


def entries_of(fuel_runs: dict[str, list[list[int]]]) -> list[Entry]:
    """The inverse of :func:`runs`."""
    return [
        (fuel, run[0] + SLOT * i, micro)
        for fuel, listed in fuel_runs.items()
        for run in listed
        for i, micro in enumerate(run[1:])
    ]


def prune(fuels: dict[str, dict[int, tuple[int, int]]]) -> None:
    """Keep the 35 days before the newest half-hour of each fuel (no clock needed)."""
    span = int(KEEP.total_seconds())
    for table in fuels.values():
        if table:
            horizon = max(table) - span
            for key in [k for k in table if k < horizon]:
                del table[key]
