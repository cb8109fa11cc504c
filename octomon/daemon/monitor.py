"""The monitor's poll cycle (SPEC §4): one window of telemetry in, one durable store out.

:meth:`Monitor.cycle` is pure with respect to time: it takes ``now`` and never sleeps or
reads a clock of its own, so gap filling, staleness, backoff and alert throttling are
tested by driving it with an injected clock. :mod:`octomon.daemon.loop` owns real time (the
waits, the health-check schedule, signals) and builds a monitor from the settings.

The cursor rule (SPEC §4.1): the cursor is the newest reading durably stored (written to
InfluxDB, appended to the cache, or set aside as refused), or the end of a window older
than 15 minutes whose readings were all stored (or that had none), whichever is later. It
moves only after the store that justifies it, and it is saved to ``state.json`` at the end
of that cycle: state is written at most once per cycle (SPEC §4.9), together with the call
ledger (kept in memory in between by :class:`~octomon.octopus.budget.Budget`).

Clocks and damaged state (SPEC §4.1): ``now`` earlier than the cursor or the last cycle
means the clock moved back (it ran fast and was corrected, or a Pi booted in the past):
the cursor returns to the newest reading actually stored, ledger entries and backoffs
dated in the future are dropped, and one warning alert says so. An unreadable
``state.json`` (set aside by :class:`~octomon.state.StateStore`) resumes from the newest
``read_at`` in the cache (read from the tail of the newest day file), else one hour back,
with one warning alert naming the span that may need ``octomon backfill``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from octomon.alerts.policy import Alert, AlertPolicy, duration
from octomon.daemon.cursor import Cursor
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
from octomon.daemon.schedule import JobReport, Scheduler
from octomon.daemon.status import Status
from octomon.daemon.writer import (
    DRAIN_SLICE,
    CacheLike,
    Sink,
    Stored,
    StoreProblem,
    SyncFn,
    SyncStep,
    Writer,
)
from octomon.errors import (
    AuthError,
    BudgetExhausted,
    CacheError,
    OctomonError,
    OctopusError,
    RangeTooOld,
    RateLimited,
)
from octomon.octopus.budget import Budget, Interrupted
from octomon.readings import Reading, format_time
from octomon.state import State, StateStore
from octomon.store.tally import Tally, TallyRecorder

log = logging.getLogger(__name__)

RENEWAL_TURN_BELOW = 300  # seconds between polls: below, a token renewal takes a poll's turn

OVERLAP = timedelta(minutes=5)
FIRST_LOOKBACK = timedelta(hours=1)
SPARK_SPAN = timedelta(minutes=30)
CLOCK_SLACK = timedelta(minutes=1)  # a clock stepped back by less is not worth an alert
TAIL_BYTES = 64 * 1024  # how much of the newest cache file a damaged state's recovery reads


_PROBLEM_OUTCOME = {StoreProblem.CACHE_BUSY: CACHE_BUSY, StoreProblem.DISK_FULL: DISK_FULL}


# --- the parts the monitor ties together (structural, so tests can use small fakes) -----


class Client(Protocol):
    @property
    def refresh_token(self) -> str | None: ...
    @property
    def refresh_expires_at(self) -> datetime | None: ...
    def device(self) -> str: ...
    def telemetry(
        self, start: datetime, end: datetime, grouping: str = "TEN_SECONDS"
    ) -> list[Reading]: ...
    def close(self) -> None: ...


class Alerts(Protocol):
    def emit(self, alerts: Sequence[Alert]) -> None: ...
    def close(self, timeout: float = 3.0) -> None: ...


class Monitor:
    """One poll cycle; where its readings go is the :class:`~octomon.daemon.writer.Writer`'s.

    ``sink`` is None in local mode. ``stop`` ends a cycle between requests (through a
    :class:`StopAwareBudget` given to the client) and sends readings fetched while
    stopping to the cache rather than to a possibly slow InfluxDB.
    """

    def __init__(
        self,
        *,
        client: Client,
        cache: CacheLike,
        sink: Sink | None,
        store: StateStore,
        budget: Budget,
        policy: AlertPolicy,
        alerter: Alerts,
        sync: SyncFn,
        poll_interval: int,
        cache_dir: Path,
        health_check_seconds: float = 30.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.budget = budget
        self.policy = policy
        self.alerter = alerter
        self.poll_interval = poll_interval
        self.health_check_seconds = health_check_seconds
        self.cache_dir = Path(cache_dir)
        self.stop = stop or threading.Event()
        self.writer = Writer(
            cache=cache,
            sink=sink,
            sync=sync,
            policy=policy,
            emit=self._emit,
            cache_dir=self.cache_dir,
            stop=self.stop,
        )
        self.tally = TallyRecorder(Tally(self.cache_dir))  # SPEC §10: counted once stored

        # The jobs that are not telemetry (SPEC §4.9); build_monitor registers them.
        self.scheduler: Scheduler | None = None
        # What the jobs add to the status (gas today, the price now): fill(status, now).
        self.status_fillers: list[Callable[[Status, datetime], None]] = []
        self.closers: list[Callable[[], None]] = []  # the outputs (SPEC §13), after the status
        # The SPEC §4.1 rules (window, settling, the overlap's memory) live in Cursor.
        self.stream = Cursor(overlap=OVERLAP, first_lookback=FIRST_LOOKBACK)
        self.device_id: str | None = None
        self.status: Status | None = None
        self._range_episode = False
        self._state_dirty = False
        self._state_failing = False
        self._status_failing = False
        self.cache_appeared = False  # this cycle found readings another process cached
        self._ahead_said = False  # "the clock is ahead of the API" logged (once per episode)
        self._saved_refresh: str | None = None
        self._started = False

    @property
    def cursor(self) -> datetime | None:
        """The settled point (SPEC §4.1)."""
        return self.stream.at

    @cursor.setter
    def cursor(self, value: datetime | None) -> None:
        self.stream.at = value

    @property
    def _seen(self) -> set[datetime]:  # the read_ats stored in this run, within the overlap
        return self.stream.seen

    # --- life cycle ----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``influxdb``, ``cache`` or ``local``."""
        return self.writer.mode

    @property
    def cache_mode(self) -> bool:
        """InfluxDB is configured, and new readings queue in the cache behind a backlog."""
        return self.writer.cache_mode

    @property
    def draining(self) -> bool:
        return self.writer.draining

    @property
    def backlog(self) -> int:
        """Readings waiting in the cache."""
        return self.writer.backlog

    @property
    def retry_after(self) -> float | None:
        """InfluxDB's Retry-After when it was lost (the loop's health-check schedule)."""
        return self.writer.retry_after

    def start(self, now: datetime, *, announce: bool = True) -> None:
        """Load the state, look at the cache, announce the start (once)."""
        if self._started:
            return
        self._started = True
        state = self.store.load()
        self.cursor = state.cursor
        self.stream.newest, self.stream.last_run = state.newest_stored, state.last_cycle_at
        if self.cursor is None:  # the first start, or every earlier one died before a cursor
            anchor = state.first_window_start
            self.stream.start_at(anchor if anchor and anchor <= now else now - FIRST_LOOKBACK)
        self.device_id = self.device_id or state.device_id  # OCTOPUS_DEVICE_ID wins
        self._saved_refresh = state.refresh_token
        self.status = Status(
            started_at=now,
            poll_interval=self.poll_interval,
            call_budget=self.budget.max_per_hour,
            pid=os.getpid(),
        )
        # (Local mode and log-only alerts are said once at start by the settings' warnings.)
        self.writer.open()
        # Written once at start-up: the hold of the call ledger goes on disk ahead of the
        # first request (octopus.budget), so the first cycle needs no extra write.
        self._state_dirty = True
        if self.cursor is not None:
            log.info("resuming from %s", format_time(self.cursor))
        if announce:
            self._emit(self.policy.started(now, mode=self.mode, device_id=self.device_id))
        damaged = self.store.recovered_corrupt
        if damaged is not None:
            self.store.recovered_corrupt = None
            self._recover_damaged(now, damaged)
        self._save_state(now)
        self._refresh_status(now)
        self.write_status()

    def close(self, now: datetime, *, announce: bool = True, alert_timeout: float = 3.0) -> None:
        """Save state, give the stop alert at most ``alert_timeout`` s, close the clients."""
        self._save_state(now, force=True, release=True)
        if self.status is not None:
            self._refresh_status(now)
            self.write_status()
        if announce:
            cached = self.backlog if self.writer.sink is not None else 0
            self._emit(self.policy.stopped(now, cached=cached))
        try:
            self.alerter.close(alert_timeout)
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

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``[cursor − 5 min, min(now, start + 6 h))``; the first start looks 1 h back."""
        return self.stream.window(now)

    def cycle(self, now: datetime) -> CycleResult:
        """One poll cycle: fetch one window, store it durably, move the cursor, report."""
        if not self._started:
            self.start(now)
        self._emit(self.policy.due_repeats(now))
        self._check_clock(now)
        self.cache_appeared = self.writer.notice()
        start, end = self.window(now)
        if end <= start:  # the clock is behind the cursor: nothing to ask for (not good)
            return self._finish(now, CLOCK_BEHIND, None)
        try:
            renew = self._renewal_turn()
            if renew is not None:
                renew()
                self._emit(self.policy.octopus_ok(now))
                return self._finish(now, OK, (start, start), renewed=True)
            start, end, readings = self._fetch(start, end, now)
        except Interrupted as exc:
            return self._finish(now, STOPPED, (start, end), error=exc)
        except AuthError as exc:
            self._emit(self.policy.auth_failed(now, exc.message))
            return self._finish(now, AUTH, (start, end), error=exc)
        except RateLimited as exc:
            since = self.budget.rate_limited_since() or now
            self._emit(self.policy.rate_limited(now, since))
            return self._finish(now, RATE_LIMITED, (start, end), error=exc, retry_in=exc.retry_in)
        except BudgetExhausted as exc:
            return self._finish(now, BUDGET, (start, end), error=exc, retry_in=exc.retry_in)
        except OctopusError as exc:
            self._emit(self.policy.octopus_failed(now, exc.message))
            return self._finish(now, FAILED, (start, end), error=exc)
        except OSError as exc:  # the call ledger could not be written: nothing was sent
            err = CacheError(
                f"cannot record the API call in {self.cache_dir}/state.json "
                f"({exc.strerror or exc}); no request was sent",
                "free some space in CACHE_DIR or fix its permissions",
            )
            self._emit(self.policy.cache_failed(now, err.message))
            return self._finish(now, STORE_FAILED, (start, end), error=err)
        self._emit(self.policy.octopus_ok(now))
        caught_up = end >= now
        if caught_up and not self._clock_ahead(now):
            # (A catch-up window is old by design: staleness is judged at "now" -- and not
            # while "now" is known to be ahead of the API's own time.)
            newest = readings[-1].read_at if readings else None
            self._emit(self.policy.telemetry(now, newest))

        fresh = self.stream.fresh(readings)
        outcome = self.writer.store(fresh, now)
        self.tally.stored(outcome.stored)  # before the cursor moves: a crash re-stores them
        self._advance(outcome, end, now)
        self._show(readings, fresh)
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

    def _renewal_turn(self) -> Callable[[], object] | None:
        """Does this cycle renew the token instead of polling?

        Tokens live 60 minutes and are renewed 5 minutes early (SPEC §4.2): every 55
        minutes, so some rolling hours would hold two renewals besides 60 polls. A renewal
        takes its cycle's turn instead (the window waits one interval; each poll fetches
        the whole window from the cursor, so nothing is lost): a cycle makes one request,
        and the daemon's steady state stays at 3600 / POLL_INTERVAL_SECONDS requests an
        hour, plus gas. It renews a poll interval ahead, so that a gas or REST job between
        two cycles never has to renew. Only for polls less than 5 minutes apart (the
        budget is tight there, and one poll waiting is a short delay; with polls further
        apart a renewal turn could come round again before the next poll), not before the
        device is known (the first cycle), nor once the token has expired (cycles far
        apart: the poll renews it first). Returns the renewal to make, or None (also for a
        client without early renewal: a fake).
        """
        due = getattr(self.client, "renewal_due", None)
        renew: Callable[[], object] | None = getattr(self.client, "renew", None)
        if due is None or renew is None or self.device_id is None:
            return None
        if self.poll_interval >= RENEWAL_TURN_BELOW:
            return None
        return renew if due(timedelta(seconds=self.poll_interval)) else None

    def _fetch(
        self, start: datetime, end: datetime, now: datetime
    ) -> tuple[datetime, datetime, list[Reading]]:
        """The window's readings, oldest first; KT-GB-4051 jumps the start forward."""
        if self.device_id is None:
            self.device_id = self.client.device()
            self._state_dirty = True
        while True:
            try:
                readings = self.client.telemetry(start, end, "TEN_SECONDS")
                break
            except RangeTooOld:
                # The cursor moves past the lost span: the next window starts at ``jump``.
                jump = self.stream.retention_jump(start, now)
                if jump is None:
                    raise
                self._lost_span(start, jump, now)
                start, end = jump, min(now, jump + self.stream.max_window)
                self._state_dirty = True
        self._range_episode = False
        return start, end, [r for r in readings if start <= r.read_at < end]

    def _lost_span(self, start: datetime, jump: datetime, now: datetime) -> None:
        log.warning(
            "the Octopus API no longer serves %s..%s (KT-GB-4051): those readings are lost; "
            "continuing from %s",
            format_time(start),
            format_time(jump),
            format_time(jump),
        )
        if not self._range_episode:  # one alert per lost span, not per retry
            self._range_episode = True
            self._emit(self.policy.range_lost(now, start, jump))

    # --- the cursor and the state ----------------------------------------------------------

    def _advance(self, outcome: Stored, end: datetime, now: datetime) -> None:
        if self.stream.advance(outcome.stored, outcome.unstored, end, now):
            self._state_dirty = True

    def _save_state(self, now: datetime, *, force: bool = False, release: bool = False) -> None:
        """Persist cursor, device, token and the call ledger: one write, at most per cycle.

        A failure (disk full) is logged and alerted once and retried next cycle; polling
        goes on, the ledger stays in memory and is still enforced (SPEC §4.9).
        """
        token = self.client.refresh_token
        unsaved = self._state_dirty or self.stream.dirty or token != self._saved_refresh
        unsaved = unsaved or self.budget.unsaved
        if not (unsaved or force):
            return
        cursor, device, expires = self.cursor, self.device_id, self.client.refresh_expires_at
        newest, last_cycle, anchor = self.stream.newest, self.stream.last_run, self.stream.anchor

        def mutate(state: State) -> None:
            state.cursor = cursor if cursor is not None else state.cursor
            state.first_window_start = anchor if state.cursor is None else None
            if device is not None:
                state.device_id = device
            if token is not None:
                state.refresh_token = token
                state.refresh_expires_at = expires
            state.newest_stored = newest or state.newest_stored
            state.last_cycle_at = last_cycle or state.last_cycle_at

        try:
            if self.budget.store is not None:
                self.budget.save(now, mutate, release=release)  # the ledger too: one write
            else:
                self.store.update(mutate)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if not self._state_failing:
                log.error("could not save state.json (%s); retrying next cycle", reason)
            self._state_failing = True
            self._emit(self.policy.state_failed(now, f"state.json: {reason}"))
            return
        if self._state_failing:
            self._state_failing = False
            log.info("state.json saved again")
            self._emit(self.policy.state_ok(now))
        self._state_dirty = self.stream.dirty = False
        self._saved_refresh = token

    def _check_clock(self, now: datetime) -> None:
        """SPEC §4.1: ``now`` earlier than the cursor or the last cycle: the clock moved back.

        The rule itself (where the cursor goes) is :meth:`Cursor.clock_went_back`'s.
        """
        marks = [t for t in (self.cursor, self.stream.last_run) if t is not None]
        latest = max(marks) if marks else now
        if not self.stream.clock_went_back(now, CLOCK_SLACK):
            if self.stream.behind:
                self.budget.clock_moved_back(now)
            return
        self.budget.clock_moved_back(now)
        self._state_dirty = True
        resume = self.cursor
        again = resume if resume is not None and resume <= now else None
        log.warning(
            "the system clock moved back (%s is before %s); %s",
            format_time(now),
            format_time(latest),
            f"fetching again from {format_time(again)}" if again else "waiting for it",
        )
        self._emit(self.policy.clock_moved_back(now, latest - now, again))

    def _clock_ahead(self, now: datetime) -> bool:
        """Is this clock ahead of the API's? The token just accepted expires at the API's
        ``exp``: if that is already past here, ``now`` runs ahead by at least the difference.

        Then the newest reading only *looks* old: no "Home Mini data stale" (and its advice
        to power-cycle it) while the clock is wrong; the correction is alerted instead.
        """
        expires = getattr(self.client, "token_expires_at", None)
        ahead = isinstance(expires, datetime) and expires < now - CLOCK_SLACK
        if ahead and not self._ahead_said:
            assert isinstance(expires, datetime)
            log.warning(
                "the system clock is at least %s ahead of the Octopus API: the data's age is "
                "not judged until it is corrected",
                duration(now - expires),
            )
        self._ahead_said = ahead
        return ahead

    def _recover_damaged(self, now: datetime, set_aside: Path) -> None:
        """An unreadable state.json: resume from the cache's newest read_at, else 1 h back."""
        newest = newest_cached(self.writer.cache)
        from_cache = newest is not None and newest <= now
        resume = newest if from_cache and newest is not None else now - FIRST_LOOKBACK
        self.cursor = resume
        if from_cache:
            self.stream.newest = newest
        self._state_dirty = True
        log.warning(
            "state.json was damaged (set aside as %s): resuming from %s (%s)",
            set_aside.name,
            format_time(resume),
            "the newest reading in the cache" if from_cache else "one hour back",
        )
        self._emit(self.policy.state_damaged(now, set_aside.name, resume, from_cache))

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
        if not self.cache_mode:
            return SyncStep(done=True)
        self._emit(self.policy.due_repeats(now))
        return self._after_sync(now, self.writer.health_check(now))

    def drain(self, now: datetime, max_readings: int = DRAIN_SLICE) -> SyncStep:
        """One bounded slice of the backlog, oldest first, between poll cycles."""
        if not self.draining:
            return SyncStep(done=not self.cache_mode)
        return self._after_sync(now, self.writer.drain(now, max_readings))

    def _after_sync(self, now: datetime, step: SyncStep) -> SyncStep:
        if self.status is not None and step.error is not None:
            self.status.note_error(step.error.message)
        self._refresh_status(now)
        self.write_status()
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
        status = self.status
        if status is not None:
            status.last_cycle_at = now
            status.last_outcome = outcome.value
            status.stored_this_session += stored
            if outcome == OK and not renewed:  # a renewal fetched nothing: not a poll
                status.last_good_cycle_at = now
                status.note_error(error.message if error is not None else None)
            elif error is not None and outcome != STOPPED:
                status.note_error(error.message)
        self._refresh_status(now, calls)
        self.write_status()
        return CycleResult(
            at=now,
            outcome=outcome,
            mode=self.mode,
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
            backlog=self.backlog,
            calls_last_hour=calls,
            call_budget=self.budget.max_per_hour,
            newest_at=status.last_reading_at if status is not None else None,
            newest_kw=status.last_demand_kw if status is not None else None,
        )

    def _show(self, readings: list[Reading], fresh: list[Reading]) -> None:
        """Feed the panel: the newest reading and the last 30 minutes of demand."""
        status = self.status
        if status is None or not readings:
            return
        newest = readings[-1]
        if status.last_reading_at is None or newest.read_at >= status.last_reading_at:
            status.last_reading_at = newest.read_at
            status.last_demand_kw = newest.demand
        cutoff = newest.read_at - SPARK_SPAN
        points = [(r.read_at, r.demand) for r in fresh if r.read_at >= cutoff]
        kept = [(at, kw) for at, kw in points if kw is not None]
        if kept:
            status.demand_history.extend(kept[:-1])
            status.record_demand(*kept[-1])  # sorts and trims to the last 30 minutes

    def _calls(self, now: datetime) -> int:
        try:
            return self.budget.calls_last_hour(now)
        except OSError:
            return self.status.calls_last_hour if self.status else 0

    def _refresh_status(self, now: datetime, calls: int | None = None) -> None:
        status = self.status
        if status is None:
            return
        status.mode = self.mode
        status.cache_backlog = self.backlog
        status.calls_last_hour = self._calls(now) if calls is None else calls
        for fill in self.status_fillers:
            fill(status, now)

    def write_status(self) -> None:
        """Rewrite ``status.json``; a failure is logged once and retried next time."""
        if self.status is None:
            return
        try:
            self.status.write(self.cache_dir)
        except OSError as exc:
            if not self._status_failing:
                log.error("could not write status.json (%s); retrying", exc.strerror or exc)
            self._status_failing = True
            return
        self._status_failing = False

    def emit_alerts(self, alerts: Sequence[Alert]) -> None:
        """The scheduled jobs' alerts (gas, reconciliation): noted in the status, then sent."""
        self._emit(alerts)

    def _emit(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        if self.status is not None:
            self.status.last_alert = alerts[-1].title
        self.alerter.emit(alerts)


def newest_cached(cache: CacheLike) -> datetime | None:
    """The newest ``read_at`` in the cache, cheaply: the tail of the newest day file(s)."""
    from octomon.store.lines import parse_line

    try:
        files = cache.files()
    except OctomonError:
        return None
    for path in reversed(files):
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                lines = f.read().split(b"\n")
        except OSError:
            continue
        if size > TAIL_BYTES:
            lines = lines[1:]  # the first one is cut
        times = []
        for line in lines:
            if b'"fuel":"gas"' in line:  # the cursor is the electricity telemetry's
                continue
            try:
                times.append(parse_line(line).read_at)
            except (ValueError, KeyError, TypeError):
                continue
        if times:
            return max(times)
    return None
