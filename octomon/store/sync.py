"""Cache → InfluxDB, oldest first: shared by `octomon run` and `octomon sync-cache`.

Streamed: a file is read in batches of up to 5,000 lines, so memory stays flat whatever
the backlog. Without threads, the next batch is read and converted while the server
digests the previous one: its answer is read only then (one request in flight, answers
handled in order). A file is deleted only once every line
of it was acknowledged (or set aside as refused, or quarantined as unreadable), and only
if it did not change meanwhile; a sync that stops leaves it whole, and this process
remembers how far it got (offset + CRC of what it sent), so the next slice goes on from
there instead of resending.

Lines that octomon's writer produced (``cache.index``, CRC verified) are read a block
at a time and take a fast path that turns the canonical layout into line protocol with a
few whole-block byte operations and C-level maps (no Python code runs per line): the
numbers are copied as written, which is Python's ``repr`` of the float (the writer emits
``json.dumps(float)``), exactly what ``Reading.to_line_protocol`` writes. Every other line
is parsed in full (``Reading.from_obj``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from operator import add, itemgetter

from octomon.clock import Clock, utcnow
from octomon.errors import (
    CacheBusy,
    CacheError,
    InfluxConfigError,
    InfluxRefused,
    InfluxUnavailable,
    OctomonError,
)
from octomon.readings import MEASUREMENT, SOURCE
from octomon.store.cache import Cache, Snapshot, count_lines, crcs_of, parse_line, split_lines
from octomon.store.influx import MAX_BATCH, InfluxSink, PendingWrite

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    synced: int = 0  # acknowledged by InfluxDB
    rejected: int = 0  # refused twice, set aside under rejected/
    left: int = 0  # lines still waiting in the cache
    error: OctomonError | None = None  # why it stopped (or the last refusal)
    files_done: int = 0  # day files fully delivered and deleted
    quarantined: int = 0  # unreadable lines moved to quarantine/


# --- the fast path: canonical lines → line protocol -----------------------------------------

# After ``translate`` (quotes dropped, ':' → '='), a canonical line reads
#   {read_at=2026-11-27T14=00=10Z,device_id=DEV,consumption_delta=0.0005,…,consumption=5038.4}
# [9:19] is the day, [20:28] the time of day, and after ``device_id=DEV,`` come the fields
# exactly as line protocol wants them. Everything below runs in C (map, join, translate):
# a Python loop per line would cost more than the whole of it.
_TABLE = bytes.maketrans(b":", b"=")
_HEAD = MEASUREMENT.encode() + b","
_SOURCE = b",source=" + SOURCE.encode() + b" "
_DAY = itemgetter(slice(9, 19))
_TOD = itemgetter(slice(20, 28))
_DAY_RE = re.compile(rb"\d{4}-\d\d-\d\d")
_TOD_RE = re.compile(rb"([01]\d|2[0-3])=([0-5]\d)=([0-5]\d)")
_EPOCH = date(1970, 1, 1)


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


_DAYS = _Days()
_TIMES = _Times()


def fast_lines(raw: bytes) -> bytes | None:
    """Canonical lines (each ending in a newline) → line protocol; None if not canonical.

    Only for bytes octomon's writer produced (``cache.fast_eligible``, ``cache.index``).
    """
    done = _fast(raw)
    return None if done is None else done[0]


def _fast(
    raw: bytes, day: bytes | None = None, device: bytes | None = None
) -> tuple[bytes, int] | None:
    """(line protocol, lines) of canonical lines.

    ``day`` and ``device``, when the caller knows them (``cache.index``), are those of
    every line, which saves counting them.
    """
    if not raw:
        return b"", 0
    t = raw.translate(_TABLE, b'"')
    lines = t.split(b"\n")
    if lines.pop():
        return None  # the last line has no newline
    n = len(lines)
    first = lines[0]
    comma = first.find(b",", 40)
    if comma < 0 or first[29:40] != b",device_id=" or first[:9] != b"{read_at=":
        return None
    try:
        seconds = map(_TIMES.__getitem__, map(_TOD, lines))
        # A day file's octomon-written lines are all of its day (the writer files them so).
        if first[9:19] == day or t.count(first[:20]) == n:
            epochs = map(_DAYS[first[9:19]].__add__, seconds)
        else:
            epochs = map(add, map(_DAYS.__getitem__, map(_DAY, lines)), seconds)
        if first[40:comma] == device or t.count(first[29 : comma + 1]) == n:  # one device
            head = (_HEAD + first[30:comma] + _SOURCE).replace(b"%", b"%%")
            # One C-level format for the whole batch: fields and epochs interleaved by slice
            # assignment (zip would make a tuple per line, and the garbage collector would
            # then walk the heap every few batches).
            values: list[bytes | int] = [b""] * (2 * n)
            values[0::2] = map(itemgetter(slice(comma + 1, -1)), lines)
            values[1::2] = epochs
            template = (head + b"%b %d\n") * (n - 1) + head + b"%b %d"
            return template % tuple(values), n
        out = []
        for x, epoch in zip(lines, epochs):
            i = x.index(b",", 40)
            out.append(b"%b%b%b%b %d" % (_HEAD, x[30:i], _SOURCE, x[i + 1 : -1], epoch))
        return b"\n".join(out), n
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


# --- batches ------------------------------------------------------------------------------


@dataclass
class _Batch:
    state: _File
    start: int
    raw: bytes  # the source bytes [start, start + len(raw))
    body: bytes  # line protocol
    count: int  # readings in body

    @property
    def end(self) -> int:
        return self.start + len(self.raw)

    def readings_lines(self) -> list[bytes]:
        """The source lines that are readings (for halves and rejected/)."""
        out = []
        for line in split_lines(self.raw):
            if line.strip():
                try:
                    parse_line(line)
                except ValueError:
                    continue
                out.append(line)
        return out


def _convert(
    raw: bytes, start: int, trusted: int
) -> tuple[bytes, int, list[tuple[int, bytes, str]]]:
    """Source bytes → (line protocol, readings, bad lines as (offset, line, reason))."""
    fast_end = max(0, min(len(raw), trusted - start))
    parts: list[bytes] = []
    count = 0
    if fast_end:
        done = _fast(raw[:fast_end] if fast_end < len(raw) else raw)
        if done is None:  # a surprise in trusted bytes: parse them like any others
            fast_end = 0
        elif done[1]:
            parts.append(done[0])
            count = done[1]
    bad: list[tuple[int, bytes, str]] = []
    offset = start + fast_end
    for line in split_lines(raw[fast_end:]) if fast_end < len(raw) else ():
        here = offset
        offset += len(line)
        if not line.strip():
            continue
        try:
            parts.append(slow_line(line))
            count += 1
        except ValueError as exc:
            bad.append((here, line, str(exc) or "unreadable"))
    return b"\n".join(parts), count, bad


# --- per-process progress within a file ------------------------------------------------------

_PROGRESS: dict[tuple[str, str], tuple[int, int]] = {}  # (dir, name) -> (acked, CRC [0, acked))
_PROGRESS_LOCK = threading.Lock()


def _key(cache: Cache, name: str) -> tuple[str, str]:
    return (str(cache.directory.absolute()), name)


@dataclass
class _File:
    snap: Snapshot
    acked: int  # bytes [0, acked) are delivered (or set aside)
    read_all: bool = False
    pending: int = 0  # batches read but not yet answered
    finished: bool = False


@dataclass
class _Run:
    cache: Cache
    sink: InfluxSink
    batch_size: int
    max_readings: int | None
    lock_timeout: float
    progress: Callable[[int], None] | None
    now: Clock
    result: SyncResult = field(default_factory=SyncResult)
    read: int = 0  # lines read (the max_readings bound)
    line_bytes: float = 200.0  # bytes per canonical line, as last seen (a little over)
    stopped: bool = False
    files: list[_File] = field(default_factory=list)

    # --- reading -------------------------------------------------------------------------

    def batches(self, names: list[str]) -> Iterator[_Batch]:
        for i, name in enumerate(names):
            if self.stopped or self.budget() <= 0:
                return
            key = _key(self.cache, name)
            with _PROGRESS_LOCK:
                resume = _PROGRESS.get(key)
            try:
                snap = self.cache.open_snapshot(
                    name, self.lock_timeout, (resume[0],) if resume else ()
                )
            except CacheBusy as exc:
                if i == 0:
                    raise
                self.stop(exc)
                return
            if snap is None:
                continue
            start = 0
            if resume is not None and snap.crcs.get(resume[0]) == resume[1]:
                start = resume[0]
            state = _File(snap, start)
            self.files.append(state)
            yield from self.file_batches(state)

    def file_batches(self, state: _File) -> Iterator[_Batch]:
        snap = state.snap
        pos = state.acked
        day = snap.name[6:16].encode()  # cache_YYYY-MM-DD.jsonl
        while pos < snap.size and not self.stopped:
            n = min(self.batch_size, self.budget())
            if n <= 0:
                return
            fast = self.trusted_batch(snap, pos, n, day) if pos < snap.trusted else None
            if fast is not None:
                raw, body, count = fast
                bad: list[tuple[int, bytes, str]] = []
            else:
                snap.handle.seek(pos)
                raw = b"".join(islice(snap.handle, n))
                if not raw:
                    break
                if len(raw) > snap.size - pos:
                    raw = raw[: snap.size - pos]  # bytes appended after the snapshot wait
                body, count, bad = _convert(raw, pos, snap.trusted)
            self.read += count + len(bad)
            if bad:
                try:
                    self.result.quarantined += self.cache.quarantine(snap.name, bad, self.now())
                except CacheError as exc:
                    self.stop(exc)
                    return
            pos += len(raw)
            state.read_all = pos >= snap.size
            state.pending += 1
            yield _Batch(state, pos - len(raw), raw, body, count)
        state.read_all = pos >= snap.size

    def trusted_batch(
        self, snap: Snapshot, pos: int, n: int, day: bytes
    ) -> tuple[bytes, bytes, int] | None:
        """``n`` whole octomon-written lines from ``pos`` (fewer at the end), one block read.

        The block is sized from the last one's bytes per line, a little over, and the few
        lines too many are cut off the end of both the source and the line protocol.
        """
        limit = snap.trusted - pos
        want = min(limit, int(n * self.line_bytes) + 256)
        try:
            raw = os.pread(snap.handle.fileno(), want, pos)
        except OSError:
            return None
        if len(raw) < want:
            return None
        if want < limit:
            raw = raw[: raw.rfind(b"\n") + 1]
        device = snap.device.encode() if snap.device else None
        done = _fast(raw, day, device) if raw else None
        if done is None:
            return None
        body, count = done
        self.line_bytes = 1.02 * len(raw) / count
        excess = count - n
        if excess > 200:  # far off (the first block of a run): cut, then convert again
            raw = raw[: len(raw) - len(raw.split(b"\n", n)[-1])]
            done = _fast(raw, day, device)
            if done is None:
                return None
            body, count = done
        elif excess > 0:
            end, stop = len(raw), len(body)
            for _ in range(excess):
                end = raw.rfind(b"\n", 0, end - 1) + 1
                stop = body.rfind(b"\n", 0, stop)
            raw, body, count = raw[:end], body[:stop], n
        return raw, body, count

    def budget(self) -> int:
        if self.max_readings is None:
            return self.batch_size
        return self.max_readings - self.read

    def stop(self, error: OctomonError) -> None:
        self.stopped = True
        if self.result.error is None or isinstance(self.result.error, InfluxRefused):
            self.result.error = error

    # --- answers -------------------------------------------------------------------------

    def answered(self, batch: _Batch, pending: PendingWrite | _Done | None) -> None:
        """Handle one batch's answer, in order; ``stopped`` is set on a lasting failure."""
        state = batch.state
        state.pending -= 1
        try:
            if pending is not None:
                pending.result()
            self.result.synced += batch.count
            if self.progress and batch.count:
                self.progress(batch.count)
        except InfluxRefused as exc:
            if not self.split(batch, exc):
                return
        except (InfluxUnavailable, InfluxConfigError) as exc:
            self.stop(exc)
            return
        state.acked = batch.end
        if state.read_all and state.pending == 0 and state.acked >= state.snap.size:
            self.finish(state)

    def split(self, batch: _Batch, exc: InfluxRefused) -> bool:
        """Halves sent once more; a half refused again goes to rejected/ (SPEC §4.4)."""
        log.warning(
            "InfluxDB refused a batch of %d readings (%s): splitting it", batch.count, exc.message
        )
        lines = batch.readings_lines()
        mid = max(1, len(lines) // 2)
        for half in (lines[:mid], lines[mid:]):
            if not half:
                continue
            body = b"\n".join(slow_line(x) for x in half)
            try:
                self.sink.write_lines(body, len(half))
            except InfluxRefused as again:
                message = f"HTTP {again.status}: {again.server_message}"
                try:
                    path = self.cache.write_rejected(half, message, self.now())
                except CacheError as err:
                    self.stop(err)
                    return False
                log.error(
                    "InfluxDB refused %d cached readings (%s); set aside in %s",
                    len(half),
                    message,
                    path,
                )
                self.result.rejected += len(half)
                if self.result.error is None or isinstance(self.result.error, InfluxRefused):
                    self.result.error = again
            except (InfluxUnavailable, InfluxConfigError) as lost:
                self.stop(lost)
                return False
            else:
                self.result.synced += len(half)
            if self.progress:
                self.progress(len(half))
        return True

    def finish(self, state: _File) -> None:
        try:
            removed = self.cache.remove_if_unchanged(state.snap, self.lock_timeout)
        except CacheError as exc:
            self.stop(exc)
            return
        if removed:
            state.finished = True
            self.result.files_done += 1
            with _PROGRESS_LOCK:
                _PROGRESS.pop(_key(self.cache, state.snap.name), None)

    def remember(self) -> None:
        """Keep how far each unfinished file got (offset + CRC), for the next slice."""
        for state in self.files:
            if state.finished or state.acked <= 0:
                continue
            try:
                crc = crcs_of(state.snap.handle, [state.acked]).get(state.acked)
            except OSError:
                continue
            if crc is not None:
                with _PROGRESS_LOCK:
                    _PROGRESS[_key(self.cache, state.snap.name)] = (state.acked, crc)

    def count_left(self) -> int:
        states = {f.snap.name: f for f in self.files}
        left = 0
        for path in self.cache.files():
            try:
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    state = states.get(path.name)
                    start = state.acked if state is not None and state.acked <= size else 0
                    left += count_lines(handle, start, size)
            except OSError:
                continue
        return left


class _Done:
    """The answer of a write already made (a sink without ``send``: a test's fake)."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def result(self) -> None:
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        pass


def _send(sink: InfluxSink, body: bytes, count: int) -> PendingWrite | _Done:
    if hasattr(sink, "send"):
        return sink.send(body, count)
    try:
        sink.write_lines(body, count)
    except InfluxRefused as exc:
        return _Done(exc)
    return _Done(None)


def sync(
    cache: Cache,
    sink: InfluxSink,
    *,
    batch_size: int = 5000,
    max_readings: int | None = None,
    lock_timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
    now: Clock = utcnow,
) -> SyncResult:
    """Send the cache to InfluxDB, oldest first; see the module docstring.

    Stops at the first unavailable or configuration error (``result.error``; the file is
    left whole). ``max_readings`` bounds the lines read in this call. Raises
    :class:`CacheBusy` if the cache lock cannot be had within ``lock_timeout`` at the
    start; later it stops with that error instead. A batch refused twice is set aside
    (``result.rejected``, ``result.error`` = that refusal) and the sync goes on.
    """
    size = max(1, min(batch_size, MAX_BATCH))
    run = _Run(cache, sink, size, max_readings, lock_timeout, progress, now)
    names = [p.name for p in cache.files()]
    if not names:
        return run.result
    inflight: tuple[_Batch, PendingWrite | _Done | None] | None = None
    try:
        for batch in run.batches(names):
            # The previous batch's answer is read only now: the server digested it while
            # this one was read and converted.
            if inflight is not None:
                previous, inflight = inflight, None
                run.answered(*previous)
                if run.stopped:
                    break
            if batch.count == 0:
                inflight = (batch, None)
                continue
            try:
                inflight = (batch, _send(sink, batch.body, batch.count))
            except (InfluxUnavailable, InfluxConfigError) as exc:
                run.stop(exc)
                break
        if inflight is not None:
            previous, inflight = inflight, None
            run.answered(*previous)  # an answer that came is an answer
    finally:
        if inflight is not None and inflight[1] is not None:
            inflight[1].abandon()
        run.remember()
        for state in run.files:
            state.snap.close()
    run.result.left = run.count_left()
    return run.result


__all__ = ["SyncResult", "fast_lines", "slow_line", "sync"]
