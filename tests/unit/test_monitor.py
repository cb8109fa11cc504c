"""Monitor.cycle() with small fakes: the cursor rule, the store paths, alerts, status.

Time is injected: no test sleeps. The budget, state store and alert policy are the real
ones; the Octopus client, InfluxDB sink, cache and sync are fakes that record what they
were asked, so each store path (SPEC §4.4, §4.5) is checked exactly.
"""

from __future__ import annotations

import errno
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.daemon.monitor import Monitor
from octomon.daemon.outcome import AUTH, BUDGET, FAILED, OK, RATE_LIMITED, STOPPED, STORE_FAILED
from octomon.daemon.status import Status
from octomon.errors import (
    ApiError,
    AuthError,
    CacheError,
    InfluxConfigError,
    InfluxRefused,
    InfluxUnavailable,
    OctomonError,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
)
from octomon.octopus.budget import HOLD, Interrupted, StopAwareBudget
from octomon.readings import Reading
from octomon.state import StateStore
from octomon.store.cache import AppendResult, CacheStatus
from octomon.wiring import assemble_monitor
from tests.helpers.clock import ManualClock as Clock
from tests.helpers.lineproto import readings_of

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(ts: datetime, kw: float = 0.5) -> Reading:
    return Reading(ts, DEV, consumption_delta=kw / 360, demand=kw, cost_delta=0.0001)


class FakeClient:
    """Serves a reading every 10 s up to ``visible_until`` (or what ``items`` says)."""

    def __init__(self, budget: StopAwareBudget, clock: Callable[[], datetime]) -> None:
        self.budget = budget
        self.clock = clock
        self.refresh_token: str | None = "refresh-token-1234567890"
        self.refresh_expires_at: datetime | None = T0 + timedelta(days=7)
        self.windows: list[tuple[datetime, datetime]] = []
        self.errors: list[Exception] = []
        self.lag = timedelta(seconds=30)  # readings appear 30 s after readAt
        self.frozen_at: datetime | None = None
        self.hole: tuple[datetime, datetime] | None = None  # nothing served in here
        self.oldest: datetime | None = None  # KT-GB-4051 before this
        self.devices = 0
        self.closed = False

    def device(self) -> str:
        self.budget.reserve(self.clock())
        self.devices += 1
        return DEV

    def telemetry(
        self, start: datetime, end: datetime, grouping: str = "TEN_SECONDS"
    ) -> list[Reading]:
        self.budget.reserve(self.clock())
        self.windows.append((start, end))
        if self.errors:
            error = self.errors.pop(0)
            if isinstance(error, RateLimited):  # as the real client does
                error.retry_in = self.budget.rate_limited(self.clock())
            raise error
        if self.oldest is not None and start < self.oldest:
            raise RangeTooOld("too old")
        now = self.clock()
        out = []
        t = start + timedelta(seconds=(-start.timestamp()) % 10)
        while t < end:
            if self.hole is not None and self.hole[0] <= t < self.hole[1]:
                t = self.hole[1]
                continue
            if t + self.lag <= now and (self.frozen_at is None or t < self.frozen_at):
                out.append(reading(t))
            t += timedelta(seconds=10)
        return out

    def close(self) -> None:
        self.closed = True


class FakeSink:
    def __init__(self) -> None:
        self.points: list[Reading] = []
        self.requests: list[int] = []
        self.error: Exception | None = None
        self.refuse: Callable[[Sequence[Reading]], bool] | None = None

    def write_lines(self, body: bytes | str, count: int) -> None:
        self.write(readings_of(body))

    def write(self, readings: Sequence[Reading]) -> None:
        self.requests.append(len(readings))
        if self.error is not None:
            raise self.error
        if self.refuse is not None and self.refuse(readings):
            raise InfluxRefused("refused", 422, "field type conflict")
        self.points.extend(readings)

    def close(self) -> None:
        pass


@dataclass
class FakeCache:
    lines: list[Reading] = field(default_factory=list)
    rejected: list[tuple[list[str], str]] = field(default_factory=list)
    fail: OctomonError | None = None

    def append(self, readings: Sequence[Reading]) -> AppendResult:
        if self.fail is not None:
            raise self.fail
        self.lines.extend(readings)
        return AppendResult(len(readings))

    def files(self) -> list[Path]:
        return []

    def is_empty(self) -> bool:
        return not self.lines

    def status(self) -> CacheStatus:
        return CacheStatus(readings=len(self.lines))

    def write_rejected(self, lines: Sequence[str], message: str, now: datetime) -> None:
        self.rejected.append((list(lines), message))


@dataclass
class SyncResult:
    synced: int
    rejected: int
    left: int
    error: OctomonError | None
    files_done: int = 0
    evicted_files: int = 0
    evicted_readings: int = 0


def fake_sync(
    cache: FakeCache,
    sink: FakeSink,
    *,
    max_readings: int | None = None,
    lock_timeout: float = 30,
    now: Any = None,
    batch_size: int = 5000,
    stop: Any = None,
) -> SyncResult:
    n = min(len(cache.lines), max_readings or len(cache.lines))
    batch = cache.lines[:n]
    try:
        if batch:
            sink.write(batch)
    except OctomonError as exc:
        return SyncResult(0, 0, len(cache.lines), exc)
    del cache.lines[:n]
    return SyncResult(n, 0, len(cache.lines), None)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self.closed: float | None = None

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.sent.extend(alerts)

    def close(self, timeout: float = 3.0) -> None:
        self.closed = timeout

    def titles(self) -> list[str]:
        return [a.title for a in self.sent]


@dataclass
class Kit:
    monitor: Monitor
    client: FakeClient
    sink: FakeSink | None
    cache: FakeCache
    alerts: Alerts
    clock: Clock
    store: StateStore
    stop: threading.Event
    cache_dir: Path

    def cycle(self, advance: float = 60):  # type: ignore[no-untyped-def]
        return self.monitor.cycle(self.clock.advance(advance))


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Kit]:
    def factory(
        *,
        local: bool = False,
        cache: FakeCache | None = None,
        start: datetime = T0,
        clock: Any = None,
        stop: threading.Event | None = None,
        started: bool = True,
        sync: Any = None,
    ) -> Kit:
        cache_dir = tmp_path / "cache"
        cache_dir.mkdir(exist_ok=True)
        clock = clock or Clock(start)
        stop = stop or threading.Event()
        store = StateStore(cache_dir)
        budget = StopAwareBudget(store, 75, stop, deferred=True)  # as build_monitor
        client = FakeClient(budget, clock)
        sink = None if local else FakeSink()
        cache = cache or FakeCache()
        alerts = Alerts()
        monitor = assemble_monitor(
            client=client,
            cache=cache,
            sink=sink,
            store=store,
            budget=budget,
            policy=AlertPolicy(),
            alerter=alerts,
            sync=sync or fake_sync,
            poll_interval=60,
            cache_dir=cache_dir,
            stop=stop,
        )
        if started:
            monitor.start(clock())
        return Kit(monitor, client, sink, cache, alerts, clock, store, stop, cache_dir)

    return factory


def steps(start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += timedelta(seconds=10)
    return out


# --- windows and the cursor ------------------------------------------------------------


def test_first_start_looks_one_hour_back_and_stores_every_reading(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    result = kit.cycle(0)
    assert result.outcome == OK
    assert result.window == (T0 - timedelta(hours=1), T0)
    expected = [t for t in steps(T0 - timedelta(hours=1), T0) if t <= T0 - timedelta(seconds=30)]
    assert [r.read_at for r in kit.sink.points] == expected
    assert kit.sink.requests == [len(expected)]  # one write request per cycle
    assert result.cursor == expected[-1]
    state = kit.store.load()
    assert state.cursor == expected[-1]
    assert state.device_id == DEV
    assert state.refresh_token == "refresh-token-1234567890"
    assert kit.client.devices == 1


def test_overlap_refetches_five_minutes_but_stores_each_reading_once(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    first = kit.cycle(0)
    second = kit.cycle(60)
    assert second.window == (first.cursor - timedelta(minutes=5), kit.clock.now)
    assert second.skipped == 31  # the overlap: [cursor − 5 min, cursor] was stored
    assert second.stored == 6
    times = [r.read_at for r in kit.sink.points]
    assert len(times) == len(set(times))
    assert kit.client.devices == 1  # the device is discovered once


def test_late_upload_inside_the_overlap_is_caught(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.client.lag = timedelta(seconds=30)
    kit.cycle(0)
    kit.client.lag = timedelta(seconds=200)  # a burst arrives late ...
    kit.cycle(60)
    kit.client.lag = timedelta(seconds=30)  # ... and is served in the next window
    kit.cycle(60)
    times = sorted(r.read_at for r in kit.sink.points)
    assert times == steps(times[0], times[-1] + timedelta(seconds=1))  # no hole
    assert len(times) == len(set(times))


def test_restart_resumes_from_the_cursor_one_six_hour_window_per_cycle(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    cursor = kit.monitor.cursor
    kit.monitor.close(kit.clock())
    later = make(start=kit.clock.now + timedelta(hours=13))
    later.sink.points = []
    first = later.cycle(0)
    assert first.window is not None and cursor is not None
    assert first.window[0] == cursor - timedelta(minutes=5)
    assert first.window[1] - first.window[0] == timedelta(hours=6)
    assert not first.caught_up
    results = [first]
    while not results[-1].caught_up:
        results.append(later.cycle(1))
    assert len(results) == 3  # 13 h + overlap in three windows, oldest first
    times = [r.read_at for r in later.sink.points]
    assert times == sorted(set(times))
    # After a restart the overlap is stored again (nothing remembers it): harmless.
    assert times[0] == cursor - timedelta(minutes=5)
    assert steps(times[0], times[-1] + timedelta(seconds=1)) == times


def test_an_empty_old_window_settles_the_cursor_but_a_recent_one_does_not(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    cursor = kit.monitor.cursor
    assert cursor is not None
    kit.client.frozen_at = cursor + timedelta(seconds=1)
    kit.cycle(60)
    assert kit.monitor.cursor == cursor  # recent and empty: nothing settled
    # Two days later the frozen device must not pin the cursor: old empty windows settle.
    kit.clock.advance(2 * 86400)
    result = kit.cycle(0)
    assert result.window is not None and cursor is not None
    assert result.window[0] == cursor - timedelta(minutes=5)
    assert kit.monitor.cursor == result.window[1]
    kit.monitor.close(kit.clock())
    assert kit.store.load().cursor == result.window[1]


def test_range_too_old_jumps_to_24_hours_back_and_reports_the_lost_span_once(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    kit.clock.advance(3 * 86400)
    kit.client.oldest = kit.clock.now - timedelta(hours=24, minutes=-1)
    result = kit.cycle(0)
    # now − 24 h is still refused (older than the API's limit), so it jumps to now − 6 h.
    assert result.outcome == OK
    assert result.window is not None
    assert result.window[0] == kit.clock.now - timedelta(hours=6)
    lost = [a for a in kit.alerts.sent if a.key == "range_lost"]
    assert len(lost) == 1
    kit.cycle(60)
    assert len([a for a in kit.alerts.sent if a.key == "range_lost"]) == 1
    assert kit.store.load().cursor is not None


def test_range_too_old_jump_to_24_hours(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    kit.clock.advance(3 * 86400)
    kit.client.oldest = kit.clock.now - timedelta(hours=25)
    result = kit.cycle(0)
    assert result.window is not None
    assert result.window[0] == kit.clock.now - timedelta(hours=24)
    assert not result.caught_up


# --- InfluxDB failures and cache mode ---------------------------------------------------------


def test_influx_unavailable_caches_then_health_check_drains_and_returns_to_direct(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    kit.sink.error = InfluxUnavailable("connection refused", retry_after=7)
    lost = kit.cycle(60)
    assert lost.outcome == OK and lost.mode == "cache"
    assert kit.monitor.writer.retry_after == 7
    assert len(kit.cache.lines) == lost.stored == 6
    assert lost.cursor == kit.cache.lines[-1].read_at  # appended is durable: the cursor moves
    requests = len(kit.sink.requests)
    queued = kit.cycle(60)
    assert len(kit.sink.requests) == requests  # cache mode: new readings queue in the cache
    assert queued.backlog == 12
    assert [a.title for a in kit.alerts.sent].count("InfluxDB unreachable: caching readings") == 1

    still_down = kit.monitor.health_check(kit.clock())
    assert not still_down.acknowledged and kit.monitor.writer.cache_mode
    kit.sink.error = None
    step = kit.monitor.health_check(kit.clock.advance(30))
    assert step.acknowledged and step.done
    assert not kit.monitor.writer.cache_mode and kit.monitor.writer.backlog == 0
    back = kit.cycle(30)
    assert back.mode == "influxdb"
    times = [r.read_at for r in kit.sink.points]
    assert times == sorted(set(times))  # in order, each once
    # The "restored" message waits until the recovery has held (the policy's debounce);
    # the stop announces it at once, with the synced count folded in.
    kit.monitor.close(kit.clock())
    restored = [a for a in kit.alerts.sent if a.title.startswith("InfluxDB restored")]
    assert len(restored) == 1 and "synced 12 readings" in restored[0].title


def test_a_backlog_left_from_an_earlier_run_means_cache_mode_at_start(make) -> None:  # type: ignore[no-untyped-def]
    old = FakeCache(lines=[reading(T0 - timedelta(days=1))])
    kit = make(cache=old)
    assert kit.monitor.writer.cache_mode
    kit.cycle(0)
    assert kit.sink.points == [] and len(kit.cache.lines) > 1  # behind the backlog
    step = kit.monitor.health_check(kit.clock())
    assert step.done
    assert kit.sink.points[0].read_at == T0 - timedelta(days=1)  # oldest first


def test_drain_in_bounded_slices(make, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import octomon.daemon.writer

    monkeypatch.setattr(octomon.daemon.writer, "HEALTH_BATCH", 10)
    old = FakeCache(lines=[reading(T0 - timedelta(days=1, seconds=-10 * i)) for i in range(25)])
    kit = make(cache=old)
    step = kit.monitor.health_check(kit.clock())
    assert step.acknowledged and not step.done and step.left == 15
    assert kit.monitor.writer.draining
    assert kit.monitor.drain(kit.clock(), max_readings=10).left == 5
    assert kit.monitor.writer.draining
    assert kit.monitor.drain(kit.clock(), max_readings=10).done
    assert not kit.monitor.writer.cache_mode


def test_influx_config_error_caches_and_names_the_cause(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.sink.error = InfluxConfigError('bucket "x" not found', "bucket", 404)
    result = kit.cycle(0)
    assert result.outcome == OK and result.mode == "cache"
    assert len(kit.cache.lines) == result.stored > 0
    errors = [a for a in kit.alerts.sent if a.key == "influx"]
    assert len(errors) == 1 and "bucket" in errors[0].title
    kit.cycle(60)
    assert len([a for a in kit.alerts.sent if a.key == "influx"]) == 1


def test_refused_data_is_split_in_halves_until_only_the_bad_reading_is_set_aside(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    assert kit.monitor.cursor is not None
    target = kit.monitor.cursor + timedelta(seconds=60)  # the newest of the next 6 readings
    kit.sink.refuse = lambda rs: any(r.read_at == target for r in rs)
    before = len(kit.sink.points)
    result = kit.cycle(60)
    assert result.outcome == OK
    assert result.rejected == 1  # only the bad reading
    assert len(kit.sink.points) - before == 5  # every good one was written
    # The batch, its halves, the refused half's halves, and so on down to the bad one.
    assert kit.sink.requests[-7:] == [6, 3, 3, 1, 2, 1, 1]
    assert len(kit.cache.rejected) == 1
    lines, message = kit.cache.rejected[0]
    assert message == "HTTP 422: field type conflict" and len(lines) == 1
    assert [json.loads(line)["read_at"] for line in lines][-1] == target.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert result.cursor == target  # set aside is durable: settled
    assert any(a.key == "refused" for a in kit.alerts.sent)


# --- the cache failing (disk full) ----------------------------------------------------------


def test_a_failed_append_moves_nothing_alerts_once_and_the_span_is_fetched_again(make) -> None:  # type: ignore[no-untyped-def]
    kit = make(local=True)
    first = kit.cycle(0)
    cursor = first.cursor
    kit.cache.fail = CacheError("cache append failed: No space left on device")
    failed = [kit.cycle(60) for _ in range(3)]
    assert [r.outcome for r in failed] == [STORE_FAILED] * 3
    assert kit.monitor.cursor == cursor == kit.store.load().cursor
    assert [a.key for a in kit.alerts.sent].count("cache_write") == 1
    kit.cache.fail = None
    ok = kit.cycle(60)
    assert ok.outcome == OK
    times = [r.read_at for r in kit.cache.lines]
    assert times == steps(times[0], times[-1] + timedelta(seconds=1))  # nothing lost
    kit.clock.advance(600)
    kit.monitor.cycle(kit.clock())
    assert any(a.title == "Caching works again" for a in kit.alerts.sent)


def test_unstored_readings_hold_the_cursor_even_when_a_later_half_was_written(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    cursor = kit.monitor.cursor
    kit.clock.advance(60)
    # The first half is refused twice and cannot even be set aside: the cursor must not
    # pass it although the second half was written.
    kit.cache.fail = CacheError("disk full")
    original = kit.cache.write_rejected

    def broken(lines: Sequence[str], message: str, now: datetime) -> None:
        raise CacheError("disk full")

    kit.cache.write_rejected = broken  # type: ignore[method-assign]
    kit.sink.refuse = lambda rs: rs[0].read_at <= cursor + timedelta(seconds=30)
    result = kit.monitor.cycle(kit.clock())
    assert result.outcome == STORE_FAILED
    assert kit.monitor.cursor == cursor
    kit.cache.write_rejected = original  # type: ignore[method-assign]


# --- Octopus failures ------------------------------------------------------------------------


def test_three_failed_cycles_in_a_row_alert_once_and_rate_limits_do_not_count(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    kit.client.errors = [OctopusUnavailable("HTTP 502"), OctopusUnavailable("HTTP 503")]
    assert [kit.cycle(60).outcome for _ in range(2)] == [FAILED, FAILED]
    kit.client.errors = [RateLimited("too many", retry_in=300)]
    assert kit.cycle(60).outcome == RATE_LIMITED
    assert not any(a.key == "octopus" for a in kit.alerts.sent)
    kit.clock.advance(300)  # the backoff
    kit.client.errors = [ApiError("KT-GB-4039", "unable"), OctopusUnavailable("timeout")]
    assert kit.cycle(60).outcome == FAILED
    assert kit.cycle(60).outcome == FAILED
    assert [a.key for a in kit.alerts.sent].count("octopus") == 1


def test_a_refused_key_is_fatal_with_an_alert(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.client.errors = [AuthError("authentication failed: KT-CT-1139", "check OCTOPUS_API_KEY")]
    result = kit.cycle(0)
    assert result.outcome == AUTH
    assert "Octopus API key refused" in kit.alerts.titles()


def test_failed_fetch_keeps_the_cursor_and_the_next_cycle_fills_the_gap(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    kit.client.errors = [OctopusUnavailable("HTTP 502")] * 5
    for _ in range(5):
        kit.cycle(60)
    kit.cycle(60)
    times = [r.read_at for r in kit.sink.points]
    assert times == steps(times[0], times[-1] + timedelta(seconds=1))


# --- stopping -----------------------------------------------------------------------------------


def test_stop_ends_the_cycle_before_its_next_request(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.stop.set()
    result = kit.cycle(0)
    assert result.outcome == STOPPED
    assert kit.client.windows == []  # the device call was refused before it was sent
    with pytest.raises(Interrupted):
        kit.monitor.budget.reserve(kit.clock())


def test_readings_fetched_while_stopping_go_to_the_cache_not_influx(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    original = kit.client.telemetry

    def then_stop(start: datetime, end: datetime, grouping: str = "TEN_SECONDS") -> list[Reading]:
        out = original(start, end, grouping)
        kit.stop.set()  # SIGTERM arrives while this request is in flight
        return out

    kit.client.telemetry = then_stop  # type: ignore[method-assign]
    requests = len(kit.sink.requests)
    result = kit.cycle(60)
    assert result.stored == 6
    assert len(kit.sink.requests) == requests
    assert len(kit.cache.lines) == 6
    kit.monitor.close(kit.clock())  # the stop's save
    assert kit.store.load().cursor == result.cursor


def test_state_json_waits_for_the_hold_but_a_jump_is_saved_at_once(make) -> None:  # type: ignore[no-untyped-def]
    """SPEC §4.9: the cursor and the calls the hold covers are written every HOLD calls,
    not every cycle; what the hold cannot stand for (a KT-GB-4051 jump) is written at once."""
    kit = make()
    kit.cycle(0)  # discovery: the device is saved at once
    saved = kit.store.identity()
    writes = 0
    for _ in range(3 * HOLD):
        kit.cycle(60)
        seen = kit.store.identity()
        writes += seen != saved
        saved = seen
    assert writes == 3  # every HOLD cycles, each making one call
    on_disk = kit.store.load()
    assert on_disk.cursor == kit.monitor.cursor  # the last of them was a save
    assert len(on_disk.calls) == 2 + 3 * HOLD
    kit.cycle(60)  # one more call, covered by the hold: the file waits
    assert kit.store.load().cursor < kit.monitor.cursor
    kit.monitor.stream.cursor.retention_jump(kit.monitor.cursor - timedelta(days=3), kit.clock())
    kit.cycle(60)
    assert kit.store.load().cursor == kit.monitor.cursor


def test_close_saves_state_gives_the_stop_alert_and_closes(make) -> None:  # type: ignore[no-untyped-def]
    kit = make(local=True)
    kit.cycle(0)
    kit.monitor.close(kit.clock())
    assert kit.alerts.closed == 3.0
    assert kit.client.closed
    assert kit.alerts.sent[-1].title == "octomon stopped"  # local mode: the cache is home


# --- status.json ----------------------------------------------------------------------------------


def test_status_json_is_written_every_cycle(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(0)
    status = Status.read(kit.cache_dir)
    assert status is not None
    assert status.mode == "influxdb"
    assert status.last_good_cycle_at == T0
    assert status.calls_last_hour == 2  # discovery + telemetry
    assert status.call_budget == 75
    assert status.stored_this_session == len(kit.sink.points)
    assert status.last_demand_kw == 0.5
    kit.sink.error = InfluxUnavailable("down")
    kit.cycle(60)
    status = Status.read(kit.cache_dir)
    assert status is not None and status.mode == "cache" and status.cache_backlog == 6


def test_status_and_state_write_failures_are_logged_and_retried(
    make,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = make()

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Status, "write", full)
    monkeypatch.setattr(kit.monitor.budget, "save", full)  # state and ledger: one write
    result = kit.cycle(0)
    assert result.outcome == OK  # the readings were stored; only the bookkeeping failed
    assert "could not save state.json" in caplog.text
    assert "could not write status.json" in caplog.text
    assert kit.store.load().cursor is None
    monkeypatch.undo()
    kit.cycle(60)
    assert kit.store.load().cursor == kit.monitor.cursor is not None
    assert Status.read(kit.cache_dir) is not None


def test_a_full_disk_under_state_json_keeps_polling_with_the_ledger_in_memory(
    make,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kit = make()
    kit.cycle(0)
    on_disk = len(kit.store.load().calls)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kit.store, "update", full)
    n = HOLD + 2  # past the hold: the saves are due, and fail
    results = [kit.cycle(60) for _ in range(n)]
    assert [r.outcome for r in results] == [OK] * n  # polling and direct writes go on
    assert len(kit.sink.requests) == n + 1
    alerts = [a for a in kit.alerts.sent if a.key == "state_write"]
    assert [a.title for a in alerts] == ["Cannot save state.json"]  # one alert
    assert kit.monitor.budget.calls_last_hour(kit.clock()) == on_disk + n  # still counted
    kit.monitor.budget.max_per_hour = on_disk + n + 1  # and still enforced, in memory
    assert kit.cycle(60).outcome == OK
    limited = kit.cycle(60)
    assert limited.outcome == BUDGET and len(kit.client.windows) == n + 2
    monkeypatch.undo()
    kit.monitor.budget.max_per_hour = 75
    assert kit.cycle(60).outcome == OK
    assert len(kit.store.load().calls) == on_disk + n + 2  # the memory's calls reach the disk
    assert kit.store.load().cursor == kit.monitor.cursor


def test_the_overlap_memory_stays_bounded(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    for _ in range(20):
        kit.cycle(60)
    assert len(kit.monitor.stream.cursor.seen) <= 31
    kit.clock.advance(5 * 3600)
    kit.cycle(0)  # a 5-hour catch-up window
    assert len(kit.monitor.stream.cursor.seen) <= 31


def test_summary_line_names_stored_mode_backlog_and_calls(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    line = kit.cycle(0).summary()
    assert line.startswith("stored ")
    assert "mode influxdb" in line and "backlog 0" in line
    assert "API calls 2/75 in the last hour" in line


def test_local_mode_keeps_readings_locally_not_as_a_backlog(make) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    result = make().cycle(0)
    line = dataclasses.replace(result, mode="local", backlog=355).summary()
    assert "mode local; kept locally 355;" in line and "backlog" not in line


# --- the loop, on fake time ---------------------------------------------------------------------


class FakeTime:
    """Monotonic seconds and the matching wall clock; only waits move them."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


class TimedStop(threading.Event):
    """``stop`` whose wait() lets fake time pass, and which sets itself at ``until``."""

    def __init__(self, time: FakeTime, until: float) -> None:
        super().__init__()
        self.time = time
        self.until = until
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        assert timeout is not None and timeout >= 0, "the loop never waits without a limit"
        self.waits.append(timeout)
        self.time.t = min(self.time.t + timeout, self.until)
        if self.time.t >= self.until:
            self.set()
        return self.is_set()


class Notifier:
    def __init__(self, watchdog_interval: float | None) -> None:
        self.watchdog_interval = watchdog_interval
        self.messages: list[str] = []

    def ready(self) -> None:
        self.messages.append("READY=1")

    def watchdog(self) -> None:
        self.messages.append("WATCHDOG=1")

    def stopping(self) -> None:
        self.messages.append("STOPPING=1")


def run_loop(make, until: float, *, setup=None, notifier=None, **kw):  # type: ignore[no-untyped-def]
    from octomon.daemon.loop import Loop

    time = FakeTime()
    stop = TimedStop(time, until)
    kit = make(clock=time, stop=stop, started=False, **kw)
    if setup is not None:
        setup(kit)
    loop = Loop(
        kit.monitor,
        stop=stop,
        notifier=notifier,  # type: ignore[arg-type]
        clock=time,
        monotonic=time.monotonic,
    )
    code = loop.run()
    return kit, loop, code, stop


def request_times(kit: Kit) -> list[float]:
    return [(c - T0).total_seconds() for c in kit.store.load().calls]


def test_loop_polls_every_interval_and_stops_cleanly(make) -> None:  # type: ignore[no-untyped-def]
    notifier = Notifier(watchdog_interval=15)
    kit, loop, code, stop = run_loop(make, 600, notifier=notifier)
    assert code == 0
    assert loop.cycles == 10  # t = 0, 60, … 540
    assert [w[1] for w in kit.client.windows] == [T0 + timedelta(seconds=60 * i) for i in range(10)]
    assert notifier.messages[0] == "READY=1" and notifier.messages[-1] == "STOPPING=1"
    # A watchdog ping after every cycle and at least every 15 s while waiting.
    assert max(stop.waits) <= 15
    assert notifier.messages.count("WATCHDOG=1") >= 600 / 15
    assert kit.alerts.titles()[0] == "octomon started"
    assert kit.alerts.titles()[-1] == "octomon stopped"
    assert kit.alerts.closed == 3.0


def test_loop_backs_off_five_minutes_on_a_rate_limit_without_sending_requests(make) -> None:  # type: ignore[no-untyped-def]
    def setup(kit: Kit) -> None:
        original = kit.client.telemetry
        count = {"n": 0}

        def limited_once(start: datetime, end: datetime, grouping: str = "TEN_SECONDS"):  # type: ignore[no-untyped-def]
            count["n"] += 1
            if count["n"] == 2:
                kit.client.errors = [RateLimited("KT-GB-4042: Too many requests.")]
            return original(start, end, grouping)

        kit.client.telemetry = limited_once  # type: ignore[method-assign]

    kit, _loop, code, _ = run_loop(make, 900, setup=setup)
    times = request_times(kit)
    # discovery + telemetry at 0, the refused telemetry at 60, then nothing until 360.
    assert times[:3] == [0, 0, 60]
    assert times[3] == 360
    assert all(b - a >= 60 for a, b in itertools.pairwise(times[1:]))
    assert code == 0


def test_loop_catches_up_a_gap_quickly_but_within_the_budget(make) -> None:  # type: ignore[no-untyped-def]
    from octomon.state import State

    def setup(kit: Kit) -> None:
        def old_cursor(state: State) -> None:
            state.cursor = T0 - timedelta(days=3)

        kit.store.update(old_cursor)

    kit, _loop, _code, _ = run_loop(make, 120, setup=setup)
    windows = kit.client.windows
    assert windows[0][0] == T0 - timedelta(days=3, minutes=5)
    # 3 days in 6-hour windows, one second apart, then the normal interval.
    caught = next(i for i, w in enumerate(windows) if w[1] >= T0)
    assert caught == 12
    assert len(windows) < 20
    stored = sorted(r.read_at for r in kit.sink.points)
    assert stored == sorted(set(stored))


def test_loop_catch_up_waits_for_the_budget(make) -> None:  # type: ignore[no-untyped-def]
    from octomon.state import State

    def setup(kit: Kit) -> None:
        def old_cursor(state: State) -> None:
            state.cursor = T0 - timedelta(days=29)

        kit.store.update(old_cursor)
        kit.client.hole = (T0 - timedelta(days=29), T0 - timedelta(hours=1))  # keeps it quick

    kit, _loop, _code, _ = run_loop(make, 3 * 3600, setup=setup)
    calls = sorted(kit.store.load().calls)
    for i, c in enumerate(calls):  # never more than 75 requests in any hour
        assert len([d for d in calls[i:] if d < c + timedelta(hours=1)]) <= 75
    windows = kit.client.windows
    assert windows[-1][1] >= T0 + timedelta(hours=2)  # caught up in the end


def test_loop_health_checks_every_health_check_seconds_honouring_retry_after(make) -> None:  # type: ignore[no-untyped-def]
    def setup(kit: Kit) -> None:
        kit.monitor.health_check_seconds = 30
        kit.sink.error = InfluxUnavailable("HTTP 503", retry_after=100)

    kit, _loop, _code, _ = run_loop(make, 400, setup=setup)
    # The first write fails at t=0, then each health check is one more write attempt,
    # 100 s apart (Retry-After beats HEALTH_CHECK_SECONDS=30); cycles only append.
    assert len(kit.sink.requests) == 1 + 3  # t = 0 (cycle), 100, 200, 300 (health checks)
    assert kit.monitor.writer.cache_mode


def test_loop_drains_after_influx_returns_and_keeps_polling(make) -> None:  # type: ignore[no-untyped-def]
    def setup(kit: Kit) -> None:
        kit.monitor.health_check_seconds = 10
        kit.sink.error = InfluxUnavailable("connection refused")

    from octomon.daemon.loop import Loop

    time = FakeTime()
    stop = TimedStop(time, 150)
    kit = make(clock=time, stop=stop, started=False)
    setup(kit)

    real_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        if time.t >= 95:
            kit.sink.error = None  # InfluxDB is back at t≈95
        return real_wait(timeout)

    stop.wait = wait  # type: ignore[method-assign]
    loop = Loop(kit.monitor, stop=stop, clock=time, monotonic=time.monotonic)
    assert loop.run() == 0
    assert not kit.monitor.writer.cache_mode and kit.cache.lines == []
    times = [r.read_at for r in kit.sink.points]
    assert times == sorted(times) and len(times) == len(set(times))
    assert loop.cycles == 3  # t = 0, 60, 120: polling never stopped


def test_loop_exits_2_after_alerting_a_refused_key(make) -> None:  # type: ignore[no-untyped-def]
    def setup(kit: Kit) -> None:
        kit.client.errors = [AuthError("authentication failed: KT-CT-1139")]

    kit, loop, code, _ = run_loop(make, 600, setup=setup)
    assert code == 2
    assert "Octopus API key refused" in kit.alerts.titles()
    assert loop.cycles == 1
    assert kit.alerts.closed == 3.0


def test_loop_survives_an_unexpected_error_and_logs_it(
    make,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    def setup(kit: Kit) -> None:
        kit.client.errors = [ZeroDivisionError("boom")]

    _kit, loop, code, _ = run_loop(make, 200, setup=setup)
    assert code == 0
    assert "unexpected error" in caplog.text and "ZeroDivisionError" in caplog.text
    assert loop.cycles == 3  # t = 60, 120, 180 after the failed one at 0
