"""Where the monitor's readings go (SPEC §4.4): InfluxDB, the cache, or ``rejected/``.

Direct mode writes each cycle's readings in one request. When InfluxDB fails the
readings are cached and the writer is in *cache mode*: new readings queue behind the
backlog (one path, order kept) until a health check -- a write of the oldest cached batch,
the only proof that InfluxDB takes our data -- succeeds and the backlog has drained in
bounded slices. Local mode (no InfluxDB) is cache mode for good. What becomes of a batch
(acknowledged, refused and set aside, unavailable) is decided by
:func:`octomon.store.delivery.deliver`.

Every failure becomes one alert per state change through the alert policy; nothing here
sleeps or reads a clock.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.errors import (
    CacheBusy,
    CacheError,
    CacheFull,
    InfluxConfigError,
    InfluxError,
    InfluxRefused,
    InfluxUnavailable,
    OctomonError,
)
from octomon.latch import Latch
from octomon.readings import AnyReading
from octomon.store.delivery import Delivery, LineSink, deliver_readings

if TYPE_CHECKING:
    from octomon.store.cache import AppendResult, CacheStatus

log = logging.getLogger("octomon.daemon.monitor")

HEALTH_BATCH = 5000  # the health check writes the oldest cached batch
DRAIN_SLICE = 10_000  # readings per drain slice between poll cycles (two requests)
LOCK_TIMEOUT = 1.0  # seconds a sync waits for the cache lock before trying later


class Sink(Protocol):
    def write_lines(self, body: bytes | str, count: int) -> None: ...
    def close(self) -> None: ...


class CacheLike(Protocol):
    def append(self, readings: Sequence[AnyReading]) -> AppendResult: ...
    def is_empty(self) -> bool: ...
    def files(self) -> list[Path]: ...
    def status(self) -> CacheStatus: ...
    def write_rejected(self, lines: Sequence[str | bytes], message: str, now: datetime) -> Any: ...


SyncFn = Callable[..., Any]  # octomon.store.sync.sync


class StoreProblem(enum.Enum):
    """Why readings could not be kept anywhere (each has its own message and outcome)."""

    CACHE_BUSY = "cache busy"  # another process held the cache lock: fetched again later
    DISK_FULL = "disk full"  # ENOSPC
    CACHE_FAILED = "cache failed"  # any other I/O error


@dataclass
class Stored:
    """What one store did: ``unstored`` readings could not be kept anywhere."""

    stored: list[AnyReading] = field(default_factory=list)
    unstored: list[AnyReading] = field(default_factory=list)
    rejected: int = 0
    error: OctomonError | None = None
    problem: StoreProblem | None = None


@dataclass(frozen=True)
class SyncStep:
    """What a health check or a drain slice did (for the loop's schedule and the logs)."""

    synced: int = 0
    left: int = 0
    rejected: int = 0
    acknowledged: bool = False  # InfluxDB took the batch: the cache can drain
    done: bool = False  # the cache is empty: back to direct mode
    retry_after: float | None = None  # InfluxDB asked for this wait (Retry-After)
    error: OctomonError | None = None


class Writer:
    """The store side of the monitor; ``sink`` is None in local mode."""

    def __init__(
        self,
        *,
        cache: CacheLike,
        sink: Sink | None,
        sync: SyncFn,
        policy: AlertPolicy,
        emit: Callable[[Sequence[Alert]], None],
        cache_dir: Path,
        stop: threading.Event,
    ) -> None:
        self.cache = cache
        self.sink = sink
        self.policy = policy
        self.emit = emit
        self.cache_dir = cache_dir
        self.stop = stop
        self.backlog = 0  # readings in the cache, kept up to date without rescanning it
        self.retry_after: float | None = None  # InfluxDB's Retry-After when it was lost
        self.last_error: OctomonError | None = None  # of the last sync step
        self._sync = sync
        self._cache_mode = False
        self._draining = False
        self._drained = 0
        self._influx_down = False
        self._caching = Latch(log)  # appends failing: logged once, "works again" once

    @property
    def mode(self) -> str:
        if self.sink is None:
            return "local"
        return "cache" if self._cache_mode else "influxdb"

    @property
    def cache_mode(self) -> bool:
        """InfluxDB is configured, and new readings queue in the cache behind a backlog."""
        return self.sink is not None and self._cache_mode

    @property
    def draining(self) -> bool:
        return self.cache_mode and self._draining

    def open(self) -> None:
        """At start-up: a backlog left from an earlier run means cache mode."""
        self._count_backlog()
        if self.sink is not None and (self.backlog > 0 or not self.cache.is_empty()):
            self._cache_mode = True
            log.info(
                "%d readings are waiting in the cache: new readings queue behind them "
                "until they are synced",
                self.backlog,
            )

    def _count_backlog(self) -> None:
        try:
            self.backlog = self.cache.status().readings
        except CacheError as exc:
            log.warning("could not read the cache's status: %s", exc.message)
            self.backlog = 0

    def notice(self) -> bool:
        """Each cycle in direct mode: has another process (``backfill``) cached readings?

        Cheap: one directory listing (``is_empty``), no file is read; only when something
        is there is the backlog counted, once. True: now in cache mode, InfluxDB not known
        to be down (the loop health-checks, i.e. drains, at once).
        """
        if self.sink is None or self._cache_mode:
            return False
        try:
            if self.cache.is_empty():
                return False
        except CacheError:
            return False  # a listing error is not a backlog; the append reports it
        self._cache_mode = True
        self._count_backlog()
        log.info(
            "%d readings appeared in the cache (another octomon process cached them): new "
            "readings queue behind them until they are synced",
            self.backlog,
        )
        return True

    # --- one cycle's readings ----------------------------------------------------------------

    def store(self, batch: Sequence[AnyReading], now: datetime) -> Stored:
        """Store one batch (either fuel, or both) durably: InfluxDB or the cache."""
        out = Stored()
        readings = list(batch)
        if not readings:
            return out
        # Local mode, a backlog to queue behind, or stopping go to the cache (it is quick and
        # durable; a slow InfluxDB must not hold up a clean stop).
        direct = self.sink is not None and not self._cache_mode and not self.stop.is_set()
        done = store_batch(readings, sink=self.sink, cache=self.cache, now=now, direct=direct)
        if done.delivery is not None:
            self._delivered(done.delivery, now, out)
        self._cached(done, now, out)
        if direct and out.stored and not self._cache_mode and self._influx_down:
            self._influx_down = False
            self.emit(self.policy.influx_restored(now))
        if direct:
            out.stored.sort(key=lambda r: r.read_at)
        return out

    def _delivered(self, done: Delivery[AnyReading], now: datetime, out: Stored) -> None:
        """InfluxDB's part: acknowledged, refused and set aside, or lost (cache mode)."""
        out.stored.extend(done.acknowledged)
        out.stored.extend(done.set_aside)
        if done.set_aside:
            out.rejected += len(done.set_aside)
            out.error = done.refusal
            message = done.refusal.server_message if done.refusal else ""
            self.emit(self.policy.write_refused(now, len(done.set_aside), message))
        if done.evicted_files:  # rejected/ took the cache over CACHE_MAX_MB
            self.emit(self.policy.cache_evicted(now, done.evicted_files, done.evicted_readings))
        if done.unstored:
            assert done.cache_error is not None
            full = isinstance(done.cache_error, CacheFull)
            out.unstored.extend(done.unstored)
            out.error = done.cache_error
            out.problem = StoreProblem.DISK_FULL if full else StoreProblem.CACHE_FAILED
            self.emit(self.policy.cache_failed(now, done.cache_error.message, full=full))
        if done.failure is not None:
            self._lost(now, done.failure)
            out.error = out.error or done.failure

    def _lost(self, now: datetime, exc: InfluxError) -> None:
        """InfluxDB failed: cache mode from now on; one alert per state change."""
        self._cache_mode = True
        self._draining = False
        self._influx_down = True
        if isinstance(exc, InfluxConfigError):
            self.retry_after = None
            self.emit(self.policy.influx_config(now, exc.message, exc.cause))
        else:
            self.retry_after = exc.retry_after if isinstance(exc, InfluxUnavailable) else None
            self.emit(self.policy.influx_lost(now, exc.message))

    def _cached(self, done: Batch, now: datetime, out: Stored) -> None:
        """The cache's part: appended, busy (fetched again), or failed (alerted once)."""
        exc = done.append_error
        if isinstance(exc, CacheBusy):  # not a failure of the disk: the next cycle fetches again
            out.unstored.extend(done.not_cached)
            out.error, out.problem = exc, StoreProblem.CACHE_BUSY
            log.warning(
                "the cache is busy; %d readings are fetched again next cycle: %s",
                len(done.not_cached),
                exc.message,
            )
            return
        if exc is not None:
            full = isinstance(exc, CacheFull)
            out.unstored.extend(done.not_cached)
            out.error = exc
            out.problem = StoreProblem.DISK_FULL if full else StoreProblem.CACHE_FAILED
            self._caching.fail(
                "caching %d readings failed: %s",
                len(done.not_cached),
                exc.message,
                level=logging.ERROR,
            )
            self.emit(self.policy.cache_failed(now, exc.message, full=full))
            return
        if not done.cached:
            return
        out.stored.extend(done.cached)
        appended = done.appended
        self.backlog += appended.appended if appended is not None else len(done.cached)
        if self._caching.ok("caching works again"):
            self.emit(self.policy.cache_ok(now))
        if appended is not None and appended.evicted_files:
            lost = appended.evicted_readings
            self.backlog = max(0, self.backlog - lost)
            self.emit(self.policy.cache_evicted(now, len(appended.evicted_files), lost))

    # --- cache mode: the health check and the drain ----------------------------------------

    def health_check(self, now: datetime) -> SyncStep:
        """Write the oldest cached batch; when it is taken, start draining."""
        if not self.cache_mode:
            return SyncStep(done=True)
        step = self._sync_step(now, HEALTH_BATCH)
        if step.acknowledged:
            if step.synced and step.left:
                log.info(
                    "InfluxDB took the oldest cached batch: syncing the other %d readings",
                    step.left,
                )
            if self._influx_down:
                self._influx_down = False
                self.emit(self.policy.influx_restored(now))
            self._draining = True
            self._drained = step.synced
            if step.done:
                self._finish_drain(now)
        return step

    def drain(self, now: datetime, max_readings: int = DRAIN_SLICE) -> SyncStep:
        """One bounded slice of the backlog, oldest first, between poll cycles."""
        if not self.draining:
            return SyncStep(done=not self.cache_mode)
        step = self._sync_step(now, max_readings)
        self._drained += step.synced
        if step.done:
            self._finish_drain(now)
        elif not step.acknowledged or step.synced + step.rejected == 0:
            self._draining = False  # not taken, or no progress: back to health checks
        return step

    def _finish_drain(self, now: datetime) -> None:
        count, self._drained = self._drained, 0
        self._cache_mode = False
        self._draining = False
        self.backlog = 0
        log.info("cache synced (%d readings): writing to InfluxDB directly again", count)
        self.emit(self.policy.cache_synced(now, count))

    def _sync_step(self, now: datetime, max_readings: int) -> SyncStep:
        assert self.sink is not None
        try:
            result = self._sync(
                self.cache,
                self.sink,
                max_readings=max_readings,
                lock_timeout=LOCK_TIMEOUT,
                now=lambda: now,
                stop=self.stop.is_set,
            )
        except CacheError as exc:  # CacheBusy: `sync-cache` holds the lock; try later
            log.info("cache sync postponed: %s", exc.message)
            return SyncStep(left=self.backlog, error=exc)
        synced, left, rejected = int(result.synced), int(result.left), int(result.rejected)
        error = result.error if isinstance(result.error, OctomonError) else None
        self.backlog = left
        self.last_error = error
        if rejected:
            message = error.server_message if isinstance(error, InfluxRefused) else ""
            self.emit(self.policy.write_refused(now, rejected, message))
        if result.evicted_files:  # rejected/ took the cache over CACHE_MAX_MB
            self.emit(self.policy.cache_evicted(now, result.evicted_files, result.evicted_readings))
        if isinstance(error, (InfluxUnavailable, InfluxConfigError)):
            self._lost(now, error)
            return SyncStep(synced, left, rejected, False, False, self.retry_after, error)
        if error is not None and not isinstance(error, InfluxRefused):
            log.warning("cache sync stopped: %s", error.message)
            return SyncStep(synced, left, rejected, False, False, None, error)
        return SyncStep(synced, left, rejected, True, left == 0, None, error)


# --- one batch, stored: shared by the writer and backfill ---------------------------------


@dataclass
class Batch:
    """What :func:`store_batch` did; the writer and backfill each read it their own way."""

    delivery: Delivery[AnyReading] | None = None  # InfluxDB's part (None: not sent)
    cached: list[AnyReading] = field(default_factory=list)  # appended to the cache
    appended: AppendResult | None = None  # what the cache said of it (a fake may say nothing)
    not_cached: list[AnyReading] = field(default_factory=list)  # the append failed
    append_error: CacheError | None = None


class BatchCache(Protocol):
    def append(self, readings: Sequence[AnyReading]) -> AppendResult | None: ...
    def write_rejected(self, lines: Sequence[str | bytes], message: str, now: datetime) -> Any: ...


def store_batch(
    readings: Sequence[AnyReading],
    *,
    sink: LineSink | None,
    cache: BatchCache,
    now: datetime,
    direct: bool,
) -> Batch:
    """Store readings as SPEC §4.4 says: ``direct``, one write to InfluxDB -- what it refuses
    is split and set aside by :func:`~octomon.store.delivery.deliver`, what it cannot take now
    goes to the cache; otherwise (local mode, a backlog to queue behind) the cache."""
    out = Batch()
    rest = list(readings)
    if direct and sink is not None and rest:
        out.delivery = deliver_readings(sink, rest, rejected=cache, now=now)
        rest = out.delivery.undelivered
    if not rest:
        return out
    try:
        out.appended = cache.append(rest)
    except CacheError as exc:
        out.append_error, out.not_cached = exc, rest
        return out
    out.cached = rest
    return out
