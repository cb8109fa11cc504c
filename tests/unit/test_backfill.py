"""backfill core: the plan, and runs against the simulator (real HTTP, injected clocks).

The clock is shared by the simulator, the budget and the run, and ``wait`` moves it on:
budget waits and backoffs are exercised without sleeping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.errors import InfluxConfigError, InfluxRefused, InfluxUnavailable
from octomon.history.backfill import (
    BackfillProgress,
    BackfillResult,
    Sink,
    plan,
    remember_device,
    run_backfill,
    windows,
)
from octomon.octopus.budget import Budget
from octomon.octopus.graphql import OctopusClient
from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.state import State, StateStore
from octomon.store.cache import Cache
from tests.helpers.cli import set_clock
from tests.helpers.clock import ManualClock
from tests.helpers.lineproto import readings_of
from tests.helpers.sim_faults import FaultySim

NOW = datetime(2026, 11, 27, 14, 37, 20, tzinfo=timezone.utc)
H = timedelta(hours=1)


class Clock(ManualClock):
    """Also the backfill's ``wait``: time moves on instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        if seconds > 0:
            self.waits.append(seconds)
            self.now += timedelta(seconds=seconds)
        return False


class MemoryCache:
    """Records what was appended (the real day-file cache is exercised in the VM tests)."""

    def __init__(self, holding: int = 0) -> None:
        self.readings: list[Reading] = []
        self.rejected: list[tuple[list[str], str]] = []
        self.holding = holding

    def append(self, readings: Sequence[Reading]) -> None:
        self.readings.extend(readings)

    def write_rejected(self, lines: Sequence[str], message: str, now: datetime) -> None:
        self.rejected.append((list(lines), message))

    def is_empty(self) -> bool:
        return self.holding == 0 and not self.readings


class FlakySink:
    """Accepts ``ok`` writes, then raises ``error`` for every write."""

    def __init__(self, ok: int, error: Exception) -> None:
        self.ok = ok
        self.error = error
        self.written: list[Reading] = []

    def write_lines(self, body: bytes | str, count: int) -> None:
        self.write(readings_of(body))

    def write(self, readings: Sequence[Reading]) -> None:
        if self.ok <= 0:
            raise self.error
        self.ok -= 1
        self.written.extend(readings)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[SimHomeMini]:
    home = FaultySim(clock=clock)
    with SimServer(home) as server:
        home.url = server.url  # type: ignore[attr-defined]
        yield home


def _client(sim: SimHomeMini, budget: Budget, clock: Clock) -> OctopusClient:
    return OctopusClient(
        api_key=sim.api_key,
        account_number=sim.account_number,
        api_url=sim.url,  # type: ignore[attr-defined]
        budget=budget,
        clock=clock,
    )


def _run(
    sim: SimHomeMini,
    clock: Clock,
    since: datetime,
    until: datetime,
    *,
    budget: Budget | None = None,
    sink: Sink | None = None,
    cache: MemoryCache | None = None,
    events: list[BackfillProgress] | None = None,
) -> tuple[BackfillResult, MemoryCache]:
    budget = budget or Budget(None, 75)
    cache = cache if cache is not None else MemoryCache()
    client = _client(sim, budget, clock)
    try:
        result = run_backfill(
            plan(since, until, budget, clock()),
            client,
            sink,
            cache,
            progress=events.append if events is not None else None,
            wait=clock.wait,
            clock=clock,
        )
    finally:
        client.close()
    return result, cache


def _telemetry_calls(sim: SimHomeMini) -> list[datetime]:
    return [at for at, op in sim.calls if op == "telemetry"]


def _served_in(sim: SimHomeMini, lo: datetime, hi: datetime) -> set[datetime]:
    return {ts for ts in sim.served if lo <= ts < hi}


def _served_in_window(sim: SimHomeMini, clock: Clock, lo: datetime, hi: datetime) -> set[datetime]:
    """What the simulator will serve for [lo, hi) at the clock's time (nothing recorded)."""
    out = set()
    at = lo
    while at < hi:
        if sim.reading_at(at) is not None and sim.available_at(at) <= clock():
            out.add(at)
        at += timedelta(seconds=10)
    return out


# --- the plan ---------------------------------------------------------------------------


def test_windows_are_six_hours_oldest_first() -> None:
    since = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=1)
    spans = windows(since, NOW)
    hours = (NOW - since) / H
    assert len(spans) == math.ceil(hours / 6) == 7
    assert spans[0][0] == since and spans[-1][1] == NOW
    assert all(b - a <= 6 * H for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))


def test_plan_within_free_budget_is_quick() -> None:
    budget = Budget(None, 75)
    p = plan(NOW - 30 * H, NOW, budget, NOW)
    assert len(p.windows) == 5 and p.calls == 7
    assert p.eta_seconds < 60


def test_plan_beyond_the_budget_counts_the_hours() -> None:
    budget = Budget(None, 10)
    for i in range(10):  # the last hour is full
        budget.reserve(NOW - timedelta(minutes=50 - i))
    p = plan(NOW - 10 * 24 * H, NOW, budget, NOW, overhead_calls=1)
    assert p.calls == 41 + 4  # 40 windows, a token, and its renewals over four hours
    assert 4.4 * 3600 <= p.eta_seconds <= 4.6 * 3600  # 45 calls at 10 an hour
    shared = plan(NOW - 10 * 24 * H, NOW, budget, NOW, overhead_calls=1, others_per_hour=5)
    assert shared.calls == 41 + 8
    assert 9.7 * 3600 <= shared.eta_seconds <= 9.9 * 3600  # a daemon takes half the budget


def test_plan_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError):
        plan(NOW, NOW, Budget(None, 75), NOW)


# --- runs against the simulator ------------------------------------------------------------


@pytest.mark.integration
def test_everything_served_is_stored_with_few_calls(sim: SimHomeMini, clock: Clock) -> None:
    since = NOW - 30 * H
    events: list[BackfillProgress] = []
    result, cache = _run(sim, clock, since, NOW, events=events)
    assert result.complete and result.error is None
    assert result.windows_done == 5
    assert len(sim.calls) == 5 + 2  # the token, discovery, five windows
    served = _served_in(sim, since, NOW)
    assert len(served) > 10_000
    assert {r.read_at for r in cache.readings} == served
    assert result.stored == result.cached == len(cache.readings) == len(served)
    assert result.cache_reason is not None and "local mode" in result.cache_reason
    first = next(r for r in cache.readings)
    assert first == Reading.from_api(sim.served[first.read_at], sim.device_id)
    done = [e for e in events if e.kind == "window"]
    assert [e.windows_done for e in done] == [1, 2, 3, 4, 5]
    assert all(e.windows_total == 5 for e in done)
    assert clock.waits == []


@pytest.mark.integration
def test_local_mode_into_the_real_cache(sim: SimHomeMini, clock: Clock, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", 1024, clock)
    budget = Budget(StateStore(tmp_path / "cache"), 75)
    client = _client(sim, budget, clock)
    since = NOW - 20 * H  # across midnight: two day files
    result = run_backfill(plan(since, NOW, budget, NOW), client, None, cache, wait=clock.wait)
    client.close()
    assert result.complete and result.evicted == 0
    cached = list(cache.iter_readings())
    assert len(cached) == result.cached == len(_served_in(sim, since, NOW))
    for reading in cached:
        assert reading == Reading.from_api(sim.served[reading.read_at], sim.device_id)
    assert [p.name for p in cache.files()] == ["cache_2026-11-26.jsonl", "cache_2026-11-27.jsonl"]


@pytest.mark.integration
def test_a_cache_over_its_cap_is_reported(sim: SimHomeMini, clock: Clock, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", 0.3, clock)  # 300 kB: less than a day of readings
    budget = Budget(None, 75)
    client = _client(sim, budget, clock)
    since = NOW - 36 * H
    result = run_backfill(plan(since, NOW, budget, NOW), client, None, cache, wait=clock.wait)
    client.close()
    assert result.evicted > 0 and not result.complete
    kept = sum(1 for _ in cache.iter_readings())
    assert kept + result.evicted == result.cached  # every reading is accounted for


@pytest.mark.integration
def test_budget_exhausted_waits_for_the_next_slot(sim: SimHomeMini, clock: Clock) -> None:
    budget = Budget(None, 3)
    events: list[BackfillProgress] = []
    result, cache = _run(sim, clock, NOW - 30 * H, NOW, budget=budget, events=events)
    assert result.complete
    assert {r.read_at for r in cache.readings} == _served_in(sim, NOW - 30 * H, NOW)
    calls = [at for at, _ in sim.calls]
    assert len(_telemetry_calls(sim)) == 5
    assert len(calls) == 7 + 2  # the run takes over two hours: the token is renewed twice
    for at in calls:  # never more than 3 in any rolling hour
        assert sum(1 for c in calls if at - H < c <= at) <= 3
    waiting = [e for e in events if e.kind == "waiting"]
    assert waiting and all("is used up" in e.message for e in waiting)
    assert sum(clock.waits) >= 3600
    assert sim.rate_limited_answers == 0


@pytest.mark.integration
def test_rate_limit_backs_off_then_carries_on(sim: SimHomeMini, clock: Clock) -> None:
    sim.rate_limited = True
    real_wait = clock.wait

    def wait(seconds: float) -> bool:
        if seconds > 0:
            sim.rate_limited = False
        return real_wait(seconds)

    clock.wait = wait  # type: ignore[method-assign]
    events: list[BackfillProgress] = []
    result, cache = _run(sim, clock, NOW - 12 * H, NOW, events=events)
    assert result.complete
    assert sim.rate_limited_answers == 1
    assert clock.waits == [300.0]  # the first backoff step, then on
    assert any(e.kind == "waiting" and "rate limit" in e.message for e in events)
    assert {r.read_at for r in cache.readings} == _served_in(sim, NOW - 12 * H, NOW)


@pytest.mark.integration
def test_brief_outage_is_retried(sim: SimHomeMini, clock: Clock) -> None:
    sim.service_errors = 2
    result, cache = _run(sim, clock, NOW - 6 * H, NOW)
    assert result.complete
    assert clock.waits == [10.0, 30.0]
    assert {r.read_at for r in cache.readings} == _served_in(sim, NOW - 6 * H, NOW)


@pytest.mark.integration
def test_lasting_outage_stops_and_says_what_is_left(sim: SimHomeMini, clock: Clock) -> None:
    result, cache = _run(sim, clock, NOW - 12 * H, NOW - 6 * H)  # one window done first
    assert result.complete
    sim.service_errors = 1000
    result, cache = _run(sim, clock, NOW - 18 * H, NOW)
    assert not result.complete and cache.readings == []
    assert result.error is not None
    assert "answered HTTP 50" in result.error and "tried 3 times" in result.error
    assert result.windows_done == 0 and result.stored == 0
    assert result.not_done == [(NOW - 18 * H, NOW)]


@pytest.mark.integration
def test_range_too_old_reports_the_missing_span(sim: SimHomeMini, clock: Clock) -> None:
    sim.retention = timedelta(hours=30)
    since = NOW - 3 * 24 * H
    events: list[BackfillProgress] = []
    result, cache = _run(sim, clock, since, NOW, events=events)
    assert not result.complete and result.error is None
    assert len(result.missing) == 1
    lo, hi = result.missing[0]
    boundary = NOW - timedelta(hours=30)
    assert lo == since
    assert boundary <= hi <= boundary + timedelta(minutes=15)
    stored = {r.read_at for r in cache.readings}
    assert stored == _served_in(sim, hi, NOW)  # everything from the oldest served start on
    assert min(stored) < hi + timedelta(minutes=1)
    assert any(e.kind == "missing" and e.window == (lo, hi) for e in events)
    assert len(sim.calls) < 8 + 2 + 12  # windows + token/discovery + a dozen probes at most


@pytest.mark.integration
def test_range_entirely_too_old(sim: SimHomeMini, clock: Clock) -> None:
    sim.retention = timedelta(hours=2)
    result, cache = _run(sim, clock, NOW - 5 * 24 * H, NOW - 4 * 24 * H)
    assert result.missing == [(NOW - 5 * 24 * H, NOW - 4 * 24 * H)]
    assert result.stored == 0 and cache.readings == []
    assert not result.complete


@pytest.mark.integration
def test_interrupted_while_waiting(sim: SimHomeMini, clock: Clock) -> None:
    budget = Budget(None, 3)
    stop_after = [0]

    def wait(seconds: float) -> bool:
        if seconds > 0:
            stop_after[0] += 1
            return True  # Ctrl-C during the first budget wait
        return False

    clock.wait = wait  # type: ignore[method-assign]
    result, cache = _run(sim, clock, NOW - 30 * H, NOW, budget=budget)
    assert result.interrupted and result.error == "interrupted"
    assert result.windows_done == 1  # token + discovery + one window fit in 3 calls
    assert result.not_done == [(NOW - 24 * H, NOW)]
    assert {r.read_at for r in cache.readings} == _served_in(sim, NOW - 30 * H, NOW - 24 * H)


@pytest.mark.integration
def test_lost_influx_switches_to_the_cache(sim: SimHomeMini, clock: Clock) -> None:
    sink = FlakySink(2, InfluxUnavailable("InfluxDB is unreachable (connection refused)"))
    events: list[BackfillProgress] = []
    result, cache = _run(sim, clock, NOW - 30 * H, NOW, sink=sink, events=events)
    assert result.complete
    served = _served_in(sim, NOW - 30 * H, NOW)
    written = {r.read_at for r in sink.written}
    cached = {r.read_at for r in cache.readings}
    assert written | cached == served and not written & cached  # nothing lost
    assert result.cached == len(cached) and result.stored == len(served)
    assert result.cache_reason is not None and "unreachable" in result.cache_reason
    assert [e.kind for e in events].count("cache") == 1


class PickySink:
    """Refuses (HTTP 400) any batch that holds the reading at ``bad``."""

    def __init__(self, bad: datetime) -> None:
        self.bad = bad
        self.written: list[Reading] = []
        self.refusals = 0

    def write_lines(self, body: bytes | str, count: int) -> None:
        self.write(readings_of(body))

    def write(self, readings: Sequence[Reading]) -> None:
        if any(r.read_at == self.bad for r in readings):
            self.refusals += 1
            raise InfluxRefused("InfluxDB refused the data (HTTP 400)", 400, "invalid field")
        self.written.extend(readings)


@pytest.mark.integration
def test_refused_data_is_split_and_set_aside(sim: SimHomeMini, clock: Clock) -> None:
    served = sorted(_served_in_window(sim, clock, NOW - 6 * H, NOW))
    bad = served[100]
    sink = PickySink(bad)
    result, cache = _run(sim, clock, NOW - 6 * H, NOW, sink=sink)
    assert sink.refusals <= 14  # the window, then one half per halving down to the reading
    assert not result.complete and result.error is None
    ((lines, message),) = cache.rejected
    rejected = {Reading.from_obj(json.loads(line)).read_at for line in lines}
    assert rejected == {bad} and result.rejected == 1
    assert {r.read_at for r in sink.written} | rejected == set(served)  # nothing dropped
    assert result.rejected_message == message == "HTTP 400: invalid field"
    assert result.cached == 0 and cache.readings == []


@pytest.mark.integration
def test_bad_influx_credentials_keep_readings_in_the_cache(sim: SimHomeMini, clock: Clock) -> None:
    sink = FlakySink(0, InfluxConfigError("InfluxDB refused the token (401)", "token", 401))
    result, cache = _run(sim, clock, NOW - 6 * H, NOW, sink=sink)
    assert result.complete and result.cached == result.stored == len(cache.readings) > 0
    assert result.cache_reason is not None and "INFLUXDB_TOKEN" in result.cache_reason


@pytest.mark.integration
def test_readings_queue_behind_a_non_empty_cache(sim: SimHomeMini, clock: Clock) -> None:
    sink = FlakySink(100, InfluxUnavailable("never raised"))
    result, cache = _run(sim, clock, NOW - 6 * H, NOW, sink=sink, cache=MemoryCache(holding=5))
    assert sink.written == [] and result.cached == result.stored == len(cache.readings) > 0
    assert result.cache_reason is not None and "queue behind" in result.cache_reason


@pytest.mark.integration
def test_shares_the_ledger_and_leaves_the_cursor(
    sim: SimHomeMini, clock: Clock, tmp_path: Path
) -> None:
    store = StateStore(tmp_path / "cache")
    cursor = NOW - timedelta(minutes=3)

    def daemon(state: State) -> None:
        state.cursor = cursor
        state.calls.extend(NOW - timedelta(minutes=m) for m in range(1, 71))

    store.update(daemon)
    budget = Budget(store, 75)
    result, _ = _run(sim, clock, NOW - 12 * H, NOW, budget=budget)
    assert result.complete
    assert len(sim.calls) == 4  # the 5 free slots of the hour: token, discovery, 2 windows
    assert clock.waits == []
    state = store.load()
    assert state.cursor == cursor  # the daemon's cursor did not move
    assert len([c for c in state.calls if c > clock.now - H]) == 59 + 4
    raw = json.loads(store.file.read_raw() or b"{}")
    assert raw["cursor"] is not None
    remember_device(store, sim.device_id)
    assert store.load().device_id == sim.device_id
    remember_device(store, "something-else")
    assert store.load().device_id == sim.device_id


# --- the command's argument checks (nothing is fetched) --------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=timezone.utc)),
        ("2026-11-26T12:30", datetime(2026, 11, 26, 12, 30, tzinfo=timezone.utc)),
        ("2026-11-26T12:30:00Z", datetime(2026, 11, 26, 12, 30, tzinfo=timezone.utc)),
        ("2026-11-26T12:30:00+01:00", datetime(2026, 11, 26, 11, 30, tzinfo=timezone.utc)),
        (" 2026-06-01T00:00:00-04:00 ", datetime(2026, 6, 1, 4, 0, tzinfo=timezone.utc)),
    ],
)
def test_dates_are_iso_8601_in_utc(raw: str, expected: datetime) -> None:
    from octomon.cli.backfill import parse_date

    assert parse_date("--since", raw) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--since", "yesterday"],
            "error: --since 'yesterday' is not a date (YYYY-MM-DD, midnight UTC, or "
            "YYYY-MM-DDTHH:MM[:SS][+HH:MM], UTC unless an offset)",
        ),
        (["--since", "2026-13-01"], "error: --since '2026-13-01' is not a date (YYYY-MM-DD"),
        (
            ["--since", "2026-11-20", "--until", "2026-11-19T23:00"],
            "error: --until 2026-11-19T23:00:00Z is before --since 2026-11-20T00:00:00Z",
        ),
        (
            ["--since", "2026-11-20", "--until", "2026-11-20T00:00"],
            "error: --until 2026-11-20T00:00:00Z is not after --since 2026-11-20T00:00:00Z",
        ),
        (["--since", "2999-01-01"], "error: --since 2999-01-01T00:00:00Z is in the future (now is"),
    ],
)
def test_bad_dates_are_one_line_exit_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from octomon.cli import app

    set_clock(monkeypatch, ManualClock(NOW))  # the dates above, judged at any wall-clock time

    result = CliRunner().invoke(app, ["backfill", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output


def test_settings_are_all_validated_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from octomon.cli import app

    set_clock(monkeypatch, ManualClock(NOW))

    result = CliRunner().invoke(app, ["backfill", "--since", "2026-11-26"])
    assert result.exit_code == 2
    assert "OCTOPUS_API_KEY is required" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_a_ledger_that_cannot_be_written_stops_the_run(sim: SimHomeMini, clock: Clock) -> None:
    import errno

    class FullDisk(Budget):
        def reserve(self, now: datetime) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    result, cache = _run(sim, clock, NOW - 6 * H, NOW, budget=FullDisk(None, 75))
    assert result.error == "cannot record API calls in state.json (No space left on device)"
    assert result.not_done == [(NOW - 6 * H, NOW)] and cache.readings == []
    assert sim.calls == []  # no request goes out unrecorded
