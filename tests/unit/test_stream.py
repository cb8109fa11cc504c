"""The telemetry stream (daemon/stream.py): one window, the KT-GB-4051 jump, what is fresh,
the store, the tally before the cursor, and where each fuel keeps its cursor in state.json."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from octomon.daemon.stream import Counter, LostFn, Stream, telemetry_of
from octomon.errors import RangeTooOld
from octomon.readings import AnyReading, GasReading, Reading
from octomon.state import State
from octomon.units import ELECTRICITY, GAS

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)
TEN = timedelta(seconds=10)
HALF = timedelta(minutes=30)


@dataclass
class Kept:
    stored: list[AnyReading] = field(default_factory=list)
    unstored: list[AnyReading] = field(default_factory=list)


class Writer:
    """Keeps what it is given, or keeps nothing while ``down``."""

    def __init__(self) -> None:
        self.batches: list[list[AnyReading]] = []
        self.down = False

    def store(self, readings: Sequence[AnyReading], now: datetime) -> Kept:
        self.batches.append(list(readings))
        return Kept(unstored=list(readings)) if self.down else Kept(stored=list(readings))


class Api:
    """Readings every ``step`` up to ``now``; a start older than ``oldest`` is KT-GB-4051."""

    def __init__(self, step: timedelta, oldest: datetime | None = None) -> None:
        self.step = step
        self.oldest = oldest
        self.asked: list[tuple[datetime, datetime]] = []

    def __call__(self, start: datetime, end: datetime) -> list[Reading]:
        self.asked.append((start, end))
        if self.oldest is not None and start < self.oldest:
            raise RangeTooOld("The start of the range is too far in the past.")
        t = start - timedelta(seconds=start.timestamp() % self.step.total_seconds())
        out = []
        while t < end:
            if t >= start:
                out.append(Reading(t, "dev", demand=0.5))
            t += self.step
        return out


def electricity(
    api: Api, writer: Writer, *, tally: Counter | None = None, lost: LostFn | None = None
) -> Stream[Reading, Kept]:
    return Stream(ELECTRICITY, fetch=api, writer=writer, tally=tally, lost=lost)


def test_a_window_is_fetched_stored_once_and_the_cursor_moves_to_the_newest_stored() -> None:
    api, writer = Api(TEN), Writer()
    stream = electricity(api, writer)
    start, end = stream.window(T0)
    assert (start, end) == (T0 - timedelta(hours=1), T0)  # the first start looks 1 h back
    start, end, readings = stream.fetch(start, end, T0)
    fresh, kept = stream.keep(readings, end, T0)
    assert len(fresh) == 360 and kept.stored == fresh
    assert stream.cursor.at == T0 - TEN and stream.dirty
    # The next window overlaps 5 minutes: those readings are not stored again.
    now = T0 + timedelta(minutes=1)
    start, end = stream.window(now)
    assert start == T0 - TEN - timedelta(minutes=5)
    _, end, readings = stream.fetch(start, end, now)
    fresh, _ = stream.keep(readings, end, now)
    assert [r.read_at for r in fresh] == [T0 + i * TEN for i in range(6)]


def test_the_tally_is_told_before_the_cursor_moves_and_unstored_readings_hold_it() -> None:
    api, writer = Api(TEN), Writer()
    seen: list[tuple[int, datetime | None]] = []

    class Tally:
        def stored(self, readings: Sequence[AnyReading]) -> None:
            seen.append((len(readings), stream.cursor.at))

    stream = electricity(api, writer, tally=Tally())
    _, end, readings = stream.fetch(*stream.window(T0), T0)
    stream.keep(readings, end, T0)
    assert seen == [(360, None)]  # counted while the cursor had not moved yet
    cursor = stream.cursor.at
    writer.down = True
    now = T0 + timedelta(minutes=1)
    _, end, readings = stream.fetch(*stream.window(now), now)
    stream.keep(readings, end, now)
    assert stream.cursor.at == cursor  # nothing stored: the span is fetched again
    writer.down = False
    _, end, readings = stream.fetch(*stream.window(now), now)
    fresh, _ = stream.keep(readings, end, now)
    assert [r.read_at for r in fresh] == [T0 + i * TEN for i in range(6)]  # none of it lost
    assert stream.cursor.at == T0 + 5 * TEN


def test_range_too_old_jumps_to_24_then_6_hours_back_and_the_span_is_alerted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, writer = Api(TEN, oldest=T0 - timedelta(hours=7)), Writer()
    lost: list[tuple[datetime, datetime]] = []
    stream = electricity(api, writer, lost=lambda s, j, now: lost.append((s, j)))
    stream.cursor.at = T0 - timedelta(days=30)
    caplog.set_level(logging.WARNING)
    start, end, readings = stream.fetch(*stream.window(T0), T0)
    assert (start, end) == (T0 - timedelta(hours=6), T0)
    assert [a[0] for a in api.asked] == [
        T0 - timedelta(days=30, minutes=5),
        T0 - timedelta(hours=24),
        T0 - timedelta(hours=6),
    ]
    assert lost == [(T0 - timedelta(days=30, minutes=5), T0 - timedelta(hours=24))]
    assert caplog.text.count("no longer serves") == 2  # each jump is logged
    assert "those readings are lost" in caplog.text
    assert stream.cursor.at == T0 - timedelta(hours=6) + timedelta(minutes=5)
    assert readings and readings[0].read_at == start


def test_range_too_old_with_no_jump_left_is_raised() -> None:
    api = Api(TEN, oldest=T0 + timedelta(hours=1))
    stream = electricity(api, Writer())
    stream.cursor.at = T0 - timedelta(minutes=30)
    with pytest.raises(RangeTooOld):
        stream.fetch(*stream.window(T0), T0)


def test_gas_keeps_its_own_cursor_fields_and_looks_two_hours_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def half_hours(start: datetime, end: datetime) -> list[GasReading]:
        t = start - timedelta(seconds=start.timestamp() % 1800)
        return [GasReading(t + i * HALF, "gas") for i in range(12) if start <= t + i * HALF < end]

    stream: Stream[GasReading, Kept] = Stream(GAS, fetch=half_hours, writer=Writer())
    assert stream.window(T0) == (T0 - timedelta(hours=2), T0)
    _, end, readings = stream.fetch(*stream.window(T0), T0)
    stream.keep(readings, end, T0)
    state = State()
    stream.saver()(state)
    assert state.gas_cursor == T0 - HALF and state.gas_newest == T0 - HALF
    assert state.cursor is None and state.newest_stored is None  # electricity's untouched
    again: Stream[GasReading, Kept] = Stream(GAS, fetch=half_hours, writer=Writer())
    again.load(state)
    assert again.window(T0 + HALF) == (T0 - HALF - timedelta(hours=2), T0 + HALF)


def test_electricity_saves_its_first_windows_start_until_there_is_a_cursor() -> None:
    stream = electricity(Api(TEN), Writer())
    stream.window(T0)  # the first start chooses its anchor
    state = State()
    stream.saver()(state)
    assert state.first_window_start == T0 - timedelta(hours=1) and state.cursor is None
    later = electricity(Api(TEN), Writer())
    later.load(state, T0 + timedelta(minutes=20))
    assert later.window(T0 + timedelta(minutes=20))[0] == T0 - timedelta(hours=1)
    _, end, readings = later.fetch(*later.window(T0 + HALF), T0 + HALF)
    later.keep(readings, end, T0 + HALF)
    later.saver()(state)
    assert state.cursor is not None and state.first_window_start is None


def test_each_fuel_asks_for_its_own_telemetry() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls: list[tuple[str, tuple[object, ...]]] = []

        def telemetry(self, start: datetime, end: datetime, grouping: str) -> list[Reading]:
            self.calls.append(("telemetry", (start, end, grouping)))
            return []

        def gas_telemetry(self, start: datetime, end: datetime) -> list[GasReading]:
            self.calls.append(("gas", (start, end)))
            return []

    client = Client()
    telemetry_of(client, ELECTRICITY)(T0 - HALF, T0)
    telemetry_of(client, GAS)(T0 - HALF, T0)
    assert client.calls == [
        ("telemetry", (T0 - HALF, T0, "TEN_SECONDS")),
        ("gas", (T0 - HALF, T0)),
    ]
