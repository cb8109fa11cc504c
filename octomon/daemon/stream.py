"""One telemetry stream, either fuel (SPEC §4.1, §11): fetch a window, store it, move the cursor.

Electricity (10-second readings, the monitor's poll cycle) and gas (the smart gas meter's
half-hours, a scheduled job) follow the same rules, written here once:

* the window ``[cursor - overlap, now)``, at most 6 h (:class:`~octomon.daemon.cursor.Cursor`);
* KT-GB-4051 (the start is too old): the start jumps to now - 24 h, then now - 6 h; the
  cursor moves past the lost span, which is logged, and alerted once (where the owner
  gives an alert for it);
* what is fresh: readings not already stored in this process's life;
* stored through the writer, counted into the tally *before* the cursor moves (a crash in
  between stores them again, harmlessly), then the cursor advances;
* where the cursor is kept in ``state.json`` (:class:`Fuel`): loaded once, saved by the
  owner's one write of the cycle or run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from octomon.daemon.cursor import Cursor
from octomon.errors import RangeTooOld
from octomon.readings import AnyReading, format_time
from octomon.units import ELECTRICITY, GAS

if TYPE_CHECKING:
    from octomon.state import State

log = logging.getLogger(__name__)

TEN_SECONDS = "TEN_SECONDS"


@dataclass(frozen=True)
class Fuel:
    """A stream's own numbers, and the ``state.json`` fields that keep its cursor."""

    name: str
    overlap: timedelta  # refetched each window: late uploads are caught
    first_lookback: timedelta  # the first start, with no cursor yet
    noun: str  # what a lost span loses, for the log
    at: str  # State field: the settled point
    newest: str  # State field: the newest readAt actually stored
    anchor: str | None = None  # State field: the first window's start, until a cursor
    last_run: str | None = None  # State field: the previous window asked for


FUELS = {
    ELECTRICITY: Fuel(
        ELECTRICITY,
        overlap=timedelta(minutes=5),
        first_lookback=timedelta(hours=1),
        noun="readings",
        at="cursor",
        newest="newest_stored",
        anchor="first_window_start",
        last_run="last_cycle_at",
    ),
    GAS: Fuel(
        GAS,
        overlap=timedelta(hours=2),
        first_lookback=timedelta(hours=2),
        noun="half-hours",
        at="gas_cursor",
        newest="gas_newest",
    ),
}


class StoredLike(Protocol):
    @property
    def stored(self) -> Sequence[AnyReading]: ...
    @property
    def unstored(self) -> Sequence[AnyReading]: ...


R = TypeVar("R", bound=AnyReading)
S = TypeVar("S", bound=StoredLike, covariant=True)


class Destination(Protocol[S]):
    """Where readings go: the :class:`~octomon.daemon.writer.Writer` (InfluxDB or the cache)."""

    def store(self, readings: Sequence[AnyReading], now: datetime) -> S: ...


class Counter(Protocol):
    """The tally (SPEC §10): told every reading durably stored."""

    def stored(self, readings: Sequence[AnyReading]) -> None: ...


def telemetry_of(client: Any, fuel: str) -> Callable[[datetime, datetime], Sequence[Any]]:
    """How a fuel's window is asked for: ``TEN_SECONDS`` telemetry, or the gas half-hours."""
    if fuel == GAS:
        return client.gas_telemetry  # type: ignore[no-any-return]
    return lambda start, end: client.telemetry(start, end, TEN_SECONDS)


LostFn = Callable[[datetime, datetime, datetime], None]  # (start, jump, now)


class Stream(Generic[R, S]):
    """One fuel's window, jump, fresh readings, store and cursor; see the module docstring."""

    def __init__(
        self,
        fuel: str,
        *,
        fetch: Callable[[datetime, datetime], Sequence[R]],
        writer: Destination[S],
        tally: Counter | None = None,
        lost: LostFn | None = None,
    ) -> None:
        self.fuel = FUELS[fuel]
        self.fetcher = fetch
        self.writer = writer
        self.tally = tally
        self.lost = lost  # the owner's alert for a lost span (once per span)
        self.cursor = Cursor(overlap=self.fuel.overlap, first_lookback=self.fuel.first_lookback)
        self._losing = False  # a lost span was alerted; until a window is served again

    # --- state.json --------------------------------------------------------------------

    def load(self, state: State, now: datetime | None = None) -> None:
        """Take this stream's cursor from ``state.json`` (once, at start); with ``now``, a
        stream without a cursor yet starts where an earlier process chose to."""
        f, cursor = self.fuel, self.cursor
        cursor.at, cursor.newest = getattr(state, f.at), getattr(state, f.newest)
        if f.last_run is not None:
            cursor.last_run = getattr(state, f.last_run)
        if cursor.at is None and f.anchor is not None and now is not None:
            # The first start, or every earlier one died before a cursor was saved.
            anchor = getattr(state, f.anchor)
            cursor.start_at(anchor if anchor and anchor <= now else now - f.first_lookback)

    def saver(self) -> Callable[[State], None]:
        """The cursor's part of the owner's one ``state.json`` write (values taken now)."""
        f, c = self.fuel, self.cursor
        at, newest, last_run, anchor = c.at, c.newest, c.last_run, c.anchor

        def mutate(state: State) -> None:
            if at is not None:
                setattr(state, f.at, at)
            if f.anchor is not None:
                setattr(state, f.anchor, anchor if getattr(state, f.at) is None else None)
            if newest is not None:
                setattr(state, f.newest, newest)
            if f.last_run is not None and last_run is not None:
                setattr(state, f.last_run, last_run)

        return mutate

    @property
    def dirty(self) -> bool:
        """The cursor changed since it was last saved."""
        return self.cursor.dirty

    @property
    def jumped(self) -> bool:
        """The cursor moved otherwise than forward along what was stored: save it at once."""
        return self.cursor.jumped

    def saved(self) -> None:
        self.cursor.dirty = self.cursor.jumped = False

    # --- one window ----------------------------------------------------------------------

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``[cursor - overlap, min(now, start + 6 h))``; the first start looks back."""
        return self.cursor.window(now)

    def fetch(
        self, start: datetime, end: datetime, now: datetime
    ) -> tuple[datetime, datetime, list[R]]:
        """The window's readings, oldest first; KT-GB-4051 jumps the start forward."""
        while True:
            try:
                readings = self.fetcher(start, end)
                break
            except RangeTooOld:
                # The cursor moves past the lost span: the next window starts at ``jump``.
                jump = self.cursor.retention_jump(start, now)
                if jump is None:
                    raise
                self._lost_span(start, jump, now)
                start, end = jump, min(now, jump + self.cursor.max_window)
        self._losing = False
        return start, end, [r for r in readings if start <= r.read_at < end]

    def _lost_span(self, start: datetime, jump: datetime, now: datetime) -> None:
        prefix = "" if self.fuel.name == ELECTRICITY else f"{self.fuel.name}: "
        log.warning(
            "%sthe Octopus API no longer serves %s..%s (KT-GB-4051): those %s are lost; "
            "continuing from %s",
            prefix,
            format_time(start),
            format_time(jump),
            self.fuel.noun,
            format_time(jump),
        )
        if self.lost is not None and not self._losing:  # one alert per lost span
            self._losing = True
            self.lost(start, jump, now)

    def keep(self, readings: Sequence[R], end: datetime, now: datetime) -> tuple[list[R], S]:
        """Store what is fresh, count it, move the cursor: (the fresh readings, the store)."""
        fresh = self.cursor.fresh(readings)
        outcome = self.writer.store(fresh, now)
        if self.tally is not None:
            self.tally.stored(outcome.stored)  # before the cursor moves: a crash re-stores them
        self.cursor.advance(outcome.stored, outcome.unstored, end, now)
        return fresh, outcome
