"""The daemon around :meth:`Monitor.cycle`: real time, waits, health checks, the drain.

The loop owns ``time.monotonic()`` and ``stop.wait()`` (never ``time.sleep``), so a
SIGTERM or Ctrl-C, which only sets ``stop``, ends any wait at once. In cache mode it
health-checks InfluxDB every ``HEALTH_CHECK_SECONDS`` (or later when InfluxDB asked
with Retry-After), and once InfluxDB takes data again drains the backlog in bounded
slices, running each poll cycle when it falls due in between: polling never stops.

:mod:`octomon.wiring` builds the :class:`Monitor` it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from octomon.backoff import next_delay
from octomon.clock import Clock, utcnow
from octomon.daemon.monitor import Monitor
from octomon.daemon.notify import SystemdNotifier
from octomon.daemon.outcome import (
    AUTH,
    BUDGET,
    CACHE_BUSY,
    DISK_FULL,
    FAILED,
    RATE_LIMITED,
    STOPPED,
    STORE_FAILED,
    CycleResult,
)
from octomon.errors import ExitCode, OctomonError

log = logging.getLogger(__name__)

CATCH_UP_PAUSE = 1.0  # seconds between catch-up windows (the budget still decides)
MIN_RETRY = 1.0
MAX_UNEXPECTED = 10  # unexpected errors in a row before the daemon gives up (exit 1)
SYNC_RETRY_FIRST = 1.0  # a sync step that raised: retried after 1 s, doubling ...
CYCLE, SYNC = "cycle", "sync"  # the two kinds of step whose errors are counted


class Loop:
    """Runs a monitor until ``stop`` is set; :meth:`run` returns the exit code."""

    def __init__(
        self,
        monitor: Monitor,
        *,
        stop: threading.Event,
        notifier: SystemdNotifier | None = None,
        on_update: Callable[[Monitor], None] | None = None,
        log_cycles: bool = True,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monitor = monitor
        self.stop = stop
        self.notifier = notifier
        self.on_update = on_update
        self.log_cycles = log_cycles
        self.clock = clock
        self.monotonic = monotonic
        self.cycles = 0
        self.last_error: OctomonError | None = None
        # Unexpected errors in a row, per kind of step: a drain that raises every time must
        # end the run like cycles that do, even while the cycles in between succeed.
        self._unexpected = {CYCLE: 0, SYNC: 0}
        self.step_failed = False
        self._sync_delay = 0.0  # after a sync step raised (0: the last one did not)

    def run(self) -> ExitCode:
        m = self.monitor
        m.start(self.clock())
        if self.notifier is not None:
            self.notifier.ready()
        self._update()
        code = ExitCode.OK
        next_poll = self.monotonic()
        next_health = self.monotonic()  # a backlog left from an earlier run: check at once
        next_sync = self.monotonic()  # after a sync step raised: not before this
        try:
            while not self.stop.is_set():
                if max(self._unexpected.values()) >= MAX_UNEXPECTED:
                    code = ExitCode.FAILED
                    break
                if self.monotonic() >= next_poll:
                    was_cache_mode = m.writer.cache_mode
                    began = self.monotonic()
                    result = self._guarded(CYCLE, lambda: m.cycle(self.clock()))
                    if result is None:
                        next_poll = began + m.poll_interval
                        continue
                    self.cycles += 1
                    self._after_cycle(result)
                    if result.outcome == AUTH:
                        code = ExitCode.CONFIG
                        break
                    next_poll = began + self._delay(result)
                    if m.cache_appeared:  # another process cached readings: sync them now
                        next_health = self.monotonic()
                    elif m.writer.cache_mode and not was_cache_mode:
                        next_health = self.monotonic() + self._health_delay()
                    continue
                if m.jobs_due(self.clock()):  # one job, then look at the poll cycle again
                    self._guarded(CYCLE, lambda: m.run_jobs(self.clock()), count=False)
                    self._alive()
                    continue
                syncable = self.monotonic() >= next_sync
                if m.writer.draining and syncable:
                    if not self._sync_step(lambda: m.drain(self.clock())):
                        next_sync = self.monotonic() + self._sync_retry()
                    if not m.writer.draining and m.writer.cache_mode:  # lost again
                        next_health = self.monotonic() + self._health_delay()
                    self._alive()
                    continue
                if (
                    m.writer.cache_mode
                    and not m.writer.draining
                    and syncable
                    and self.monotonic() >= next_health
                ):
                    if not self._sync_step(lambda: m.health_check(self.clock())):
                        next_sync = self.monotonic() + self._sync_retry()
                    next_health = self.monotonic() + self._health_delay()
                    self._alive()
                    continue
                wake = next_poll
                if m.writer.draining:
                    wake = min(wake, next_sync)
                elif m.writer.cache_mode:
                    wake = min(wake, max(next_health, next_sync))
                job_at = m.scheduler.next_due() if m.scheduler is not None else None
                if job_at is not None:
                    wake = min(wake, self.monotonic() + (job_at - self.clock()).total_seconds())
                self._wait(wake - self.monotonic())
        finally:
            if self.notifier is not None:
                self.notifier.stopping()
            m.close(self.clock())
            self._update()
        return code

    # --- pieces ---------------------------------------------------------------------------

    def _guarded(
        self, kind: str, step: Callable[[], object], *, count: bool = True
    ) -> CycleResult | None:
        """Run a cycle or a sync step; a bug is logged (its traceback once in a row) and
        counted, not fatal: MAX_UNEXPECTED in a row of one kind end the run (exit 1)."""
        self.step_failed = False
        try:
            out = step()
        except OctomonError as exc:
            self._failed(kind, count)
            log.error("%s", exc.message)
            log.debug("details", exc_info=True)
            return None
        except Exception:  # the outermost loop: log, count, keep collecting
            n = self._failed(kind, count)
            if n <= 1:
                log.exception("unexpected error in a %s step (%d in a row)", kind, n)
            else:
                log.error("unexpected error in a %s step again (%d in a row)", kind, n)
                log.debug("details", exc_info=True)
            return None
        if count:
            self._unexpected[kind] = 0
        return out if isinstance(out, CycleResult) else None

    def _failed(self, kind: str, count: bool) -> int:
        self.step_failed = True
        if count:
            self._unexpected[kind] += 1
        return self._unexpected[kind]

    def _sync_step(self, step: Callable[[], object]) -> bool:
        """A health check or a drain slice; False if it raised (the caller backs off)."""
        self._guarded(SYNC, step)
        if not self.step_failed:
            self._sync_delay = 0.0
        return not self.step_failed

    def _sync_retry(self) -> float:
        """1, 2, 4 … s after a sync step raised, at most the health-check interval."""
        self._sync_delay = next_delay(self._sync_delay, SYNC_RETRY_FIRST, self._health_delay())
        return self._sync_delay

    def _after_cycle(self, result: CycleResult) -> None:
        if result.error is not None:
            self.last_error = result.error
        if self.notifier is not None:
            self.notifier.watchdog()
        if result.outcome != STOPPED:
            level = logging.INFO if self.log_cycles else logging.DEBUG
            if result.outcome in (FAILED, AUTH, STORE_FAILED, DISK_FULL, CACHE_BUSY):
                level = logging.WARNING if self.log_cycles else logging.DEBUG
            log.log(level, "%s", result.summary())
        self._update()

    def _delay(self, result: CycleResult) -> float:
        """Seconds from this cycle's start to the next one."""
        interval = float(self.monitor.poll_interval)
        if result.outcome in (RATE_LIMITED, BUDGET):
            return max(result.retry_in or interval, MIN_RETRY)
        if result.ok and not result.caught_up:
            return min(interval, CATCH_UP_PAUSE)  # filling a gap: the budget decides
        return interval

    def _health_delay(self) -> float:
        retry_after = self.monitor.writer.retry_after or 0.0
        return max(float(self.monitor.health_check_seconds), retry_after)

    def _wait(self, seconds: float) -> None:
        """Wait interruptibly, telling systemd's watchdog we are alive meanwhile."""
        interval = self.notifier.watchdog_interval if self.notifier is not None else None
        end = self.monotonic() + max(0.0, seconds)
        while not self.stop.is_set():
            left = end - self.monotonic()
            if left <= 0:
                return
            if self.stop.wait(min(left, interval) if interval else left):
                return
            if interval and self.notifier is not None:
                self.notifier.watchdog()

    def _alive(self) -> None:
        """After a sync step: a long drain must not look like a hang to the watchdog."""
        if self.notifier is not None:
            self.notifier.watchdog()
        self._update()

    def _update(self) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self.monitor)
            except Exception:  # the panel must never stop data collection
                log.debug("panel update failed", exc_info=True)
