"""Cache → InfluxDB, oldest first: shared by `octomon run` and `octomon sync-cache`.

Streamed: a file is read in batches of up to 5,000 lines, so memory stays flat whatever
the backlog. Each batch goes through :func:`octomon.store.delivery.deliver` (what is
refused is split and set aside there). A file is deleted only once every line of it was
acknowledged (or set aside as refused, or quarantined as unreadable), and only if it
did not change meanwhile; a sync that stops part-way leaves the file whole, and the next
one sends it again from its start (harmless: one point per series and timestamp; a day
file holds at most 8,640 readings, so no memory of how far it got is kept).

The fast path (:func:`_fast`) recognises the canonical layout of SPEC §4.5 by its
bytes, whoever wrote the file, and turns a block of such lines into line protocol with a
few whole-block byte operations and C-level maps (no Python code runs per line): the
numbers are copied as written, which for the writer's ``json.dumps(float)`` is Python's
``repr`` of the float, exactly what ``Reading.to_line_protocol`` writes. A block that
does not pass every check is taken line by line, and any line that is not canonical
(another key order, a hand edit, a line with more keys such as ``fuel``) is parsed in
full (``Reading.from_obj``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from operator import add, itemgetter

from octomon.clock import Clock, utcnow
from octomon.errors import CacheBusy, CacheError, OctomonError
from octomon.readings import FIELDS, GAS_FIELDS, GAS_MEASUREMENT, MEASUREMENT, SOURCE
from octomon.store.cache import Cache, Snapshot
from octomon.store.delivery import Delivery, LineSink, deliver
from octomon.store.lines import count_lines, parse_line, split_lines

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # readings per write request


@dataclass
class SyncResult:
    synced: int = 0  # acknowledged by InfluxDB
    rejected: int = 0  # refused, set aside under rejected/
    left: int = 0  # lines still waiting in the cache
    error: OctomonError | None = None  # why it stopped (or the last refusal)
    files_done: int = 0  # day files fully delivered and deleted
    quarantined: int = 0  # unreadable lines moved to quarantine/
    stopped: bool = False  # a stop was requested: it ended between two batches


# --- the fast path: canonical lines → line protocol -----------------------------------------

# After ``translate`` (quotes dropped, ':' → '='), a canonical line reads
#   {read_at=2026-11-27T14=00=10Z,device_id=DEV,consumption_delta=0.0005,…,consumption=5038.4}
# [9:19] is the day, [20:28] the time of day, and after ``device_id=DEV,`` come the fields
# exactly as line protocol wants them. Everything below runs in C (map, set, join,
# translate, count): a Python loop per line would cost more than the whole of it.
_TABLE = bytes.maketrans(b":", b"=")
_SOURCE = b",source=" + SOURCE.encode() + b" "
_DAY = itemgetter(slice(9, 19))
_TOD = itemgetter(slice(20, 28))
_DIGITS = b"0123456789"
# Every digit → 0: a line's *shape*. A day of readings has about two hundred shapes (how
# many digits each number has), a whole cache a few hundred; each is judged once.
_ZEROS = bytes.maketrans(_DIGITS, b"0" * 10)
_PREFIX = b'{"read_at":"0000-00-00T00:00:00Z","device_id":"'
_DAY_RE = re.compile(rb"\d{4}-\d\d-\d\d")
_TOD_RE = re.compile(rb"([01]\d|2[0-3])=([0-5]\d)=([0-5]\d)")
_DEVICE_RE = re.compile(rb"[A-Za-z0-9_.\-]+")  # passes through JSON and line protocol as is
_NUMBER_SHAPE = re.compile(rb"-?0+(\.0+)?(e[-+]?0+)?")  # a JSON number, its digits zeroed
_EPOCH = date(1970, 1, 1)
_MAX_SHAPES = 20_000  # judged shapes kept (a cache holds a few hundred)


class _Days(dict[bytes, int]):
    def __missing__(self, key: bytes) -> int:
        if _DAY_RE.fullmatch(key) is None:
            raise ValueError("not a canonical line")
        value = self[key] = (date.fromisoformat(key.decode()) - _EPOCH).days * 86400
        return value


class _Times(dict[bytes, int]):
    def __missing__(self, key: bytes) -> int:
        m = _TOD_RE.fullmatch(key)
        if m is None:
            raise ValueError("not a canonical line")
        h, mi, s = (int(x) for x in m.groups())
        value = self[key] = h * 3600 + mi * 60 + s
        return value


class _Shapes(dict[bytes, bool]):
    """Is the fields part of a line's shape (after the device, every digit a 0:
    ``"demand":0.0,"consumption":0000.0000}``) canonical? Known fields, quoted, each at
    most once and in SPEC order, each a JSON number, then the closing brace. A digit in a
    name shows as a 0 and makes it unknown. Which digits stand where is not checked (a
    hand-edited ``00.5`` is sent as written: InfluxDB takes it as 0.5, or refuses it and
    only it is set aside)."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.order = {name.encode(): i for i, name in enumerate(fields)}

    def __missing__(self, key: bytes) -> bool:
        if len(self) >= _MAX_SHAPES:
            self.clear()
        last = -1
        ok = key.endswith(b"}") and len(key) > 1
        for part in key[:-1].split(b",") if ok else ():
            name, colon, value = part.partition(b":")
            quoted = len(name) > 2 and name[:1] == name[-1:] == b'"'
            order = self.order.get(name[1:-1], -1) if quoted else -1
            if not colon or order <= last or _NUMBER_SHAPE.fullmatch(value) is None:
                ok = False
                break
            last = order
        self[key] = ok
        return ok


@dataclass(frozen=True)
class _Kind:
    """What a fuel's canonical line has after the device id, and its measurement."""

    after_device: bytes  # from the device id's closing quote to the first field's name
    head: bytes  # the measurement and the comma before the tags
    shapes: _Shapes


_DAYS = _Days()
_TIMES = _Times()
_ELECTRICITY = _Kind(b'",', MEASUREMENT.encode() + b",", _Shapes(FIELDS))
_GAS = _Kind(b'","fuel":"gas",', GAS_MEASUREMENT.encode() + b",", _Shapes(GAS_FIELDS))


def fast_lines(raw: bytes) -> bytes | None:
    """Canonical lines (each ending in a newline) → line protocol; None if not canonical."""
    done = _fast(raw)
    return None if done is None else done[0]


def _fast(raw: bytes, kind: _Kind = _ELECTRICITY) -> tuple[bytes, int] | None:
    """(line protocol, lines) of a block of canonical lines of one device and one fuel,
    else None."""
    if not raw:
        return b"", 0
    if not raw.endswith(b"\n"):
        return None  # the last line has no newline
    t = raw.translate(_TABLE, b'"')
    lines = t.split(b"\n")
    lines.pop()
    n = len(lines)
    first = lines[0]
    comma = first.find(b",", 40)
    if (
        comma < 0
        or first[28:40] != b"Z,device_id="
        or _DEVICE_RE.fullmatch(first[40:comma]) is None
    ):
        return None
    # Every line's shape starts with the read_at and device_id of the first line's shape:
    # the day, the time and the device stand at the same places in every line, and what
    # follows is a canonical fields part.
    prefix = _PREFIX + first[40:comma].translate(_ZEROS) + kind.after_device
    cut = len(prefix)
    shapes = raw.translate(_ZEROS).split(b"\n")
    shapes.pop()
    for shape in set(shapes):
        if shape[:cut] != prefix or not kind.shapes[shape[cut:]]:
            return None
    # … and the one device: ``Z,device_id=DEV,`` stands once in each line (at 28), or the
    # count falls short.
    if t.count(first[28 : comma + 1]) != n:
        return None
    try:
        seconds = map(_TIMES.__getitem__, map(_TOD, lines))
        if t.count(first[:20]) == n:  # one day (a day file's lines are)
            epochs = map(_DAYS[first[9:19]].__add__, seconds)
        else:
            epochs = map(add, map(_DAYS.__getitem__, map(_DAY, lines)), seconds)
        head = (kind.head + first[30:comma] + _SOURCE).replace(b"%", b"%%")
        fields = comma + len(kind.after_device.translate(_TABLE, b'"'))
        # One C-level format for the whole batch: fields and epochs interleaved by slice
        # assignment (zip would make a tuple per line, and the garbage collector would
        # then walk the heap every few batches).
        values: list[bytes | int] = [b""] * (2 * n)
        values[0::2] = map(itemgetter(slice(fields, -1)), lines)
        values[1::2] = epochs
        template = (head + b"%b %d\n") * (n - 1) + head + b"%b %d"
        return template % tuple(values), n
    except (ValueError, KeyError):
        return None


def tune_allocator() -> bool:
    """Keep large freed buffers in the heap (glibc): a bulk sync then stops paying page
    faults for every fresh megabyte it converts (about a third of its CPU here).

    For the one-shot `sync-cache`; a no-op where ``mallopt`` is missing (musl, macOS).
    """
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 16 << 20) == 1
    return bool(mallopt(m_trim_threshold, 64 << 20) == 1 and ok)


def slow_line(raw: bytes) -> bytes:
    """One line of any layout → line protocol (ValueError if it is not a reading)."""
    return parse_line(raw).to_line_protocol().encode()


def convert(raw: bytes, start: int) -> tuple[bytes, int, list[tuple[int, bytes, str]]]:
    """Source bytes → (line protocol, readings, bad lines as (offset, line, reason))."""
    at = raw.find(_GAS_MARK)
    done = _fast(raw) if at < 0 else _fast_with_gas(raw, at)
    if done is not None:
        return done[0], done[1], []
    parts: list[bytes] = []
    bad: list[tuple[int, bytes, str]] = []
    offset = start
    for line in split_lines(raw):
        here = offset
        offset += len(line)
        if not line.strip():
            continue
        one = _fast(line) if line.endswith(b"\n") else None
        if one is not None:
            parts.append(one[0])
            continue
        try:
            parts.append(slow_line(line))
        except ValueError as exc:
            bad.append((here, line, str(exc) or "unreadable"))
    return b"\n".join(parts), len(parts), bad


# A canonical gas line (SPEC §4.5): ``"fuel":"gas"`` right after ``device_id``. A day file
# holds 48 of them among 8,640 electricity lines: they are taken out of the block (one C-level
# search per gas line), and each fuel's lines go through the fast path as a block of their own.
_GAS_MARK = b'","fuel":"gas",'


def _fast_with_gas(raw: bytes, at: int) -> tuple[bytes, int] | None:
    """:func:`_fast` for a block that also holds gas lines (the first mark ``at``); None if
    not all of them are canonical.

    The gas lines are found by a C-level search for their mark (no Python code per
    electricity line) and cut out: what is left is one block of electricity again, the gas
    lines another."""
    if not raw.endswith(b"\n"):
        return None  # the last line has no newline
    pieces: list[bytes] = []
    gas: list[bytes] = []
    pos = 0
    while at >= 0:
        start = raw.rfind(b"\n", 0, at) + 1
        end = raw.index(b"\n", at) + 1
        pieces.append(raw[pos:start])
        gas.append(raw[start:end])
        pos = end
        at = raw.find(_GAS_MARK, end)
    pieces.append(raw[pos:])
    parts: list[bytes] = []
    count = 0
    for block, kind in ((b"".join(pieces), _ELECTRICITY), (b"".join(gas), _GAS)):
        if block:
            done = _fast(block, kind)
            if done is None:
                return None  # the whole block is taken line by line
            parts.append(done[0])
            count += done[1]
    return b"\n".join(parts), count


def _reading_lines(raw: bytes) -> list[bytes]:
    """The source lines of a batch that are readings (for halves and rejected/)."""
    out = []
    for line in split_lines(raw):
        if line.strip():
            try:
                parse_line(line)
            except ValueError:
                continue
            out.append(line)
    return out


def _same(line: bytes) -> bytes:
    return line


# --- the sync ---------------------------------------------------------------------------------


_Pending = tuple[Snapshot, "Future[Delivery[bytes]] | None", bool]  # file, last send, all read


class _Run:
    def __init__(
        self,
        cache: Cache,
        sink: LineSink,
        batch_size: int,
        max_readings: int | None,
        lock_timeout: float,
        progress: Callable[[int], None] | None,
        now: Clock,
        stop: Callable[[], bool],
    ) -> None:
        self.cache = cache
        self.sink = sink
        self.batch_size = batch_size
        self.max_readings = max_readings
        self.lock_timeout = lock_timeout
        self.progress = progress
        self.now = now
        self.stop_requested = stop
        self.result = SyncResult()
        self.read = 0
        self.halted = False
        self.line_bytes = 170.0  # bytes per line, as last seen (sizes the next read)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="octomon-sync")
        self.delivered: dict[str, int] = {}  # files delivered whole that changed meanwhile

    def halt(self, error: OctomonError) -> None:
        self.halted = True
        self.result.error = error

    def stopping(self) -> bool:
        if self.stop_requested():
            self.result.stopped = True
            self.halted = True
        return self.halted

    def run(self, names: list[str]) -> None:
        """Every file in turn. The one request in flight carries over from a file to the
        next: the next file is read and converted while the last batch of the previous
        one is on the wire, and that file is deleted once its answer is in."""
        pending: _Pending | None = None
        try:
            for i, name in enumerate(names):
                if self.stopping():
                    return
                if self.max_readings is not None and self.read >= self.max_readings:
                    return  # the slice is used up (a file begun is always finished)
                try:
                    snap = self.cache.open_snapshot(name, self.lock_timeout)
                except CacheBusy as exc:
                    if i == 0:
                        raise
                    self.halt(exc)
                    return
                if snap is None:
                    continue
                pending = self.file(snap, pending)
                if self.halted:
                    return
        finally:
            if pending is not None:
                self.settle(pending)

    def settle(self, pending: _Pending) -> None:
        """Wait for a file's last answer; delete the file if all of it went through."""
        snap, inflight, complete = pending
        try:
            if inflight is not None and not self.answered(inflight.result()):
                return
            if complete and not self.halted:
                self.finish(snap)
        finally:
            snap.close()

    def finish(self, snap: Snapshot) -> None:
        try:
            removed = self.cache.remove_if_unchanged(snap, self.lock_timeout)
        except CacheError as exc:
            self.halt(exc)
            return
        if removed:
            self.result.files_done += 1
        else:
            self.delivered[snap.name] = snap.size

    def file(self, snap: Snapshot, before: _Pending | None) -> _Pending | None:
        """Send one file, batch by batch: the next batch is read and converted while the
        previous one is on the wire (one request in flight; answers handled in order).
        ``before`` is the previous file, its last batch still on the wire: it is settled
        before this file's first batch is sent. Returns this file, its last batch
        possibly still on the wire (None once settled here)."""
        pos = 0
        inflight: Future[Delivery[bytes]] | None = None
        while pos < snap.size:
            if self.stopping():
                break
            raw = self.read_batch(snap, pos)
            if not raw:
                break
            body, count, bad = convert(raw, pos)
            self.read += count + len(bad)
            if bad:
                try:
                    self.result.quarantined += self.cache.quarantine(snap.name, bad, self.now())
                except CacheError as exc:
                    self.halt(exc)
                    break
            pos += len(raw)
            if before is not None:
                self.settle(before)
                before = None
                if self.halted:
                    break
            if count:
                if inflight is not None and not self.answered(inflight.result()):
                    inflight = None
                    break
                inflight = self.pool.submit(self.send, raw, body, count)
        if before is not None:
            self.settle(before)
        done = pos >= snap.size and not self.halted
        if not done:  # stopped or failed: this file is left whole
            self.settle((snap, inflight, False))
            return None
        return (snap, inflight, True)

    def read_batch(self, snap: Snapshot, pos: int) -> bytes:
        """Up to ``batch_size`` whole lines from ``pos`` (a torn last line of the file too),
        never past the snapshot's size: one read, sized from the last batch's line length."""
        fd, end, want = snap.handle.fileno(), snap.size, self.batch_size
        raw = os.pread(fd, min(end - pos, int(want * self.line_bytes) + 4096), pos)
        while raw.count(b"\n") < want and pos + len(raw) < end:
            more = os.pread(fd, min(end - pos - len(raw), 1 << 20), pos + len(raw))
            if not more:
                break
            raw += more
        lines = raw.count(b"\n")
        if lines >= want:  # cut after the want-th newline
            cut = raw.rfind(b"\n") + 1
            for _ in range(lines - want):
                cut = raw.rfind(b"\n", 0, cut - 1) + 1
            raw = raw[:cut]
        if raw:
            self.line_bytes = 1.02 * len(raw) / max(1, min(lines, want))
        return raw

    def send(self, raw: bytes, body: bytes, count: int) -> Delivery[bytes]:
        """One batch through delivery (in the sending thread)."""
        return deliver(
            self.sink,
            lambda: _reading_lines(raw),
            line=slow_line,
            record=_same,
            rejected=self.cache,
            now=self.now(),
            body=body,
            count=count,
        )

    def answered(self, done: Delivery[bytes]) -> bool:
        """Count one batch's outcome; False when the sync has to stop."""
        self.result.synced += done.acknowledged_count
        self.result.rejected += len(done.set_aside)
        if done.refusal is not None and done.set_aside:
            self.result.error = done.refusal
        if self.progress is not None and done.stored:
            self.progress(done.stored)
        if done.failure is not None:
            self.halt(done.failure)
            return False
        if done.cache_error is not None:
            self.halt(done.cache_error)
            return False
        return True

    def count_left(self) -> int:
        left = 0
        for path in self.cache.files():
            try:
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    start = self.delivered.get(path.name, 0)
                    left += count_lines(handle, start if start <= size else 0, size)
            except OSError:
                continue
        return left


def _never() -> bool:
    return False


def sync(
    cache: Cache,
    sink: LineSink,
    *,
    batch_size: int = MAX_BATCH,
    max_readings: int | None = None,
    lock_timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
    now: Clock = utcnow,
    stop: Callable[[], bool] = _never,
) -> SyncResult:
    """Send the cache to InfluxDB, oldest first; see the module docstring.

    Stops at the first unavailable or configuration error (``result.error``; the file is
    left whole), or between two batches once ``stop()`` is true (``result.stopped``).
    ``max_readings`` bounds the readings of one call, at a file's end (a file begun is
    finished, so every slice gets on). Raises :class:`CacheBusy` if the cache lock cannot
    be had within ``lock_timeout`` at the start; later it stops with that error instead.
    What InfluxDB refuses is set aside (``result.rejected``; ``result.error`` = that
    refusal) and the sync goes on.
    """
    run = _Run(
        cache,
        sink,
        max(1, min(batch_size, MAX_BATCH)),
        max_readings,
        lock_timeout,
        progress,
        now,
        stop,
    )
    names = [p.name for p in cache.files()]
    if names:
        try:
            run.run(names)
        finally:
            run.pool.shutdown(wait=True)
    run.result.left = run.count_left() if names else 0
    return run.result


__all__ = ["MAX_BATCH", "SyncResult", "convert", "fast_lines", "slow_line", "sync"]
