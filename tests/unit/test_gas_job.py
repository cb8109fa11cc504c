"""The gas job (SPEC §11) run by hand with an injected clock: the real Kraken client against
the simulator over loopback HTTP, a writer that records (or refuses) what it is given."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.daemon.gas import GasJob, next_anchor
from octomon.daemon.schedule import Scheduler, installation_offset
from octomon.daemon.stream import Stream
from octomon.octopus.budget import Budget
from octomon.octopus.graphql import OctopusClient
from octomon.readings import AnyReading, GasReading
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, SimHomeMini, SimServer
from octomon.state import StateStore
from octomon.units import GAS
from tests.helpers.clock import ManualClock

T0 = datetime(2026, 12, 1, 9, 17, tzinfo=timezone.utc)
HALF = timedelta(minutes=30)


@dataclass
class Outcome:
    stored: list[AnyReading] = field(default_factory=list)
    unstored: list[AnyReading] = field(default_factory=list)


class Recorder:
    """Stores everything (or nothing while ``down``), like the writer's two outcomes."""

    def __init__(self) -> None:
        self.kept: dict[datetime, GasReading] = {}
        self.down = False

    def store(self, readings: Sequence[AnyReading], now: datetime) -> Outcome:
        if self.down:
            return Outcome(unstored=list(readings))
        for r in readings:
            assert isinstance(r, GasReading)
            self.kept[r.read_at] = r
        return Outcome(stored=list(readings))


class Rig:
    def __init__(self, server: SimServer, clock: ManualClock, cache_dir: Path, **client: object):
        self.clock = clock
        self.store = StateStore(cache_dir)
        self.budget = Budget(self.store, 100)
        self.client = OctopusClient(
            api_key=DEFAULT_API_KEY,
            account_number=DEFAULT_ACCOUNT,
            api_url=server.url,
            budget=self.budget,
            clock=clock,
            **client,  # type: ignore[arg-type]
        )
        self.writer = Recorder()
        self.alerts: list[Alert] = []
        self.tallied: list[GasReading] = []
        self.job = self.new_job()

    def new_job(self) -> GasJob:
        stream = Stream(
            GAS,
            fetch=self.client.gas_telemetry,
            writer=self.writer,
            tally=SimpleNamespace(stored=self.tallied.extend),
        )
        return GasJob(
            client=self.client,
            stream=stream,
            store=self.store,
            policy=AlertPolicy(),
            emit=self.alerts.extend,
            interval=1800,
        )


@pytest.fixture
def rig(server: SimServer, clock: ManualClock, tmp_path: Path) -> Rig:
    return Rig(server, clock, tmp_path)


def served_in(
    sim: SimHomeMini, start: datetime, end: datetime, at: datetime | None = None
) -> list[datetime]:
    """Every gas half-hour the sim had uploaded by ``at`` (default now), in [start, end)."""
    out = []
    t = start + (datetime.min.replace(tzinfo=timezone.utc) - start) % HALF  # the next half-hour
    while t < end:
        if sim.gas_reading_at(t) is not None and sim.gas_available_at(t) <= (at or sim.clock()):
            out.append(t)
        t += HALF
    return out


def assert_complete(kept: dict[datetime, GasReading], sim: SimHomeMini, end: datetime) -> None:
    """Every half-hour the sim had uploaded by ``end``, from at least 2 h before T0, once."""
    assert kept and min(kept) <= T0 - timedelta(hours=2)
    assert sorted(kept) == served_in(sim, min(kept), end, at=end)


def test_each_run_asks_one_half_hourly_window_and_stores_every_half_hour(
    rig: Rig, sim: SimHomeMini, clock: ManualClock
) -> None:
    anchors = []
    for _ in range(12):  # six hours of runs at hh:17 and hh:47
        anchors.append(rig.job.run(clock.now))
        clock.advance(minutes=30)
    assert anchors[0] == datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    assert all(b - a == HALF for a, b in itertools.pairwise(anchors))
    ops = [op for _, op in sim.calls]
    assert ops.count("account") == 1 and ops.count("gas") == 12  # one window per run
    assert ops.count("token") == 1 + 5  # the first, then a renewal every 55 min
    assert_complete(rig.writer.kept, sim, clock.now - HALF)
    expected = sorted(rig.writer.kept)
    assert sorted(r.read_at for r in rig.tallied) == expected  # each counted once, when stored
    state = rig.store.load()
    assert state.gas_newest == expected[-1] == rig.job.stream.cursor.newest
    assert state.gas_cursor == rig.job.stream.cursor.at
    assert state.gas_device_id == rig.client.gas_meter.device_id  # type: ignore[union-attr]


def test_a_restart_resumes_from_the_saved_gas_cursor(
    rig: Rig, server: SimServer, sim: SimHomeMini, clock: ManualClock, tmp_path: Path
) -> None:
    rig.job.run(clock.now)
    cursor = rig.job.stream.cursor.at
    clock.advance(hours=5)  # down for five hours
    again = Rig(server, clock, tmp_path)
    again.job.run(clock.now)  # one window of at most 6 h from the saved cursor - 2 h
    assert cursor is not None and min(again.writer.kept) == cursor - timedelta(hours=2)
    clock.advance(minutes=30)
    again.job.run(clock.now)  # caught up
    assert sorted(again.writer.kept) == served_in(sim, cursor - timedelta(hours=2), clock.now)


def test_a_window_that_could_not_be_stored_does_not_move_the_cursor(
    rig: Rig, clock: ManualClock, sim: SimHomeMini
) -> None:
    rig.job.run(clock.now)
    cursor = rig.job.stream.cursor.at
    rig.writer.down = True
    for _ in range(4):
        clock.advance(minutes=30)
        rig.job.run(clock.now)
    assert rig.job.stream.cursor.at == cursor
    rig.writer.down = False
    clock.advance(minutes=30)
    rig.job.run(clock.now)
    assert_complete(rig.writer.kept, sim, clock.now)


def test_the_clock_rule_sends_the_cursor_back_to_the_newest_stored_half_hour(
    rig: Rig, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.advance(hours=3)
    rig.job.run(clock.now)
    newest, settled = rig.job.stream.cursor.newest, rig.job.stream.cursor.at
    assert newest is not None and settled is not None
    clock.now = T0  # before even the newest stored half-hour: this clock is behind
    rig.job.run(clock.now)
    assert "gas: the clock is earlier than the gas cursor" in caplog.text
    assert rig.job.stream.cursor.at == settled  # kept: nothing to fetch until the clock passes it
    # (the clock that ran fast and was corrected: tests/unit/test_daemon_rules.py)


def test_no_gas_meter_no_gas_calls(
    server: SimServer, sim: SimHomeMini, clock: ManualClock, tmp_path: Path
) -> None:
    sim.no_gas = True
    rig = Rig(server, clock, tmp_path)
    for _ in range(5):
        rig.job.run(clock.now)
        clock.advance(minutes=30)
    assert [op for _, op in sim.calls] == ["token", "account"]
    assert rig.job.last_result == "no gas meter"


def test_stale_after_six_hours_once_and_fresh_again_once(
    rig: Rig, sim: SimHomeMini, clock: ManualClock
) -> None:
    sim.freeze_gas()
    for _ in range(16):  # eight hours of runs
        rig.job.run(clock.now)
        clock.advance(minutes=30)
    assert [(a.title, a.level.value) for a in rig.alerts] == [("Gas data stale", "warning")]
    sim.unfreeze_gas()
    for _ in range(6):  # the next half-hour is uploaded within 65 min, then it must hold
        rig.job.run(clock.now)
        clock.advance(minutes=30)
    assert [a.title for a in rig.alerts] == ["Gas data stale", "Gas data fresh again"]
    assert sorted(rig.writer.kept) == sorted(sim.gas_served)  # all it served was stored
    frozen = [t for t in rig.writer.kept if T0 <= t < T0 + timedelta(hours=8)]
    assert frozen == []  # the frozen span is lost (the sim's meter never uploads it)
    assert max(rig.writer.kept) > T0 + timedelta(hours=8)


def test_scheduled_at_the_offset_never_at_hh00_or_hh30(rig: Rig, clock: ManualClock) -> None:
    sched = Scheduler(rig.budget, offset=installation_offset(DEFAULT_ACCOUNT), headroom=5)
    sched.add(rig.job)
    runs = []
    end = clock.now + timedelta(hours=6)
    while clock.now < end:
        runs += [r.at for r in sched.run_due(clock.now) if r.outcome.value == "ran"]
        clock.advance(60)
    assert len(runs) == 11  # the first slot is the next half-hour + offset
    assert all(r.minute not in (0, 30) for r in runs)
    assert all(b - a == HALF for a, b in itertools.pairwise(runs))
    offset = installation_offset(DEFAULT_ACCOUNT)
    late = runs[0] - next_anchor(runs[0] - HALF, 1800) - offset  # this test ticks every minute
    assert timedelta(0) <= late < timedelta(minutes=2)


def test_today_is_shown_in_kwh_m3_and_pounds_with_the_last_half_hours_age(
    rig: Rig, clock: ManualClock
) -> None:
    from rich.console import Console

    from octomon.cli.panel import render
    from octomon.daemon.status import Status

    for _ in range(4):
        rig.job.run(clock.now)
        clock.advance(minutes=30)
    today = [r for r in rig.writer.kept.values() if r.read_at.date() == clock.now.date()]
    status = Status(started_at=T0, poll_interval=60, call_budget=75)
    rig.job.fill(status, clock.now)
    assert status.gas_today_kwh == pytest.approx(sum(r.consumption_delta or 0 for r in today))
    assert status.gas_today_m3 == pytest.approx(sum(r.volume_delta or 0 for r in today))
    assert status.gas_today_gbp == pytest.approx(sum(r.cost_delta_with_tax or 0 for r in today))
    newest: GasReading = rig.writer.kept[max(rig.writer.kept)]
    assert status.gas_last_reading_at == newest.read_at
    age = int((clock.now - newest.read_at).total_seconds() // 60)
    expected = (
        f"today {status.gas_today_kwh:.2f} kWh ({status.gas_today_m3:.3f} m³), "
        f"£{status.gas_today_gbp:.2f}; last half-hour {newest.read_at:%H:%M} UTC "
        f"(1 h {age - 60} min ago)"
    )
    assert status.gas_summary(clock.now) == expected
    console = Console(record=True, width=140)
    console.print(render(status, clock.now))
    panel = (
        f"{status.gas_today_kwh:.2f} kWh · £{status.gas_today_gbp:.2f} · newest "
        f"{newest.read_at:%H:%M} UTC (1 h {age - 60} min ago)"
    )
    assert f"│ gas today        {panel} " in console.export_text()
    # Saved with the state: a restart shows the same day.
    again = rig.new_job()
    again.load(rig.store.load())
    other = Status(started_at=T0, poll_interval=60, call_budget=75)
    again.fill(other, clock.now)
    assert other.gas_summary(clock.now) == expected
