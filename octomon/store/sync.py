"""Cache → InfluxDB, oldest first: shared by `octomon run` and `octomon sync-cache`.

Streamed: a file is read in batches of up to 5,000 lines, so memory stays flat whatever
the backlog. Each batch goes through :func:`octomon.store.delivery.deliver` (what is
refused is split and set aside there). A file is deleted only once every line of it was
acknowledged (or set aside as refused, or quarantined as unreadable), and only if it
did not change meanwhile; a sync that stops part-way leaves the file whole, and the next
one sends it again from its start (harmless: one point per series and timestamp; a day
file holds at most 8,640 readings, so no memory of how far it got is kept).

A batch's lines become line protocol in :mod:`octomon.store.transcode` (the byte fast path
for the canonical layout of :mod:`octomon.store.cacheline`, else a full parse).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from octomon.clock import Clock, utcnow
from octomon.errors import CacheBusy, CacheError, OctomonError
from octomon.store.cache import Cache, Snapshot
from octomon.store.delivery import Delivery, LineSink, deliver
from octomon.store.lines import count_lines, parse_line, split_lines
from octomon.store.transcode import convert, slow_line

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
    evicted_files: int = 0  # setting aside went over CACHE_MAX_MB: oldest files dropped
    evicted_readings: int = 0  # … and the readings they held


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
        self.result.evicted_files += done.evicted_files
        self.result.evicted_readings += done.evicted_readings
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


__all__ = ["MAX_BATCH", "SyncResult", "sync", "tune_allocator"]
