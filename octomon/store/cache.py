"""The durable cache (SPEC §4.5): one JSON-lines file per UTC day of ``read_at``.

``CACHE_DIR/cache_YYYY-MM-DD.jsonl`` holds the canonical lines of
:meth:`Reading.to_json`. An append is flushed and fsync'ed before it returns. One lock
file (``cache.lock``, ``flock``) serialises appends, the start and the end of a file's
sync, quarantining and eviction; it is never held for a process's life, nor while data
travels to InfluxDB.

``cache.index`` records, per file, how many leading bytes octomon's own writer produced
and their CRC-32. Bytes that still match were written in the canonical layout, so a
reader may take the fast path (``octomon.store.sync``); anything else — a hand-edited file, a
torn tail, a file from elsewhere — is parsed line by line. The index is only a hint: if
it is lost or stale, the cache is read the slow way, never wrongly.

Standard library only: ``cache status`` imports this module. ``json`` is imported where
it is used: ``cache status`` on an empty cache (the normal state while InfluxDB is up)
needs none of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, NamedTuple

from octomon.clock import Clock, utcnow
from octomon.errors import CacheBusy, CacheError
from octomon.fsutil import ensure_private_dir, fsync_dir, write_all, write_synced
from octomon.readings import FIELDS, Reading, format_time, parse_time

log = logging.getLogger(__name__)

FILE_RE = re.compile(r"^cache_\d{4}-\d\d-\d\d\.jsonl$")
LOCK_NAME = "cache.lock"
INDEX_NAME = "cache.index"
QUARANTINE = "quarantine"
REJECTED = "rejected"
BLOCK = 1 << 20  # bytes read at a time
_TS = slice(12, 32)  # read_at inside a canonical line: {"read_at":"2026-11-27T14:00:10Z",…
_UNSAFE_DEVICE = set('",:=\\')


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
    trusted: int  # bytes [0, trusted) are octomon's canonical lines (CRC verified)
    crcs: dict[int, int]  # CRC-32 of [0, offset) for the offsets asked for
    device: str = ""  # the one device id of every trusted line ("" if several or unknown)

    def close(self) -> None:
        self.handle.close()


# --- parsing -------------------------------------------------------------------------------


def parse_line(raw: bytes) -> Reading:
    """The full parse of one cache line (any JSON object with ``read_at``); ValueError."""
    import json

    try:
        obj = json.loads(raw)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    try:
        return Reading.from_obj(obj)
    except (TypeError, OverflowError) as exc:
        raise ValueError(str(exc)) from None


def fast_eligible(reading: Reading) -> bool:
    """Can the canonical line of ``reading`` take the sync fast path (``octomon.store.sync``)?

    Its device id must pass through JSON and line protocol unescaped, and every field
    must be a finite float (JSON then holds exactly Python's ``repr``).
    """
    dev = reading.device_id
    if not (dev and dev.isascii() and dev.isprintable() and " " not in dev):
        return False
    if _UNSAFE_DEVICE & set(dev):
        return False
    values = [getattr(reading, name) for name in FIELDS]
    known = [v for v in values if v is not None]
    return bool(known) and all(type(v) is float and math.isfinite(v) for v in known)


def blocks(handle: BinaryIO, start: int, end: int, size: int = BLOCK) -> Iterator[bytes]:
    """``[start, end)`` in blocks that end on a newline (the last one may not)."""
    handle.seek(start)
    left = end - start
    carry = b""
    while left > 0:
        data = handle.read(min(size, left))
        if not data:
            break
        left -= len(data)
        data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and left > 0:
            carry = data
            continue
        if left <= 0:
            cut = len(data)
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


def crcs_of(handle: BinaryIO, offsets: Sequence[int]) -> dict[int, int]:
    """CRC-32 of ``[0, offset)`` for each offset, in one pass."""
    want = sorted(set(o for o in offsets if o >= 0))
    out: dict[int, int] = {}
    crc = 0
    pos = 0
    handle.seek(0)
    for target in want:
        while pos < target:
            data = handle.read(min(BLOCK, target - pos))
            if not data:
                return out
            crc = zlib.crc32(data, crc)
            pos += len(data)
        out[target] = crc
    return out


def count_lines(handle: BinaryIO, start: int, end: int) -> int:
    """Lines in ``[start, end)`` (a last line without newline counts)."""
    count = 0
    last = b"\n"
    for block in blocks(handle, start, end):
        count += block.count(b"\n")
        last = block[-1:]
    return count + (last != b"\n")


# --- the cache -------------------------------------------------------------------------------


class Cache:
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
            pause = 0.002
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
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)
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

    def append(self, readings: Sequence[Reading]) -> AppendResult:
        """Append to the day files; durable (fsync) when it returns, or CacheError.

        On a failure every file touched is cut back to its old size, so nothing is half
        written and nothing counts as cached.
        """
        if not readings:
            return AppendResult(0)
        days: dict[str, list[Reading]] = {}
        for r in map(_floats, readings):
            day = r.read_at.astimezone(timezone.utc).strftime("%Y-%m-%d")
            days.setdefault(day, []).append(r)
        # Formatted before the lock is taken: the lock is held for the writes only.
        payloads = {
            day: (
                "".join(r.to_json() + "\n" for r in group).encode("utf-8"),
                all(fast_eligible(r) for r in group),
                group[0].device_id if all(r.device_id == group[0].device_id for r in group) else "",
            )
            for day, group in days.items()
        }
        with self.lock():
            index = self._read_index()
            changed = False
            touched: list[tuple[int, int, str]] = []  # (fd, old size, name)
            created = False
            try:
                for day in sorted(payloads):
                    payload, eligible, device = payloads[day]
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
                    claim = index.get(name)
                    trusted = not torn and eligible
                    if trusted and size == 0:
                        index[name] = (len(raw), zlib.crc32(raw), device)
                        changed = True
                    elif trusted and claim is not None and claim[0] == size:
                        same = device if claim[2] == device else ""
                        index[name] = (size + len(raw), zlib.crc32(raw, claim[1]), same)
                        changed = True
                    elif size == 0 and claim is not None:
                        del index[name]
                        changed = True
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
            evicted, lost = self._evict({name for _, _, name in touched}, index)
            present = {p.name for p in self.files()}
            for name in [n for n in index if n not in present]:
                del index[name]
                changed = True
            if changed or evicted:
                self._write_index(index)
        if evicted:
            log.error(
                "cache over CACHE_MAX_MB: dropped %d day file(s) holding %d readings: %s",
                len(evicted),
                lost,
                ", ".join(evicted),
            )
        return AppendResult(len(readings), tuple(evicted), lost)

    def _evict(self, keep: set[str], index: dict[str, _Claim]) -> tuple[list[str], int]:
        """Drop whole oldest day files (never one just appended to) while over the cap."""
        sizes = []
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                sizes.append((path, path.stat().st_size))
        total = sum(s for _, s in sizes)
        evicted: list[str] = []
        lost = 0
        for path, size in sizes:
            if total <= self.max_bytes:
                break
            if path.name in keep:
                continue
            try:
                with open(path, "rb") as f:
                    lost += count_lines(f, 0, size)
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("could not drop %s: %s", path.name, exc.strerror or exc)
                continue
            index.pop(path.name, None)
            evicted.append(path.name)
            total -= size
        if evicted:
            fsync_dir(self.directory)
        return evicted, lost

    # --- the index of octomon-written bytes ------------------------------------------------

    def _read_index(self) -> dict[str, _Claim]:
        import json

        try:
            obj = json.loads((self.directory / INDEX_NAME).read_bytes())
            files = obj["files"]
            return {
                str(k): (int(v[0]), int(v[1]), str(v[2]) if len(v) > 2 else "")
                for k, v in files.items()
                if isinstance(v, list) and len(v) in (2, 3)
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def _write_index(self, index: dict[str, _Claim]) -> None:
        """Best effort, no fsync: a lost or stale index only slows reading down."""
        path = self.directory / INDEX_NAME
        tmp = path.with_name(f".{INDEX_NAME}.{os.getpid()}.tmp")
        import json

        data = json.dumps({"version": 1, "files": {k: list(v) for k, v in index.items()}})
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, data.encode())
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("could not update %s: %s", path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    # --- reading for a sync --------------------------------------------------------------

    def open_snapshot(
        self, name: str, lock_timeout: float | None = None, checkpoints: Sequence[int] = ()
    ) -> Snapshot | None:
        """Open a day file as it is between appends (taken under the lock); None if gone.

        The CRC of the octomon-written prefix is checked here (outside the lock), and of
        ``[0, offset)`` for each checkpoint.
        """
        with self.lock(lock_timeout):
            try:
                handle = open(self.directory / name, "rb")  # noqa: SIM115 (returned)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise self._error(f"read {name}", exc) from None
            st = os.fstat(handle.fileno())
            claim = self._read_index().get(name)
        try:
            wanted = [c for c in checkpoints if c <= st.st_size]
            if claim is not None and claim[0] <= st.st_size:
                wanted.append(claim[0])
            crcs = crcs_of(handle, wanted)
        except OSError as exc:
            handle.close()
            raise self._error(f"read {name}", exc) from None
        trusted = claim[0] if claim is not None and crcs.get(claim[0]) == claim[1] else 0
        device = claim[2] if claim is not None and trusted else ""
        return Snapshot(name, handle, st.st_size, _identity(st), trusted, crcs, device)

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
            # No fsync of the directory, no index update: a deletion lost in a crash only
            # means resending readings (harmless), and stale index entries are pruned by
            # the next append.
            return True

    def quarantine(
        self, source: str, entries: Sequence[tuple[int, bytes, str]], now: datetime
    ) -> int:
        """Move bad lines (offset, line, reason) of ``source`` aside; returns new ones."""
        import json

        if not entries:
            return 0
        qdir = self.directory / QUARANTINE
        path = qdir / source
        with self.lock():
            try:
                ensure_private_dir(qdir)
                seen = set()
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                    for raw in f:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            obj = json.loads(raw)
                            seen.add((obj["offset"], obj["line"]))
                out = []
                for offset, line, reason in entries:
                    text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                    if (offset, text) in seen:
                        continue
                    seen.add((offset, text))
                    rec = {
                        "source": source,
                        "offset": offset,
                        "reason": reason,
                        "quarantined_at": format_time(now),
                        "line": text,
                    }
                    out.append(json.dumps(rec) + "\n")
                if out:
                    data = "".join(out).encode("utf-8", "surrogateescape")
                    write_synced(path, os.O_APPEND | os.O_CREAT, data)
                    fsync_dir(qdir)
            except OSError as exc:
                raise self._error("write to the quarantine", exc) from None
        if out:
            log.warning("moved %d unreadable line(s) of %s to %s", len(out), source, path)
        return len(out)

    def write_rejected(self, lines: Sequence[str | bytes], message: str, now: datetime) -> Path:
        """Set refused readings aside: ``rejected/rejected_<UTC>.jsonl`` + ``.txt``."""
        rdir = self.directory / REJECTED
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        body = b"".join(
            (x.encode("utf-8") if isinstance(x, str) else x).rstrip(b"\r\n") + b"\n" for x in lines
        )
        try:
            ensure_private_dir(rdir)
            for n in range(10_000):
                path = rdir / (
                    f"rejected_{stamp}.jsonl" if n == 0 else f"rejected_{stamp}_{n}.jsonl"
                )
                try:
                    write_synced(path, os.O_CREAT | os.O_EXCL, body)
                except FileExistsError:
                    continue
                break
            else:  # pragma: no cover
                raise OSError(errno.EEXIST, "too many rejected files in one second")
            note = (message.rstrip() + "\n").encode("utf-8", "replace")
            write_synced(path.with_suffix(".txt"), os.O_CREAT | os.O_TRUNC, note)
            fsync_dir(rdir)
        except OSError as exc:
            raise self._error("set refused readings aside", exc) from None
        return path

    # --- reading ---------------------------------------------------------------------------

    def status(self) -> CacheStatus:
        """Streamed over every file; creates nothing."""
        if not self.directory.is_dir():
            return CacheStatus()
        files = self.files()
        index = self._read_index() if files else {}
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
                claim = index.get(path.name)
                trusted = 0
                if (
                    claim is not None
                    and claim[0] <= size
                    and crcs_of(f, [claim[0]]).get(claim[0]) == claim[1]
                ):
                    trusted = claim[0]
                for block in blocks(f, 0, trusted):
                    lines = block.split(b"\n")
                    if not lines[-1]:
                        lines.pop()
                    readings += len(lines)
                    lo = min(map(_item, lines)).decode()
                    hi = max(map(_item, lines)).decode()
                    oldest = lo if oldest is None or lo < oldest else oldest
                    newest = hi if newest is None or hi > newest else newest
                for _, _, reading in iter_lines(f, trusted, size):
                    if reading is None:
                        continue
                    readings += 1
                    ts = format_time(reading.read_at)
                    oldest = ts if oldest is None or ts < oldest else oldest
                    newest = ts if newest is None or ts > newest else newest
        return CacheStatus(
            files=len(files),
            readings=readings,
            oldest=parse_time(oldest) if oldest else None,
            newest=parse_time(newest) if newest else None,
            bytes=total,
            quarantined=_count_dir_lines(self.directory / QUARANTINE),
            rejected=_count_dir_lines(self.directory / REJECTED, ".jsonl"),
        )

    def iter_readings(
        self, on_bad: Callable[[str, int, str], None] | None = None
    ) -> Iterator[Reading]:
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
            return CacheError(
                f"could not {what} in {self.directory}: no space left on device (nothing was "
                "cached; the readings stay to be fetched again)",
                "free disk space, or lower CACHE_MAX_MB",
            )
        return CacheError(f"could not {what} in {self.directory}: {reason}", "check CACHE_DIR")


def _floats(r: Reading) -> Reading:
    """The cache holds numbers as JSON floats (SPEC §4.5), even if given ints."""
    values = [getattr(r, name) for name in FIELDS]
    if all(v is None or type(v) is float for v in values):
        return r
    floats = [None if v is None else float(v) for v in values]
    return Reading(r.read_at, r.device_id, *floats)


_Claim = tuple[int, int, str]  # octomon-written bytes, their CRC-32, their one device ("": several)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _item(line: bytes) -> bytes:
    return line[_TS]


def iter_lines(handle: BinaryIO, start: int, end: int) -> Iterator[tuple[int, str, Reading | None]]:
    """(offset, problem, reading) per line of ``[start, end)``, fully parsed.

    Blank lines yield ``(offset, "", None)``; bad lines ``(offset, reason, None)``.
    """
    offset = start
    for block in blocks(handle, start, end):
        for raw in split_lines(block):
            here = offset
            offset += len(raw)
            if not raw.strip():
                yield here, "", None
                continue
            try:
                yield here, "", parse_line(raw)
            except ValueError as exc:
                yield here, str(exc) or "unreadable", None


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their ``\\n`` (only ``\\n`` ends a line; a last one may lack it)."""
    parts = data.split(b"\n")
    last = parts.pop()
    out = [p + b"\n" for p in parts]
    if last:
        out.append(last)
    return out


def _count_dir_lines(directory: Path, suffix: str = "") -> int:
    try:
        entries = [e for e in os.scandir(directory) if e.is_file() and e.name.endswith(suffix)]
    except OSError:
        return 0
    count = 0
    for e in entries:
        with contextlib.suppress(OSError), open(e.path, "rb") as f:
            count += count_lines(f, 0, os.fstat(f.fileno()).st_size)
    return count
