"""The durable cache (SPEC §4.5): one JSON-lines file per UTC day of ``read_at``.

``CACHE_DIR/cache_YYYY-MM-DD.jsonl`` holds the canonical lines of
:meth:`Reading.to_json`. An append is flushed and fsync'ed before it returns. One lock
file (``cache.lock``, ``flock``) serialises appends, the start and the end of a file's
sync, quarantining and eviction; it is never held for a process's life, nor while data
travels to InfluxDB.

What is set aside (quarantine, rejected readings, requeueing) is ``octomon.store.aside``, a
base class of :class:`Cache`; reading lines is ``octomon.store.lines``.

No side file: a reader recognises the canonical layout by its bytes (the fast path of
``octomon.store.transcode`` and of :meth:`Cache.status`), whoever wrote it, and parses
anything else — a hand edit, a torn tail — line by line.

Standard library only: ``cache status`` imports this module. ``json`` is imported where
it is used: ``cache status`` on an empty cache (the normal state while InfluxDB is up)
needs none of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, NamedTuple

from octomon.backoff import next_delay
from octomon.clock import Clock, utcnow
from octomon.errors import CacheBusy, CacheError, CacheFull
from octomon.fsutil import ensure_private_dir, fsync_dir, write_all
from octomon.readings import AnyReading, GasReading, Reading, format_time, parse_time
from octomon.store.aside import QUARANTINE, SetAside
from octomon.store.cap import REJECTED, Evicted, evict
from octomon.store.lines import (
    blocks,
    canonical_span,
    count_dir_lines,
    iter_lines,
    parsed_span,
)

log = logging.getLogger(__name__)

FILE_RE = re.compile(r"^cache_\d{4}-\d\d-\d\d\.jsonl$")
LOCK_NAME = "cache.lock"


# --- results -----------------------------------------------------------------------------


# NamedTuples, not dataclasses: `cache status` imports this module and each dataclass costs
# ~1-3 ms to define (SPEC §7 start-up budget).


class AppendResult(NamedTuple):
    appended: int
    evicted_files: tuple[str, ...] = ()
    evicted_readings: int = 0


class CacheStatus(NamedTuple):
    files: int = 0
    readings: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    bytes: int = 0
    quarantined: int = 0
    rejected: int = 0

    def to_json_obj(self) -> dict[str, object]:
        """The object `cache status --json` prints (SPEC §1)."""
        return {
            "files": self.files,
            "readings": self.readings,
            "oldest": format_time(self.oldest) if self.oldest else None,
            "newest": format_time(self.newest) if self.newest else None,
            "bytes": self.bytes,
            "quarantined": self.quarantined,
            "rejected": self.rejected,
        }


class Snapshot(NamedTuple):
    """A cache file opened for reading, with what was true of it under the lock."""

    name: str
    handle: BinaryIO
    size: int  # only whole appends: taken while holding the lock
    identity: tuple[int, int, int, int]  # device, inode, size, mtime (ns)

    def close(self) -> None:
        self.handle.close()


# --- the cache -------------------------------------------------------------------------------


class Cache(SetAside):
    def __init__(
        self,
        directory: Path,
        max_mb: float = 1024.0,
        clock: Clock = utcnow,
        lock_timeout: float = 30.0,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.clock = clock
        self.lock_timeout = lock_timeout

    # --- the lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """The cache lock (cross-process ``flock``); CacheBusy after ``timeout`` seconds."""
        timeout = self.lock_timeout if timeout is None else timeout
        path = self.directory / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                self._ensure_dir()
                fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise self._error("open the cache lock", exc) from None
        try:
            deadline = time.monotonic() + timeout
            pause = 0.0
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CacheBusy(
                            f"the cache in {self.directory} is busy: another octomon process "
                            f"held its lock for more than {timeout:g} s",
                            "try again later (a sync or a large append is in progress)",
                        ) from None
                    pause = next_delay(pause, 0.002, 0.05)
                    time.sleep(pause)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- listing -----------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The day files, oldest first."""
        try:
            names = [e.name for e in os.scandir(self.directory) if FILE_RE.match(e.name)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error("list the cache", exc) from None
        return [self.directory / n for n in sorted(names)]

    def is_empty(self) -> bool:
        """No day file with anything in it (cheap: one directory scan)."""
        try:
            with os.scandir(self.directory) as it:
                for e in it:
                    if FILE_RE.match(e.name) and e.stat().st_size > 0:
                        return False
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise self._error("list the cache", exc) from None
        return True

    # --- appending ---------------------------------------------------------------------

    def append(self, readings: Sequence[AnyReading], keep: Collection[str] = ()) -> AppendResult:
        """Append to the day files; durable (fsync) when it returns, or CacheError.

        On a failure every file touched is cut back to its old size, so nothing is half
        written and nothing counts as cached. Over CACHE_MAX_MB the oldest files are dropped
        (:mod:`octomon.store.cap`), never one appended to nor one named in ``keep``.
        """
        if not readings:
            return AppendResult(0)
        days: dict[str, list[AnyReading]] = {}
        for r in map(_floats, readings):
            day = r.read_at.astimezone(timezone.utc).strftime("%Y-%m-%d")
            days.setdefault(day, []).append(r)
        # Formatted before the lock is taken: the lock is held for the writes only.
        payloads = {
            day: "".join(r.to_json() + "\n" for r in group).encode("utf-8")
            for day, group in days.items()
        }
        with self.lock():
            touched: list[tuple[int, int, str]] = []  # (fd, old size, name)
            created = False
            try:
                for day in sorted(payloads):
                    payload = payloads[day]
                    name = f"cache_{day}.jsonl"
                    fd = os.open(
                        self.directory / name,
                        os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                        0o600,
                    )
                    size = os.fstat(fd).st_size
                    touched.append((fd, size, name))
                    created = created or size == 0
                    torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                    raw = b"\n" + payload if torn else payload
                    write_all(fd, raw)
                    os.fsync(fd)
            except OSError as exc:
                for fd, size, _ in touched:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                        os.fsync(fd)
                raise self._error(f"cache {len(readings)} readings", exc) from None
            finally:
                for fd, _, _ in touched:
                    os.close(fd)
            if created:
                fsync_dir(self.directory)
            evicted = self._enforce_cap({name for _, _, name in touched}.union(keep))
        return AppendResult(len(readings), evicted.files, evicted.readings)

    def _enforce_cap(self, keep: Collection[str]) -> Evicted:
        """Drop the oldest whole files while over CACHE_MAX_MB (under the lock)."""
        evicted = evict(self.directory, self.max_bytes, self.files(), keep)
        if evicted.files:
            log.error(
                "cache over CACHE_MAX_MB: dropped %d file(s) holding %d readings: %s",
                len(evicted.files),
                evicted.readings,
                ", ".join(evicted.files),
            )
        return evicted

    # --- reading for a sync --------------------------------------------------------------

    def open_snapshot(self, name: str, lock_timeout: float | None = None) -> Snapshot | None:
        """Open a day file as it is between appends (taken under the lock); None if gone."""
        with self.lock(lock_timeout):
            try:
                handle = open(self.directory / name, "rb")  # noqa: SIM115 (returned)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise self._error(f"read {name}", exc) from None
            st = os.fstat(handle.fileno())
        return Snapshot(name, handle, st.st_size, _identity(st))

    def remove_if_unchanged(self, snap: Snapshot, lock_timeout: float | None = None) -> bool:
        """Delete a fully acknowledged file, unless it changed since ``snap`` was taken.

        Same device, inode, size and modification time as at the snapshot (the inode
        cannot have been reused: ``snap`` holds it open).
        """
        with self.lock(lock_timeout):
            path = self.directory / snap.name
            try:
                if _identity(os.stat(path)) != snap.identity:
                    return False
                path.unlink()
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise self._error(f"delete {snap.name}", exc) from None
            # No fsync of the directory: a deletion lost in a crash only means resending
            # readings (harmless).
            return True

    # --- reading ---------------------------------------------------------------------------

    def status(self) -> CacheStatus:
        """Streamed over every file; creates nothing.

        A block of lines that all look canonical (SPEC §4.5) is counted by its bytes, its
        times taken from their fixed place; any other block is parsed line by line.
        """
        if not self.directory.is_dir():
            return CacheStatus()
        files = self.files()
        readings = total = 0
        oldest: str | None = None
        newest: str | None = None
        for path in files:
            f = self._open_for_reading(path)
            if f is None:
                continue
            with f:
                size = os.fstat(f.fileno()).st_size
                total += size
                for block in blocks(f, 0, size):
                    lo: str | None
                    hi: str | None
                    span = canonical_span(block)
                    if span is not None:
                        count, lo, hi = span
                    else:
                        count, lo, hi = parsed_span(block)
                    readings += count
                    if lo is not None and (oldest is None or lo < oldest):
                        oldest = lo
                    if hi is not None and (newest is None or hi > newest):
                        newest = hi
        return CacheStatus(
            files=len(files),
            readings=readings,
            oldest=parse_time(oldest) if oldest else None,
            newest=parse_time(newest) if newest else None,
            bytes=total,
            quarantined=count_dir_lines(self.directory / QUARANTINE),
            rejected=count_dir_lines(self.directory / REJECTED, ".jsonl", index=True),
        )

    def iter_readings(
        self, on_bad: Callable[[str, int, str], None] | None = None
    ) -> Iterator[AnyReading]:
        """Every cached reading, oldest file first (for `cache export`); bad lines skipped."""
        for path in self.files():
            f = self._open_for_reading(path)
            if f is None:
                continue
            with f:
                size = os.fstat(f.fileno()).st_size
                for offset, problem, reading in iter_lines(f, 0, size):
                    if reading is not None:
                        yield reading
                    elif on_bad is not None and problem:
                        on_bad(path.name, offset, problem)

    # --- helpers -----------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        try:
            ensure_private_dir(self.directory)
        except OSError as exc:
            raise self._error("create the cache directory", exc) from None

    def _open_for_reading(self, path: Path) -> BinaryIO | None:
        """``path`` opened for reading; None if a sync deleted it meanwhile."""
        try:
            return open(path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(f"read {path.name}", exc) from None

    def _error(self, what: str, exc: OSError) -> CacheError:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            return CacheFull(
                f"could not {what} in {self.directory}: no space left on device (nothing was "
                "cached; the readings stay to be fetched again)",
                "free disk space, or lower CACHE_MAX_MB",
            )
        return CacheError(f"could not {what} in {self.directory}: {reason}", "check CACHE_DIR")


def _floats(r: AnyReading) -> AnyReading:
    """The cache holds numbers as JSON floats (SPEC §4.5), even if given ints."""
    values = r[2:]  # the fields, after read_at and device_id (either fuel)
    if all(v is None or type(v) is float for v in values):
        return r
    floats = [None if v is None else float(v) for v in values]
    if isinstance(r, GasReading):
        return GasReading(r.read_at, r.device_id, *floats)
    return Reading(r.read_at, r.device_id, *floats)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
