"""The monitor's poll cycle (SPEC §4): one window of telemetry in, one durable store out.

:meth:`Monitor.cycle` is pure with respect to time: it takes ``now`` and never sleeps or
reads a clock of its own, so gap filling, staleness, backoff and alert throttling are tested
by driving it with an injected clock; :mod:`octomon.daemon.loop` owns real time. The window,
the jump past what the API no longer serves, the store and the cursor are the electricity
:class:`~octomon.daemon.stream.Stream`'s; the cursor is saved at the end of the cycle in the
one ``state.json`` write of the cycle, with the call ledger, when due
(:mod:`octomon.daemon.saving`, SPEC §4.9).

Clocks and damaged state (SPEC §4.1): ``now`` earlier than the cursor or the last cycle
means the clock moved back: the cursor returns to the newest reading stored, ledger entries
and backoffs dated in the future are dropped, one warning alert says so. An unreadable
``state.json`` resumes from the newest ``read_at`` in the cache, else one hour back, with one
warning alert naming the span that may need ``octomon backfill``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from octomon.alerts.policy import AlertPolicy
from octomon.daemon.cursor import ClockAhead, clock_moved_back, resume_damaged
from octomon.daemon.outcome import (
    AUTH,
    BUDGET,
    CACHE_BUSY,
    CLOCK_BEHIND,
    DISK_FULL,
    FAILED,
    OK,
    RATE_LIMITED,
    STOPPED,
    STORE_FAILED,
    CycleResult,
    Outcome,
)
from octomon.daemon.saving import StateSaver
from octomon.daemon.schedule import JobReport, Scheduler, renewal_turn
from octomon.daemon.status import Announcer, Board, Status
from octomon.daemon.stream import Stream
from octomon.daemon.writer import DRAIN_SLICE, Stored, StoreProblem, SyncStep, Writer
from octomon.errors import (
    AuthError,
    BudgetExhausted,
    CacheError,
    OctomonError,
    OctopusError,
    RateLimited,
)
from octomon.octopus.budget import Budget, Interrupted
from octomon.readings import Reading, format_time
from octomon.state import StateStore

log = logging.getLogger(__name__)

CLOCK_SLACK = timedelta(minutes=1)  # a clock stepped back by less is not worth an alert

_PROBLEM_OUTCOME = {StoreProblem.CACHE_BUSY: CACHE_BUSY, StoreProblem.DISK_FULL: DISK_FULL}


# --- the parts the monitor ties together (structural, so tests can use small fakes) -----


class Client(Protocol):
    @property
    def refresh_token(self) -> str | None: ...
    @property
    def refresh_expires_at(self) -> datetime | None: ...
    def device(self) -> str: ...
    def close(self) -> None: ...


class Monitor:
    """One poll cycle of the electricity :class:`~octomon.daemon.stream.Stream`, whose
    readings go through the :class:`~octomon.daemon.writer.Writer`; built whole by
    :mod:`octomon.wiring`.

    A stop request ends a cycle between requests (the client's budget is stop-aware), and
    the writer sends what was fetched to the cache rather than to a possibly slow InfluxDB.
    """

    def __init__(
        self,
        *,
        client: Client,
        stream: Stream[Reading, Stored],
        writer: Writer,
        store: StateStore,
        budget: Budget,
        policy: AlertPolicy,
        alerts: Announcer,
        poll_interval: int,
        cache_dir: Path,
        health_check_seconds: float = 30.0,
        device_id: str | None = None,
        scheduler: Scheduler | None = None,
        board: Board | None = None,
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.client = client
        self.stream = stream
        self.writer = writer
        self.store = store
        self.budget = budget
        self.policy = policy
        self.alerts = alerts
        self.poll_interval = poll_interval
        self.health_check_seconds = health_check_seconds
        self.cache_dir = Path(cache_dir)
        self.closers = list(closers)  # the outputs (SPEC §13): closed before the clients
        self.device_id = device_id  # OCTOPUS_DEVICE_ID, else the one state.json knows
        self.scheduler = scheduler  # the jobs beside telemetry (SPEC §4.9)
        self.board = board or Board(self.cache_dir)
        self.cache_appeared = False  # this cycle found readings another process cached
        self.saver = StateSaver(
            store=store, budget=budget, stream=stream, client=client, policy=policy, alerts=alerts
        )
        self._ahead = ClockAhead(client)
        self._started = False

    @property
    def cursor(self) -> datetime | None:
        """The settled point (SPEC §4.1)."""
        return self.stream.cursor.at

    @property
    def status(self) -> Status | None:
        return self.board.status

    # --- life cycle ----------------------------------------------------------------------

    def start(self, now: datetime, *, announce: bool = True) -> None:
        """Load the state, look at the cache, announce the start (once)."""
        if self._started:
            return
        self._started = True
        state = self.store.load()
        self.stream.load(state, now)
        self.device_id = self.device_id or state.device_id
        self.saver.loaded(state)
        self.board.open(now, poll_interval=self.poll_interval, call_budget=self.budget.max_per_hour)
        # (Local mode and log-only alerts are said once at start by the settings' warnings.)
        self.writer.open()
        # Written once at start-up: the hold of the call ledger goes on disk ahead of the
        # first request (octomon.budget), so the first cycle needs no extra write.
        self.saver.dirty = True
        if self.cursor is not None:
            log.info("resuming from %s", format_time(self.cursor))
        if announce:
            self.alerts.emit(
                self.policy.started(now, mode=self.writer.mode, device_id=self.device_id)
            )
        damaged = self.store.recovered_corrupt
        if damaged is not None:
            self.store.recovered_corrupt = None
            at, cached = resume_damaged(self.stream.cursor, self.writer.cache, now, damaged.name)
            self.alerts.emit(self.policy.state_damaged(now, damaged.name, at, cached))
        self._save_state(now)
        self._report(now)

    def close(self, now: datetime, *, announce: bool = True, alert_timeout: float = 3.0) -> None:
        """Save state, give the stop alert at most ``alert_timeout`` s, close the clients."""
        self._save_state(now, force=True, release=True)
        if self.status is not None:
            self._report(now)
        if announce:
            cached = self.writer.backlog if self.writer.sink is not None else 0
            self.alerts.emit(self.policy.stopped(now, cached=cached))
        try:
            self.alerts.close(alert_timeout)
        finally:
            closers: list[Callable[[], None]] = [*self.closers, self.client.close]
            if self.writer.sink is not None:
                closers.append(self.writer.sink.close)
            for close in closers:
                try:
                    close()
                except Exception:  # closing must never turn a clean stop into a crash
                    log.debug("error while closing a client", exc_info=True)

    # --- one poll cycle --------------------------------------------------------------------

    def cycle(self, now: datetime) -> CycleResult:
        """One poll cycle: fetch one window, store it durably, move the cursor, report."""
        if not self._started:
            self.start(now)
        self.alerts.emit(self.policy.due_repeats(now))
        self._check_clock(now)
        self.cache_appeared = self.writer.notice()
        start, end = self.stream.window(now)
        if end <= start:  # the clock is behind the cursor: nothing to ask for (not good)
            return self._finish(now, CLOCK_BEHIND, None)
        try:
            renew = renewal_turn(self.client, self.poll_interval, self.device_id is not None)
            if renew is not None:
                renew()
                self.alerts.emit(self.policy.octopus_ok(now))
                return self._finish(now, OK, (start, start), renewed=True)
            if self.device_id is None:
                self.device_id = self.client.device()
                self.saver.dirty = True
            start, end, readings = self.stream.fetch(start, end, now)
        except Interrupted as exc:
            return self._finish(now, STOPPED, (start, end), error=exc)
        except AuthError as exc:
            self.alerts.emit(self.policy.auth_failed(now, exc.message))
            return self._finish(now, AUTH, (start, end), error=exc)
        except RateLimited as exc:
            since = self.budget.rate_limited_since() or now
            self.alerts.emit(self.policy.rate_limited(now, since))
            return self._finish(now, RATE_LIMITED, (start, end), error=exc, retry_in=exc.retry_in)
        except BudgetExhausted as exc:
            return self._finish(now, BUDGET, (start, end), error=exc, retry_in=exc.retry_in)
        except OctopusError as exc:
            self.alerts.emit(self.policy.octopus_failed(now, exc.message))
            return self._finish(now, FAILED, (start, end), error=exc)
        except OSError as exc:  # the call ledger could not be written: nothing was sent
            err = CacheError(
                f"cannot record the API call in {self.cache_dir}/state.json "
                f"({exc.strerror or exc}); no request was sent",
                "free some space in CACHE_DIR or fix its permissions",
            )
            self.alerts.emit(self.policy.cache_failed(now, err.message))
            return self._finish(now, STORE_FAILED, (start, end), error=err)
        self.alerts.emit(self.policy.octopus_ok(now))
        caught_up = end >= now
        if caught_up and not self._ahead(now):
            # (A catch-up window is old by design: staleness is judged at "now" -- and not
            # while "now" is known to be ahead of the API's own time.)
            newest = readings[-1].read_at if readings else None
            self.alerts.emit(self.policy.telemetry(now, newest))

        fresh, outcome = self.stream.keep(readings, end, now)
        self.board.show(readings, fresh)
        failed = _PROBLEM_OUTCOME.get(outcome.problem, STORE_FAILED) if outcome.problem else None
        return self._finish(
            now,
            (failed or STORE_FAILED) if outcome.unstored else OK,
            (start, end),
            error=outcome.error,
            fetched=len(readings),
            stored=len(outcome.stored),
            skipped=len(readings) - len(fresh),
            rejected=outcome.rejected,
            caught_up=caught_up,
        )

    # --- the state ------------------------------------------------------------------------

    def _save_state(self, now: datetime, *, force: bool = False, release: bool = False) -> None:
        """The cycle's one ``state.json`` write, when due (:mod:`octomon.daemon.saving`)."""
        self.saver.save(now, self.device_id, force=force, release=release)

    def _check_clock(self, now: datetime) -> None:
        """SPEC §4.1: ``now`` earlier than the cursor or the last cycle: the clock moved back."""
        went_back = clock_moved_back(self.stream.cursor, now, CLOCK_SLACK)
        if went_back is not None or self.stream.cursor.behind:
            self.budget.clock_moved_back(now)  # ledger entries and backoffs in the future go
        if went_back is not None:
            self.alerts.emit(self.policy.clock_moved_back(now, *went_back))

    # --- the scheduled jobs (tariffs, settled data, gas) ----------------------------------

    def jobs_due(self, now: datetime) -> bool:
        return self.scheduler is not None and self.scheduler.due(now)

    def run_jobs(self, now: datetime) -> list[JobReport]:
        """Run at most one due job (the loop checks for a due poll cycle in between)."""
        if self.scheduler is None:
            return []
        reports = self.scheduler.run_due(now, max_jobs=1)
        if reports:
            self._save_state(now)
        return reports

    # --- cache mode: the health check and the drain ----------------------------------------

    def health_check(self, now: datetime) -> SyncStep:
        """Write the oldest cached batch: the only proof that InfluxDB takes our data."""
        if not self.writer.cache_mode:
            return SyncStep(done=True)
        self.alerts.emit(self.policy.due_repeats(now))
        return self._after_sync(now, self.writer.health_check(now))

    def drain(self, now: datetime, max_readings: int = DRAIN_SLICE) -> SyncStep:
        """One bounded slice of the backlog, oldest first, between poll cycles."""
        if not self.writer.draining:
            return SyncStep(done=not self.writer.cache_mode)
        return self._after_sync(now, self.writer.drain(now, max_readings))

    def _after_sync(self, now: datetime, step: SyncStep) -> SyncStep:
        if self.status is not None and step.error is not None:
            self.status.note_error(step.error.message)
        self._report(now)
        return step

    # --- status and alerts -----------------------------------------------------------------

    def _finish(
        self,
        now: datetime,
        outcome: Outcome,
        window: tuple[datetime, datetime] | None,
        *,
        error: OctomonError | None = None,
        retry_in: float | None = None,
        fetched: int = 0,
        stored: int = 0,
        skipped: int = 0,
        rejected: int = 0,
        caught_up: bool = True,
        renewed: bool = False,
    ) -> CycleResult:
        self._save_state(now)
        calls = self._calls(now)
        # (A renewal fetched nothing: not a good poll; a stop is not an error.)
        good = outcome == OK and not renewed
        self.board.cycled(
            now, stored, good, error if outcome != STOPPED else None, outcome=outcome.value
        )
        self._report(now, calls)
        status = self.status
        return CycleResult(
            at=now,
            outcome=outcome,
            mode=self.writer.mode,
            window=window,
            fetched=fetched,
            stored=stored,
            skipped=skipped,
            rejected=rejected,
            cursor=self.cursor,
            caught_up=caught_up,
            renewed=renewed,
            retry_in=retry_in,
            error=error,
            backlog=self.writer.backlog,
            calls_last_hour=calls,
            call_budget=self.budget.max_per_hour,
            newest_at=status.last_reading_at if status is not None else None,
            newest_kw=status.last_demand_kw if status is not None else None,
        )

    def _calls(self, now: datetime) -> int:
        try:
            return self.budget.calls_last_hour(now)
        except OSError:
            return self.status.calls_last_hour if self.status else 0

    def _report(self, now: datetime, calls: int | None = None) -> None:
        """Bring the status up to date and rewrite ``status.json``."""
        self.board.refresh(
            now,
            mode=self.writer.mode,
            backlog=self.writer.backlog,
            calls=self._calls(now) if calls is None else calls,
            last_alert=self.alerts.last,
        )
        self.board.write()
