"""The daemon around :meth:`Monitor.cycle`: real time, waits, health checks, the drain.

The loop owns ``time.monotonic()`` and ``stop.wait()`` (never ``time.sleep``), so a
SIGTERM or Ctrl-C, which only sets ``stop``, ends any wait at once. In cache mode it
health-checks InfluxDB every ``HEALTH_CHECK_SECONDS`` (or later when InfluxDB asked
with Retry-After), and once InfluxDB takes data again drains the backlog in bounded
slices, running each poll cycle when it falls due in between: polling never stops.

:func:`build_monitor` assembles a :class:`Monitor` from the settings; the CLI (``run``,
``run --once``, ``run --demo``) and the in-process tests share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from octomon import fsutil
from octomon.alerts.policy import AlertPolicy
from octomon.clock import Clock, utcnow
from octomon.config import Settings
from octomon.daemon.monitor import Alerts, Monitor
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
from octomon.daemon.schedule import Scheduler, installation_offset
from octomon.errors import ExitCode, OctomonError
from octomon.octopus.budget import Budget, StopAwareBudget
from octomon.state import StateStore

if TYPE_CHECKING:
    from octomon.daemon.gas import GasJob
    from octomon.daemon.jobs import LineSink, SettledJob, TariffsJob
    from octomon.octopus.gas import GasMeter
    from octomon.octopus.graphql import OctopusClient
    from octomon.state import State

log = logging.getLogger(__name__)

CATCH_UP_PAUSE = 1.0  # seconds between catch-up windows (the budget still decides)
MIN_RETRY = 1.0
MAX_UNEXPECTED = 10  # unexpected errors in a row before the daemon gives up (exit 1)
SYNC_RETRY_FIRST = 1.0  # a sync step that raised: retried after 1 s, doubling ...
CYCLE, SYNC = "cycle", "sync"  # the two kinds of step whose errors are counted
JOB_HEADROOM = 5  # API calls per hour a scheduled job leaves free for telemetry (SPEC §4.9)
CACHE_LOCK_TIMEOUT = 5.0  # an append waits this long for `sync-cache`, then fails (refetched)


def build_monitor(
    settings: Settings,
    *,
    stop: threading.Event,
    clock: Clock = utcnow,
    alerter: Alerts | None = None,
    policy: AlertPolicy | None = None,
    max_calls_per_hour: int | None = None,
) -> Monitor:
    """A monitor wired to the real parts: Kraken client, cache, InfluxDB sink, Slack.

    Creates ``CACHE_DIR`` (0700) if needed. The client's budget refuses new requests once
    ``stop`` is set, so a signal ends a cycle after its current request.
    """
    from octomon.alerts.slack import Alerter
    from octomon.octopus.graphql import OctopusClient
    from octomon.publish import build_outputs
    from octomon.store.cache import Cache
    from octomon.store.sync import sync

    cache_dir = Path(settings.cache_dir)
    fsutil.ensure_private_dir(cache_dir)
    store = StateStore(cache_dir)
    state = store.load()
    max_calls = max_calls_per_hour or settings.octopus_max_calls_per_hour
    budget = StopAwareBudget(store, max_calls, stop, deferred=True)  # saved once per cycle
    assert settings.octopus_api_key and settings.octopus_account_number
    client = OctopusClient(
        api_key=settings.octopus_api_key,
        account_number=settings.octopus_account_number,
        api_url=settings.octopus_api_url,
        budget=budget,
        device_id=settings.octopus_device_id or state.device_id,
        clock=clock,
        refresh_token=state.refresh_token,
        refresh_expires_at=state.refresh_expires_at,
        gas_enabled=settings.octopus_gas != "off",
        gas_meter=_known_gas_meter(state),
        gas_absent=_known_no_gas(state),
        calorific_value=settings.gas_calorific_value,
    )
    cache = Cache(cache_dir, settings.cache_max_mb, clock, lock_timeout=CACHE_LOCK_TIMEOUT)
    sink = None
    if not settings.local_mode:
        from octomon.store.influx import InfluxSink

        sink = InfluxSink.from_settings(settings)
    if alerter is None:
        alerter = Alerter(settings.slack_webhook_url)
    monitor = Monitor(
        client=client,
        cache=cache,
        sink=sink,
        store=store,
        budget=budget,
        policy=policy or AlertPolicy(),
        alerter=alerter,
        sync=sync,
        poll_interval=settings.poll_interval_seconds,
        health_check_seconds=settings.health_check_seconds,
        cache_dir=cache_dir,
        stop=stop,
    )
    monitor.device_id = settings.octopus_device_id or state.device_id
    feed = build_outputs(settings, clock)  # SPEC §13: MQTT, /metrics; None when both off
    if feed is not None:
        monitor.tally = feed.recorder(monitor.tally)  # every durable store, gas included
        monitor.status_fillers.append(feed.fill)  # after each cycle: publish
        monitor.closers.append(feed.close)
    offset = installation_offset(settings.octopus_account_number)
    monitor.scheduler = Scheduler(budget, offset=offset, headroom=JOB_HEADROOM)
    # The scheduled jobs of other features register here: monitor.scheduler.add(SomeJob(...))
    tariffs = _tariffs_job(settings, budget, sink, store, clock)
    monitor.scheduler.add(tariffs, clock() - offset)
    monitor.status_fillers.append(tariffs.fill_status)
    monitor.scheduler.add(_settled_job(settings, monitor, sink, budget, clock), clock() - offset)
    if settings.octopus_gas != "off":
        # At start (its first anchor is now - offset), then every interval at the offset.
        monitor.scheduler.add(_gas_job(settings, monitor, client, store), clock() - offset)
    return monitor


def _known_gas_meter(state: State) -> GasMeter | None:
    """The gas meter found by an earlier run (state.json): a restart costs no discovery."""
    from octomon.octopus.gas import GasMeter

    if not state.gas_device_id:
        return None
    return GasMeter(state.gas_device_id, state.gas_mprn, state.gas_serial)


def _known_no_gas(state: State) -> tuple[str, datetime] | None:
    """ "No gas", as an earlier run was told it (state.json): a restart asks nothing."""
    from octomon.octopus.gas import ABSENT

    if state.gas_device_id or state.gas_absent not in ABSENT or state.gas_absent_at is None:
        return None
    return state.gas_absent, state.gas_absent_at


def _gas_job(
    settings: Settings, monitor: Monitor, client: OctopusClient, store: StateStore
) -> GasJob:
    """Gas (SPEC §11): at start, then every GAS_POLL_INTERVAL_SECONDS at the offset,
    stored through the monitor's writer (InfluxDB or the cache) and counted into the tally."""
    from octomon.daemon.gas import GasJob

    job = GasJob(
        client=client,
        writer=monitor.writer,
        store=store,
        policy=monitor.policy,
        emit=monitor.emit_alerts,
        interval=settings.gas_poll_interval_seconds,
        recorded=monitor.tally.stored,
    )
    monitor.status_fillers.append(job.fill)
    return job


def _tariffs_job(
    settings: Settings, budget: Budget, sink: LineSink | None, store: StateStore, clock: Clock
) -> TariffsJob:
    """Prices (SPEC §9): at start (its first anchor is now - offset), then on its own schedule."""
    from octomon.billing.tariffs import Tariffs
    from octomon.daemon.jobs import TariffsJob
    from octomon.octopus.rest import RestClient

    assert settings.octopus_api_key and settings.octopus_account_number
    rest = RestClient.from_settings(settings, budget, clock)
    tariffs = Tariffs.from_settings(settings, rest, state=store, sink=sink)
    return TariffsJob(tariffs)


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
                    was_cache_mode = m.cache_mode
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
                    elif m.cache_mode and not was_cache_mode:
                        next_health = self.monotonic() + self._health_delay()
                    continue
                if m.jobs_due(self.clock()):  # one job, then look at the poll cycle again
                    self._guarded(CYCLE, lambda: m.run_jobs(self.clock()), count=False)
                    self._alive()
                    continue
                syncable = self.monotonic() >= next_sync
                if m.draining and syncable:
                    if not self._sync_step(lambda: m.drain(self.clock())):
                        next_sync = self.monotonic() + self._sync_retry()
                    if not m.draining and m.cache_mode:  # lost again
                        next_health = self.monotonic() + self._health_delay()
                    self._alive()
                    continue
                if m.cache_mode and not m.draining and syncable and self.monotonic() >= next_health:
                    if not self._sync_step(lambda: m.health_check(self.clock())):
                        next_sync = self.monotonic() + self._sync_retry()
                    next_health = self.monotonic() + self._health_delay()
                    self._alive()
                    continue
                wake = next_poll
                if m.draining:
                    wake = min(wake, next_sync)
                elif m.cache_mode:
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
        return not self.step_failed

    def _sync_retry(self) -> float:
        """1, 2, 4 … s after a sync step raised, at most the health-check interval."""
        n = max(1, self._unexpected[SYNC])
        return min(SYNC_RETRY_FIRST * (1 << min(n - 1, 16)), self._health_delay())

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
        retry_after = self.monitor.retry_after or 0.0
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


def _settled_job(
    settings: Settings, monitor: Monitor, sink: LineSink | None, budget: Budget, clock: Clock
) -> SettledJob:
    """Settled consumption and reconciliation (SPEC §10): at start, then its own schedule."""
    from octomon.billing.settled import known_meters
    from octomon.daemon.jobs import SettledJob
    from octomon.octopus.rest import RestClient
    from octomon.readings import calorific

    assert settings.octopus_account_number
    number, cache_dir = settings.octopus_account_number, Path(settings.cache_dir)
    rest = RestClient.from_settings(settings, budget, clock)
    return SettledJob(
        rest=rest,
        meters=lambda: known_meters(cache_dir, lambda: rest, number),
        store=monitor.store,
        cache_dir=cache_dir,
        sink=sink,
        policy=monitor.policy,
        emit=monitor.emit_alerts,
        calorific_value=calorific(settings.gas_calorific_value),
    )
