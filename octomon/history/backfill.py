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
* Storing follows SPEC §4.4: InfluxDB directly, or the cache in local mode, while the cache
  holds readings (they queue behind it), or from the moment InfluxDB is lost or refuses
  the credentials; what InfluxDB refuses is split and set aside under ``rejected/`` by
  :func:`octomon.store.delivery.deliver`, as for live data. Re-running is harmless (one
  point per series and timestamp).
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from octomon.clock import Clock, utcnow
from octomon.errors import (
    BudgetExhausted,
    CacheError,
    OctomonError,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
)
from octomon.readings import AnyReading
from octomon.store.delivery import deliver_readings

if TYPE_CHECKING:
    from octomon.octopus.budget import Budget
    from octomon.octopus.graphql import OctopusClient
    from octomon.state import State, StateStore
    from octomon.store.tally import TallyRecorder

log = logging.getLogger(__name__)

TEN_SECONDS = "TEN_SECONDS"
ELECTRICITY, GAS = "electricity", "gas"
FUELS = (ELECTRICITY, GAS)
WINDOW = timedelta(hours=6)
SEARCH_PRECISION = timedelta(minutes=15)
PROBE = timedelta(seconds=10)  # the smallest window the API accepts: one 10-s step
CALL_SECONDS = 1.5  # a typical telemetry request (6 h at 10 s), for the estimate
TRANSIENT_WAITS = (10.0, 30.0)  # a window is tried 3 times before the run gives up
OVERHEAD_CALLS = 2  # a token, and device discovery unless the device is known
TOKEN_RENEWAL = 55 * 60  # seconds: tokens live 60 min and are renewed 5 min early

Span = tuple[datetime, datetime]
Wait = Callable[[float], bool]


class Sink(Protocol):
    """What is needed of :class:`octomon.store.influx.InfluxSink`."""

    def write_lines(self, body: bytes | str, count: int) -> None: ...


class ReadingCache(Protocol):
    """What is needed of :class:`octomon.store.cache.Cache`."""

    def append(self, readings: Sequence[AnyReading]) -> object: ...

    def is_empty(self) -> bool: ...

    def write_rejected(
        self, lines: Sequence[str | bytes], message: str, now: datetime
    ) -> object: ...


# --- the plan ---------------------------------------------------------------------------


@dataclass
class BackfillPlan:
    windows: list[Span]
    calls: int  # expected API calls: one per window, plus the token (and discovery)
    eta_seconds: float  # expected duration, budget waits included

    @property
    def since(self) -> datetime:
        return self.windows[0][0]

    @property
    def until(self) -> datetime:
        return self.windows[-1][1]


def windows(since: datetime, until: datetime, size: timedelta = WINDOW) -> list[Span]:
    """``[since, until)`` cut into consecutive windows of at most ``size``, oldest first."""
    out: list[Span] = []
    lo = since
    while lo < until:
        hi = min(lo + size, until)
        out.append((lo, hi))
        lo = hi
    return out


def plan(
    since: datetime,
    until: datetime,
    budget: Budget,
    now: datetime,
    *,
    overhead_calls: int = OVERHEAD_CALLS,
    others_per_hour: float = 0.0,
) -> BackfillPlan:
    """What fetching ``[since, until)`` costs, in calls and in time, given the budget now.

    The calls that fit in the budget's free slots go at once; the rest at the rate the
    budget leaves per hour once ``others_per_hour`` (a running daemon's polling) is taken
    out of it. A running rate-limit backoff is waited out first. An estimate, not a promise.
    """
    if until <= since:
        raise ValueError("until must be after since")
    spans = windows(since, until)
    calls = len(spans) + overhead_calls
    free = max(0, budget.max_per_hour - budget.calls_last_hour(now))
    eta = budget.backoff_remaining(now) + calls * CALL_SECONDS
    if calls > free:
        rate = max(1.0, budget.max_per_hour - others_per_hour)
        eta += (calls - free) / rate * 3600
        renewals = int(eta // TOKEN_RENEWAL)  # a run over an hour renews its token
        calls += renewals
        eta += renewals / rate * 3600
    return BackfillPlan(spans, calls, eta)


# --- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillProgress:
    """One event of a run, for the progress display.

    ``kind``: ``"window"`` (a window was fetched and stored), ``"waiting"`` (for the budget,
    a rate-limit backoff, or a retry), ``"missing"`` (the API no longer serves a span),
    ``"cache"`` (from here on readings go to the cache; ``message`` says why).
    """

    kind: str
    windows_done: int
    windows_total: int
    stored: int
    window: Span | None = None
    wait_seconds: float = 0.0
    message: str = ""


@dataclass
class BackfillResult:
    stored: int = 0  # readings stored (InfluxDB or cache)
    windows_done: int = 0
    missing: list[Span] = field(default_factory=list)  # spans the API no longer serves
    cached: int = 0  # of ``stored``, readings that went to the cache
    error: str | None = None  # why the run stopped early (None: it ran to the end)
    not_done: list[Span] = field(default_factory=list)  # not fetched: error or interrupted
    cache_reason: str | None = None  # why readings went to the cache
    interrupted: bool = False
    rejected: int = 0  # refused by InfluxDB (400/413/422), set aside under rejected/
    rejected_message: str | None = None  # the first refusal's status and server message
    evicted: int = 0  # cached readings dropped because the cache went over CACHE_MAX_MB

    @property
    def complete(self) -> bool:
        """Exit 0: everything asked for was fetched and stored."""
        return not (self.error or self.missing or self.not_done or self.rejected or self.evicted)


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
                if self.fuel == GAS:
                    return list(self.client.gas_telemetry(start, end))
                return list(self.client.telemetry(start, end, TEN_SECONDS))
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
        for jump in (now - timedelta(hours=24), now - timedelta(hours=6)):
            jump = _step(jump)
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
        if not readings:
            return
        if self.result.cache_reason is not None or self.sink is None:
            self.append(readings)
            return
        done = deliver_readings(
            self.sink,
            readings,
            rejected=self.cache,
            now=self.clock(),
        )
        self.result.stored += done.acknowledged_count
        self.counted(done.acknowledged)
        if done.set_aside:
            self.result.rejected += len(done.set_aside)
            if self.result.rejected_message is None:
                self.result.rejected_message = done.refused_message
        self.result.evicted += done.evicted_readings  # rejected/ took it over CACHE_MAX_MB
        if done.failure is not None:
            self.to_cache(f"InfluxDB: {_describe(done.failure)}")
            self.append(done.undelivered)
        if done.cache_error is not None:
            raise _Failed(
                f"could not set aside readings InfluxDB refused: {done.cache_error.message}"
            )

    def counted(self, readings: list[AnyReading]) -> None:
        """Stored: into the Home Mini tally (SPEC §10)."""
        if self.tally is not None:
            self.tally.stored(readings)

    def append(self, readings: list[AnyReading]) -> None:
        try:
            appended = self.cache.append(readings)
        except (CacheError, OSError) as exc:
            raise _Failed(f"could not store readings in the cache: {_reason(exc)}") from None
        self.result.stored += len(readings)
        self.result.cached += len(readings)
        self.counted(readings)
        evicted = getattr(appended, "evicted_readings", 0)
        if isinstance(evicted, int) and evicted > 0:  # over CACHE_MAX_MB: oldest days dropped
            self.result.evicted += evicted

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
