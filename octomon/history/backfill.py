"""``octomon backfill``: history at 10-second resolution, fetched within the API budget and
stored like live data (SPEC §1).

The core has no output of its own: :func:`plan` says what a run will cost, and
:func:`run_backfill` reports through a ``progress`` callback and returns a
:class:`BackfillResult`. Time comes from a ``clock`` and waiting from a
``wait(seconds) -> bool`` function (True = stop now), so tests never sleep.

Rules that matter:

* Every request goes through the client, whose :class:`~octomon.octopus.budget.Budget` shares the
  call ledger in ``state.json`` with a running daemon: together they never exceed the
  budget. When it is used up, or a rate-limit backoff runs, the run waits (interruptibly)
  for the next slot and says so.
* The daemon's cursor is never touched: history written here is history, not progress.
* Storing is the writer's :func:`~octomon.daemon.writer.store_batch` (SPEC §4.4): InfluxDB,
  or the cache in local mode, while the cache holds readings, or from the moment InfluxDB
  is lost or refuses the credentials. Re-running is harmless (one point per series and time).
* ``fuel``: ``electricity`` (10-second readings) or ``gas`` (the smart gas meter's
  half-hours, ``HALF_HOURLY``, stored as ``gas_consumption``); the CLI runs one after the
  other for ``--fuel all``. The windows and the rules are the same.
* KT-GB-4051 (the start is too old): the oldest start the API still serves is searched
  for (the daemon's jumps, now - 24 h then now - 6 h, then halving the gap to 15 minutes),
  and the span before it is reported as missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from octomon.clock import Clock, utcnow
from octomon.daemon.cursor import RETENTION_JUMPS
from octomon.daemon.stream import telemetry_of
from octomon.daemon.writer import store_batch
from octomon.errors import (
    BudgetExhausted,
    OctomonError,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
)
from octomon.history.plan import (
    BackfillPlan,
    BackfillProgress,
    BackfillResult,
    Span,
    plan,
    windows,
)
from octomon.readings import AnyReading
from octomon.units import ELECTRICITY, FUELS, GAS

if TYPE_CHECKING:
    from octomon.octopus.graphql import OctopusClient
    from octomon.state import State, StateStore
    from octomon.store.cache import AppendResult
    from octomon.store.tally import TallyRecorder

__all__ = [
    "ELECTRICITY",
    "GAS",
    "BackfillPlan",
    "BackfillProgress",
    "BackfillResult",
    "plan",
    "run_backfill",
    "windows",
]

log = logging.getLogger(__name__)

SEARCH_PRECISION = timedelta(minutes=15)
PROBE = timedelta(seconds=10)  # the smallest window the API accepts: one 10-s step
TRANSIENT_WAITS = (10.0, 30.0)  # a window is tried 3 times before the run gives up

Wait = Callable[[float], bool]


class Sink(Protocol):
    """What is needed of :class:`octomon.store.influx.InfluxSink`."""

    def write_lines(self, body: bytes | str, count: int) -> None: ...


class ReadingCache(Protocol):
    """What is needed of :class:`octomon.store.cache.Cache`."""

    def append(self, readings: Sequence[AnyReading]) -> AppendResult | None: ...

    def is_empty(self) -> bool: ...

    def write_rejected(
        self, lines: Sequence[str | bytes], message: str, now: datetime
    ) -> object: ...


# --- the run ----------------------------------------------------------------------------


class _Stop(Exception):
    """``wait`` said stop."""


class _Failed(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _describe(exc: OctomonError) -> str:
    return f"{exc.message} — {exc.hint}" if exc.hint else exc.message


def _reason(exc: Exception) -> str:
    if isinstance(exc, OctomonError):
        return exc.message
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _never_stop() -> Wait:
    return threading.Event().wait


def _add_span(spans: list[Span], span: Span) -> None:
    """Append, merging with the previous span when they touch."""
    if span[1] <= span[0]:
        return
    if spans and spans[-1][1] >= span[0]:
        spans[-1] = (spans[-1][0], max(spans[-1][1], span[1]))
    else:
        spans.append(span)


class _Run:
    def __init__(
        self,
        plan: BackfillPlan,
        client: OctopusClient,
        sink: Sink | None,
        cache: ReadingCache,
        progress: Callable[[BackfillProgress], None] | None,
        wait: Wait,
        clock: Clock,
        tally: TallyRecorder | None,
        fuel: str = ELECTRICITY,
    ) -> None:
        if fuel not in FUELS:
            raise ValueError(f"unknown fuel {fuel!r}")
        self.fuel = fuel
        self.telemetry = telemetry_of(client, fuel)
        self.pending = list(plan.windows)
        self.client = client
        self.sink = sink
        self.cache = cache
        self.progress = progress or (lambda event: None)
        self.wait = wait
        self.clock = clock
        self.result = BackfillResult()
        self.tally = tally

    # --- events ---------------------------------------------------------------------

    def emit(
        self, kind: str, window: Span | None = None, wait_seconds: float = 0.0, message: str = ""
    ) -> None:
        done = self.result.windows_done
        self.progress(
            BackfillProgress(
                kind,
                done,
                done + len(self.pending),
                self.result.stored,
                window,
                wait_seconds,
                message,
            )
        )

    def pause(self, seconds: float, why: str) -> None:
        """Wait for ``seconds`` (interruptibly), having said why."""
        seconds = max(seconds, 0.0)
        log.debug("backfill: %s", why)
        self.emit("waiting", wait_seconds=seconds, message=why)
        if self.wait(seconds):
            raise _Stop

    # --- fetching -------------------------------------------------------------------

    def fetch(self, start: datetime, end: datetime) -> list[AnyReading]:
        """One request's worth, waiting out the budget, backoffs and brief outages.

        Raises RangeTooOld, _Stop, or _Failed (anything that retrying will not fix).
        """
        failures = 0
        while True:
            if self.wait(0):
                raise _Stop
            try:
                return list(self.telemetry(start, end))
            except BudgetExhausted as exc:
                self.pause(
                    exc.retry_in,
                    f"the API call budget ({self.client.budget.max_per_hour} an hour, shared "
                    "with a running daemon) is used up: waiting for the next free slot",
                )
            except RateLimited as exc:
                self.pause(exc.retry_in, exc.message)
            except OctopusUnavailable as exc:
                if failures >= len(TRANSIENT_WAITS):
                    raise _Failed(f"{exc.message} (tried {failures + 1} times)") from None
                self.pause(TRANSIENT_WAITS[failures], f"{exc.message}: retrying")
                failures += 1
            except RangeTooOld:
                raise
            except OctomonError as exc:
                raise _Failed(_describe(exc)) from None
            except OSError as exc:  # the shared call ledger could not be written
                reason = exc.strerror or str(exc)
                raise _Failed(f"cannot record API calls in state.json ({reason})") from None

    def served(self, start: datetime) -> bool:
        """Does the API accept a range starting at ``start``? (One small request.)"""
        try:
            self.fetch(start, start + PROBE)
        except RangeTooOld:
            return False
        return True

    def oldest_served(self, refused: datetime, end: datetime) -> datetime | None:
        """The oldest start in ``(refused, end)`` the API serves (to 15 minutes), or None."""
        now = self.clock()
        lo, hi = refused, None
        for back in RETENTION_JUMPS:
            jump = _step(now - back)
            if jump <= lo:
                continue
            if jump >= end:
                break
            if self.served(jump):
                hi = jump
                break
            lo = jump
        if hi is None:
            return None
        while hi - lo > SEARCH_PRECISION:
            mid = _step(lo + (hi - lo) / 2)
            if mid <= lo or mid >= hi:
                break
            if self.served(mid):
                hi = mid
            else:
                lo = mid
        return hi

    # --- storing --------------------------------------------------------------------

    def store(self, readings: list[AnyReading]) -> None:
        """Store like live data (:func:`~octomon.daemon.writer.store_batch`); count it."""
        if not readings:
            return
        direct = self.result.cache_reason is None and self.sink is not None
        try:
            done = store_batch(
                readings, sink=self.sink, cache=self.cache, now=self.clock(), direct=direct
            )
        except OSError as exc:
            raise _Failed(f"could not store readings in the cache: {_reason(exc)}") from None
        delivery = done.delivery
        if delivery is not None:
            self.result.stored += delivery.acknowledged_count
            self.counted(delivery.acknowledged)
            if delivery.set_aside:
                self.result.rejected += len(delivery.set_aside)
                if self.result.rejected_message is None:
                    self.result.rejected_message = delivery.refused_message
            self.result.evicted += delivery.evicted_readings  # rejected/ over CACHE_MAX_MB
            if delivery.failure is not None:
                self.to_cache(f"InfluxDB: {_describe(delivery.failure)}")
        if done.append_error is not None:
            raise _Failed(f"could not store readings in the cache: {done.append_error.message}")
        if done.cached:
            self.result.stored += len(done.cached)
            self.result.cached += len(done.cached)
            self.counted(done.cached)
            if done.appended is not None:  # over CACHE_MAX_MB: the oldest days were dropped
                self.result.evicted += done.appended.evicted_readings
        if delivery is not None and delivery.cache_error is not None:
            raise _Failed(
                f"could not set aside readings InfluxDB refused: {delivery.cache_error.message}"
            )

    def counted(self, readings: list[AnyReading]) -> None:
        """Stored: into the Home Mini tally (SPEC §10)."""
        if self.tally is not None:
            self.tally.stored(readings)

    def to_cache(self, reason: str) -> None:
        if self.result.cache_reason is None:
            self.result.cache_reason = reason
            log.debug("backfill: readings go to the cache from now on (%s)", reason)
            self.emit("cache", message=reason)

    # --- the loop -------------------------------------------------------------------

    def run(self) -> BackfillResult:
        if self.sink is None:
            self.to_cache("local mode (no INFLUXDB_URL)")
        elif not self.cache.is_empty():
            self.to_cache("the cache holds readings waiting for InfluxDB: new ones queue behind")
        try:
            while self.pending:
                start, end = self.pending[0]
                try:
                    readings = self.fetch(start, end)
                except RangeTooOld:
                    self.skip_unserved(start)
                    continue
                self.store(readings)
                self.pending.pop(0)
                self.result.windows_done += 1
                self.emit("window", window=(start, end))
        except _Stop:
            self.result.interrupted = True
            self.result.error = "interrupted"
        except _Failed as exc:
            self.result.error = exc.error
        for span in self.pending:
            _add_span(self.result.not_done, span)
        self.pending = []
        return self.result

    def skip_unserved(self, refused: datetime) -> None:
        until = self.pending[-1][1]
        oldest = self.oldest_served(refused, until)
        gap_end = until if oldest is None else oldest
        _add_span(self.result.missing, (refused, gap_end))
        self.pending = [] if oldest is None else windows(oldest, until)
        log.debug(
            "backfill: the Octopus API no longer serves %s to %s",
            refused.isoformat(),
            gap_end.isoformat(),
        )
        self.emit("missing", window=(refused, gap_end), message="no longer served by the API")


def _step(dt: datetime) -> datetime:
    """Round up to a whole 10-s step (readings sit on them)."""
    whole = dt.replace(microsecond=0)
    if whole < dt:
        whole += timedelta(seconds=1)
    return whole + timedelta(seconds=-int(whole.timestamp()) % 10)


def run_backfill(
    plan: BackfillPlan,
    client: OctopusClient,
    sink: Sink | None,
    cache: ReadingCache,
    *,
    progress: Callable[[BackfillProgress], None] | None = None,
    wait: Wait | None = None,
    clock: Clock = utcnow,
    tally: TallyRecorder | None = None,
    fuel: str = ELECTRICITY,
) -> BackfillResult:
    """Fetch every window of ``plan`` (oldest first) and store it; see the module docstring.

    ``wait(seconds)`` blocks for up to ``seconds`` and returns True when the run must stop
    (it is also called with 0 between requests). Never raises for an expected failure: the
    result says what was stored, what the API no longer serves, and what was not done.
    """
    run = _Run(plan, client, sink, cache, progress, wait or _never_stop(), clock, tally, fuel)
    return run.run()


def remember_device(store: StateStore, device_id: str) -> None:
    """Save a discovered device id for the daemon (only when state.json has none)."""

    def mutate(state: State) -> None:
        if state.device_id is None:
            state.device_id = device_id

    store.update(mutate)
