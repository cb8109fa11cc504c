"""A kept JSON file whose rewrites are appended to a journal (SPEC §4.9), for ``state.json``.

``state.json`` changes a little every few poll cycles (the cursor, the call ledger, the
tally's pending readings). Replacing it atomically each time costs an SD card a new inode,
two bitmaps, a group descriptor and a directory block besides its one page of data — about
32–40 KiB on ext4 for a 3 KB file. Appending the new value to ``state.journal`` costs the
page the line lands on and the inode.

The rules (:class:`JournaledFile`, a :class:`octomon.jsonfile.JsonFile` otherwise):

* **Every write appends the whole new value** as one line — the same bytes ``state.json``
  would hold — to the journal, fsync'ed. There are no deltas to replay: the value is the
  journal's last line that decodes, else ``state.json`` (the base).
* **Compaction**: when the journal has passed :data:`COMPACT_BYTES` (or there is no base),
  the line is appended all the same, then the base is replaced atomically with it, then the
  journal is emptied in place (the same inode). A crash at any point leaves a journal whose
  last line is the base's value or a newer one, never an older one. The journal's blocks
  up to the fold are allocated ahead (:func:`octomon.fsutil.append_line`): an append
  writes its page and the inode, not the block bitmap.
* **Damage**: a torn last line (a crash mid-append) or a damaged line is skipped — the
  line before it is the value, a state at most one save older, which the cursor's and the
  hold's rules make safe (readings after it are fetched again; a dead run's hold counts as
  calls made) — and the next append starts a line of its own. A damaged base is set aside
  as before (:mod:`octomon.jsonfile`), and the journal's value still holds.
* **Readers** take no lock: the journal is read before the base, so a compaction between
  the two reads yields the new base, never the journal's older lines over it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TypeVar

from octomon import fsutil
from octomon.jsonfile import DAMAGE, JsonFile, Kind, Outdated
from octomon.latch import Latch

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPACT_BYTES = 64 * 1024  # about 20 states of 3 KB: two hours of saves at 60-second polls


class JournaledFile(JsonFile[T]):
    """``directory/kind.name`` + ``directory/<stem>.journal``; see the module docstring."""

    def __init__(
        self, directory: Path, kind: Kind[T], lock: str, *, compact_bytes: int = COMPACT_BYTES
    ) -> None:
        super().__init__(directory, kind, lock)
        self.journal = self.path.with_suffix(".journal")
        self.compact_bytes = compact_bytes
        self._damaged_line = Latch(log)

    # --- reading ---------------------------------------------------------------------

    def read(self, *, locked: bool) -> tuple[T, bytes | None]:
        """The journal's last good line, else the base (set aside when damaged)."""
        text = self._journal_text()
        # (Without the lock a line may be mid-append: said only at DEBUG then.)
        found = self._last_good(text, logging.WARNING if locked else logging.DEBUG)
        if found is not None:
            return found
        return super().read(locked=locked)

    def read_raw(self) -> bytes | None:
        """The bytes the value is read from (a journal line or the base), None when neither
        exists; not decoded beyond finding the journal's last line that parses."""
        for line in reversed(self._journal_text().splitlines(keepends=True)):
            try:
                if isinstance(json.loads(line), dict):
                    return line
            except ValueError:
                continue
        try:
            return fsutil.read_bytes(self.path)
        except OSError:
            return None

    def identity(self) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
        """(inode, mtime, size) of the base and of the journal: changes with every write."""
        return fsutil.identity(self.path), fsutil.identity(self.journal)

    def _journal_text(self) -> bytes:
        try:
            return fsutil.read_bytes(self.journal)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            self._damaged_line.fail("cannot read %s (%s)", self.journal, exc.strerror or exc)
            return b""

    def _last_good(self, text: bytes, level: int) -> tuple[T, bytes] | None:
        skipped = 0
        for line in reversed(text.splitlines(keepends=True)):
            if not line.strip():
                continue
            try:
                value = self.decode(line)
            except (Outdated, *DAMAGE):
                skipped += 1
                continue
            if skipped:
                self._damaged_line.fail(
                    "%s: skipped %d damaged line(s) at its end (a write cut short); "
                    "using the one before",
                    self.journal.name,
                    skipped,
                    level=level,
                )
            else:
                self._damaged_line.ok()
            return value, line if line.endswith(b"\n") else line + b"\n"
        return None

    # --- writing ---------------------------------------------------------------------

    def save(self, value: T) -> bool:
        """Write ``value`` (the caller holds the lock); False when it is already the value."""
        return self._write(value, self.read_raw())

    def _write(self, value: T, raw: bytes | None) -> bool:
        data = self.encode(value)
        if data == raw:
            return False
        st = fsutil.append_line(self.journal, data, reserve=self.compact_bytes + 16 * 1024)
        if st.st_size > self.compact_bytes or not self.path.exists():
            self._compact(data)
        return True

    def _compact(self, data: bytes) -> None:
        """The base becomes ``data`` (already the journal's last line), then the journal is
        emptied: see the module docstring for why this order is safe."""
        fsutil.atomic_write(self.path, data, 0o600)
        fd = os.open(self.journal, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
