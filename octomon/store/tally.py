"""The Home Mini's own tally (SPEC §10): per half-hour, the distinct readings stored and
their energy, for the last 35 days, in ``CACHE_DIR/tally.json``.

A reading stored twice (the overlap, a restart, a second backfill, ``run`` and ``backfill``
at once) must count once, without keeping every timestamp: each half-hour keeps a bitmap of
its 180 ten-second slots and the energy of the slots whose bit it set — counting is
idempotent and order-independent (:mod:`octomon.store.halfhours`).

Writes proportional to what changed (SPEC §4.9: a 35-day tally is about 130 KB, an SD card
is not worn by rewriting it every minute). ``tally.json`` is the compacted base
(:mod:`octomon.jsonfile`: versioned, atomic 0600, a damaged one set aside); what is recorded
after it is appended to ``tally.journal``, one line per store, each reading with its own
energy (``["electricity", first slot's Unix time, µkWh, µkWh, …]`` for a run of 10-s slots),
so replaying a line twice changes nothing. The journal is folded into the base when it
passes :data:`COMPACT_BYTES` (or when there is no base). Every change is made under
``CACHE_DIR/tally.lock`` (``fcntl``), so ``run`` and ``backfill`` can both record at once; a
torn journal line (a crash mid-append) is skipped, and the next append starts a new line.

The daemon appends even less: its :class:`TallyRecorder` keeps what it stored in memory and
rides it along in every ``state.json`` write (``State.tally_pending``) — the same write that
moves the cursor past those readings — and appends it to the journal once it holds
:data:`FLUSH_READINGS` readings or spans :data:`FLUSH_SPAN`. A crash therefore loses nothing:
what the state holds is appended by the next life (counting is idempotent), what it does not
hold lies after the saved cursor and is fetched again. Readers see the three parts together.

Gas half-hours use the same structure (a gas reading sits in slot 0 of its half-hour);
their readings count is not a coverage figure (gas reports half-hourly).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from octomon import fsutil, jsonfile
from octomon.jsonfile import DAMAGE, JsonFile, Kind
from octomon.latch import Latch
from octomon.readings import AnyReading, format_time
from octomon.state import State, StateStore
from octomon.store.halfhours import (
    ELECTRICITY,
    GAS,
    HALF_HOUR,
    KEEP,
    SLOT,
    SLOTS,
    Entry,
    Fuels,
    HalfHour,
    TallyData,
    count,
    entries_of,
    entry_of,
    fuel_of,
    half_hour_of,
    merge,
    prune,
    runs,
)

__all__ = [  # the tally's face: its counting model is in octomon.store.halfhours
    "ELECTRICITY",
    "GAS",
    "HALF_HOUR",
    "KEEP",
    "SLOTS",
    "HalfHour",
    "Tally",
    "TallyData",
    "TallyRecorder",
    "fuel_of",
    "half_hour_of",
    "merge",
]

log = logging.getLogger(__name__)

TALLY_FILE = "tally.json"
JOURNAL_FILE = "tally.journal"
LOCK_FILE = "tally.lock"
_VERSION = 1
_PENDING_MAX = 200_000  # readings kept in memory while the file cannot be written
COMPACT_BYTES = 64 * 1024  # a journal this long is folded into tally.json (about a day)
FLUSH_READINGS = 90  # the daemon appends to the journal every 15 minutes of readings …
FLUSH_SPAN = 30 * 60  # … or when what it holds spans half an hour (gas, a catch-up)


class Tally:
    """``tally.json`` + ``tally.journal`` (+ the daemon's part in ``state.json``); see the
    module docstring for the rules."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.base = JsonFile(self.cache_dir, KIND, LOCK_FILE)
        self.path = self.base.path
        self.journal = self.cache_dir / JOURNAL_FILE
        self.lock_path = self.base.lock_path
        self._memo: _Memo | None = None  # what was read last, to read only what was appended
        self._torn = Latch(log)

    def load(self) -> TallyData:
        """The tally: base, journal and the daemon's part (empty when none; a damaged base is
        set aside, a torn journal line skipped)."""
        fuels: Fuels = {}
        if self.path.exists() or self.journal.exists():
            with fsutil.flocked(self.lock_path):
                fuels = {fuel: dict(table) for fuel, table in self._current().items()}
        merge(fuels, entries_of(StateStore(self.cache_dir).tally_pending()))
        prune(fuels)
        return TallyData(fuels)

    def record(self, readings: Iterable[AnyReading | Entry]) -> int:
        """Count stored readings in (under the lock); the number newly counted.

        Raises ``OSError`` when the files cannot be written (nothing is changed then).
        """
        batch = [entry_of(r) for r in readings]
        if not batch:
            return 0
        with fsutil.flocked(self.lock_path):
            try:
                fuels = self._current()
                new = [e for e in batch if count(fuels, e)]
                if new:
                    memo = self._memo
                    if memo is None or memo.base is None or memo.offset >= COMPACT_BYTES:
                        self._compact(fuels)
                    else:
                        self._append(new)
                return len(new)
            except BaseException:
                self._memo = None  # read again from disk next time
                raise

    # --- under the lock ------------------------------------------------------------------

    def _current(self) -> Fuels:
        """Base + journal, reading only the journal's new lines when the base is unchanged."""
        base = fsutil.identity(self.path)
        journal = fsutil.identity(self.journal)
        memo = self._memo
        if (
            memo is None
            or memo.base != base
            or journal is None
            or memo.journal not in (None, journal[0])
            or journal[2] < memo.offset
        ):
            fuels = self.base.read(locked=True)[0]
            base = fsutil.identity(self.path)  # None when it was set aside
            memo = self._memo = _Memo(base, None, 0, fuels)
        if journal is not None and journal[2] > memo.offset:
            self._replay(memo)
        return memo.fuels

    def _replay(self, memo: _Memo) -> None:
        try:
            with open(self.journal, "rb") as f:
                memo.journal = os.fstat(f.fileno()).st_ino
                f.seek(memo.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a torn tail is read once a newline follows it
        torn = 0
        for line in data[:end].splitlines():
            if line.strip():
                try:
                    merge(memo.fuels, _journal_entries(line))
                except DAMAGE:
                    torn += 1
        memo.offset += end
        if torn:
            self._torn.fail(
                "%s: %d line(s) could not be read (a torn write or a hand edit): skipped",
                JOURNAL_FILE,
                torn,
            )

    def _append(self, new: list[Entry]) -> None:
        body = b"".join(
            json.dumps([fuel, *run], separators=(",", ":")).encode() + b"\n"
            for fuel, listed in runs(new).items()
            for run in listed
        )
        # (After a torn tail: a line of its own; the blocks up to the fold allocated ahead.)
        st = fsutil.append_line(self.journal, body, reserve=COMPACT_BYTES + 16 * 1024)
        assert self._memo is not None
        self._memo.journal, self._memo.offset = st.st_ino, st.st_size

    def _compact(self, fuels: Fuels) -> None:
        """Fold everything into ``tally.json`` (atomic, fsync'ed), then drop the journal: a
        crash in between replays the journal onto a base that holds it already (harmless)."""
        prune(fuels)
        fsutil.ensure_private_dir(self.cache_dir)
        self.base.save(fuels)
        try:
            self.journal.unlink()
        except FileNotFoundError:
            pass
        else:
            fsutil.fsync_dir(self.cache_dir)
        self._memo = _Memo(fsutil.identity(self.path), None, 0, fuels)


@dataclass
class _Memo:
    base: tuple[int, int, int] | None  # tally.json's (inode, mtime, size) when read
    journal: int | None  # the journal's inode
    offset: int  # journal bytes read
    fuels: Fuels


def _journal_entries(line: bytes) -> list[Entry]:
    run = jsonfile.array(json.loads(line), "a journal line")
    fuel = jsonfile.text(run[0], "a fuel")
    start = jsonfile.integer(run[1], "a time")
    if len(run) < 3:
        raise jsonfile.Damaged("an empty run")
    return [(fuel, start + SLOT * i, jsonfile.integer(m)) for i, m in enumerate(run[2:])]


class TallyRecorder:
    """The hook after a durable store: count the readings into the tally.

    Without ``carry`` (``backfill``), each store is appended at once. With it (the daemon),
    the readings ride along in every write of ``carry`` (``state.json``) and are appended in
    batches (see the module docstring). When the tally cannot be written (a full disk) the
    readings stay in memory and are tried again after the next store: a full disk must not
    lose the count of readings that *were* stored.
    """

    def __init__(self, tally: Tally, carry: StateStore | None = None) -> None:
        self.tally = tally
        self._pending: list[Entry] = []
        self._failing = Latch(log)
        self._carried = carry is not None
        self._adopted = carry is None  # a dead process's part, taken at the first write
        if carry is not None:
            carry.riders.append(self._ride)

    def stored(self, readings: Iterable[AnyReading]) -> None:
        self._pending.extend(entry_of(r) for r in readings)
        if self._pending and (not self._carried or self._due()):
            self.flush()

    def flush(self) -> None:
        """Append what is held to the tally's files (kept in memory if they cannot be written)."""
        if not self._pending:
            return
        try:
            self.tally.record(self._pending)
        except OSError as exc:
            self._failing.fail(
                "could not update %s (%s); retrying after the next store",
                self.tally.path.name,
                exc.strerror or exc,
                level=logging.ERROR,
            )
            del self._pending[: max(0, len(self._pending) - _PENDING_MAX)]
            return
        self._failing.ok("%s updated again", self.tally.path.name)
        self._pending = []

    def _due(self) -> bool:
        times = [t for _, t, _ in self._pending]
        return len(times) >= FLUSH_READINGS or max(times) - min(times) >= FLUSH_SPAN

    def _ride(self, state: State) -> None:
        """In each ``state.json`` write: what was stored and is not in the tally files yet."""
        if not self._adopted:
            self._adopted = True
            self._pending[:0] = entries_of(state.tally_pending)
        state.tally_pending = runs(self._pending)


def _encode(fuels: Fuels) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for fuel, table in sorted(fuels.items()):
        obj[fuel] = {
            format_time(datetime.fromtimestamp(key, timezone.utc)): [f"{bits:x}", micro]
            for key, (bits, micro) in sorted(table.items())
        }
    return obj


def _decode(obj: dict[str, Any]) -> Fuels:
    """Strict: one value of the wrong type makes the file damaged (set aside, not read as
    part of a tally)."""
    fuels: Fuels = {}
    for fuel, table in obj.items():
        if fuel == "version":
            continue
        out: dict[int, tuple[int, int]] = {}
        for start, pair in jsonfile.mapping(table, fuel).items():
            bits, micro = jsonfile.array(pair, start)
            key = int(jsonfile.instant(start).timestamp())
            value = int(jsonfile.text(bits, "a bitmap"), 16)
            if key % HALF_HOUR or not 0 <= value < 1 << SLOTS or jsonfile.integer(micro) < 0:
                raise jsonfile.Damaged(f"the half-hour {start}")
            out[key] = (value, micro)
        fuels[fuel] = out
    return fuels


KIND: Kind[Fuels] = Kind(
    name=TALLY_FILE,
    version=_VERSION,
    decode=_decode,
    encode=_encode,
    empty=dict,
    held=jsonfile.days_held("the Home Mini tally"),
    then="the tally starts again from what is stored next",
)
