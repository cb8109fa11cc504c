"""The monitor under a wrong clock, a damaged state.json and a cache another process fills.

In-process against octomon.sim over real HTTP (and a real VictoriaMetrics where the issue
asks for it). The simulator keeps real (simulated) time on its own clock; the monitor's
clock is the same plus a skew the test sets, so "the clock ran 2 days fast and was
corrected" is a number the test changes between cycles.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon import fsutil
from octomon.config import Settings
from octomon.daemon.monitor import Monitor
from octomon.daemon.outcome import CLOCK_BEHIND, OK, CycleResult
from octomon.daemon.status import Status
from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from octomon.wiring import build_monitor
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_readings, compare_db
from tests.helpers.services import VictoriaMetrics
from tests.helpers.sim_faults import FaultySim
from tests.integration.test_run_sim import Recorder

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
STEP = timedelta(seconds=10)
FIRST = T0 - timedelta(hours=1)  # the start (at T0) looks one hour back


@dataclass
class Skewed:
    """The monitor's clock: the simulator's (real) time plus ``skew``."""

    real: ManualClock
    skew: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return self.real() + self.skew


@dataclass
class Rig:
    sim: SimHomeMini
    real: ManualClock
    clock: Skewed
    settings: Settings
    alerts: Recorder = field(default_factory=Recorder)
    monitor: Monitor | None = None
    fetch_times: list[datetime] = field(default_factory=list)  # monitor time of each fetch

    def start(self) -> Monitor:
        self.monitor = build_monitor(
            self.settings, stop=threading.Event(), clock=self.clock, alerter=self.alerts
        )
        self.monitor.start(self.clock())
        return self.monitor

    def stop(self) -> None:
        assert self.monitor is not None
        self.monitor.close(self.clock(), announce=False)
        self.monitor = None

    def cycle(self, advance: float = 60) -> CycleResult:
        assert self.monitor is not None
        self.real.advance(advance)
        before = self.telemetry_calls()
        result = self.monitor.cycle(self.clock())
        if self.telemetry_calls() > before and result.outcome == OK:
            self.fetch_times.append(self.clock())
        self.check_health()
        return result

    def cycles(self, n: int, every: float = 60) -> list[CycleResult]:
        return [self.cycle(every) for _ in range(n)]

    def telemetry_calls(self) -> int:
        return sum(1 for _, op in self.sim.calls if op == "telemetry")

    def check_health(self) -> None:
        """`status --check` green only if a fetch was made within its window (SPEC §6)."""
        status = Status.read(Path(self.settings.cache_dir))
        if status is None:  # none written (a full disk): `status --check` says unhealthy
            return
        now = self.clock()
        window = timedelta(seconds=3 * status.poll_interval + 60)
        fetched = any(now - window <= t <= now for t in self.fetch_times)
        assert not (status.healthy(now) and not fetched), f"green at {now} with nothing fetched"

    def catch_up(self, limit: int = 30) -> None:
        for _ in range(limit):
            if self.cycle(60).caught_up and self.monitor and not self.monitor.writer.cache_mode:
                return
        raise AssertionError("did not catch up")


def existing(sim: SimHomeMini, start: datetime, end: datetime) -> dict[datetime, Reading]:
    """Every reading of [start, end) the Home Mini had uploaded by ``end`` -- served or not."""
    out: dict[datetime, Reading] = {}
    ts = start
    while ts < end:
        item = sim.reading_at(ts) if sim.available_at(ts) <= end else None
        reading = Reading.from_api(item, sim.device_id) if item is not None else None
        if reading is not None:
            out[ts] = reading
        ts += STEP
    return out


def make_rig(tmp_path: Path, sim: SimHomeMini, server: SimServer, **settings: object) -> Rig:
    real = ManualClock(T0)
    sim.clock = real
    base = Settings(
        octopus_api_key=sim.api_key,
        octopus_account_number=sim.account_number,
        octopus_api_url=server.url,
        cache_dir=tmp_path / "cache",
        poll_interval_seconds=60,
        **settings,  # type: ignore[arg-type]
    )
    return Rig(sim, real, Skewed(real), base)


def influx(vm: VictoriaMetrics) -> dict[str, object]:
    return {
        "influxdb_url": vm.url,
        "influxdb_token": "test-token-for-victoria",
        "influxdb_org": "home",
        "influxdb_bucket": "octopus_energy",
    }


@pytest.fixture
def served() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = FaultySim(rate_limit_per_hour=200)
    with SimServer(sim) as server:
        yield sim, server


def started(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], victoria: VictoriaMetrics
) -> tuple[SimHomeMini, Rig]:
    """A rig writing to VictoriaMetrics, started."""
    sim, server = served
    rig = make_rig(tmp_path, sim, server, **influx(victoria))
    rig.start()
    return sim, rig


def warnings(rig: Rig) -> list[str]:
    return [a.title for a in rig.alerts.sent if a.level.value == "warning" and not a.repeat]


def test_a_clock_two_days_fast_then_corrected_loses_nothing(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], victoria: VictoriaMetrics
) -> None:
    sim, rig = started(tmp_path, served, victoria)
    rig.cycles(10)
    rig.clock.skew = timedelta(days=2)  # NTP not there yet: the clock runs 2 days ahead
    fast = rig.cycles(12)
    assert all(r.outcome == OK for r in fast)
    newest = rig.monitor.stream.cursor.newest if rig.monitor else None
    assert newest is not None and rig.monitor is not None
    assert rig.monitor.cursor is not None and rig.monitor.cursor > rig.real() + timedelta(days=1)
    rig.clock.skew = timedelta(0)  # corrected
    first = rig.cycle()
    assert first.outcome == OK and first.window is not None
    assert first.window[0] <= newest  # fetched again from the newest stored reading
    rig.catch_up()
    rig.cycles(12)
    end = rig.real()
    rig.stop()

    clock_alerts = rig.alerts.keyed("clock")
    assert len(clock_alerts) == 1
    # While the clock ran fast the newest reading only looked 2 days old (the API's token
    # told the monitor its clock was ahead): no "stale" warning, just the correction's.
    assert warnings(rig) == ["System clock moved back"]
    again = newest.strftime("%H:%M UTC")
    assert (
        clock_alerts[0].text
        == f"the system clock moved back by 2 days; fetching again from {again}"
    )
    assert clock_alerts[0].level.value == "warning"
    # The whole real span, fetched or not, is in the database: 0 readings missing.
    compare_db(victoria, existing(sim, FIRST, end))
    # The ledger holds nothing from the fast days.
    state = StateStore(tmp_path / "cache").load()
    assert state.calls and max(state.calls) <= end
    assert state.backoff_until is None


def test_a_clock_a_year_behind_at_start_then_corrected_loses_nothing(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], victoria: VictoriaMetrics
) -> None:
    sim, rig = started(tmp_path, served, victoria)
    rig.cycles(5)
    rig.stop()
    rig.real.advance(minutes=30)  # powered off for half an hour
    rig.clock.skew = -timedelta(days=365)  # a Pi without a real-time clock boots in the past
    rig.start()
    behind = rig.cycles(5)
    assert [r.outcome for r in behind] == [CLOCK_BEHIND] * 5  # nothing to fetch, not "ok"
    assert len(rig.alerts.keyed("clock")) == 1
    assert "moved back by 1 year" not in rig.alerts.keyed("clock")[0].text  # said in days
    rig.clock.skew = timedelta(0)  # NTP corrects it
    rig.catch_up()
    after = rig.cycles(10)
    assert all(r.outcome == OK for r in after)
    end = rig.real()
    calls_now = rig.monitor.budget.calls_last_hour(rig.clock()) if rig.monitor else 0
    rig.stop()
    compare_db(victoria, existing(sim, FIRST, end))
    state = StateStore(tmp_path / "cache").load()
    year_ago = T0 - timedelta(days=300)
    assert all(year_ago < c <= end for c in state.calls)  # the ledger is not poisoned
    assert 0 < calls_now < 40 and state.backoff_until is None


def test_a_first_start_a_year_behind_then_corrected_loses_nothing(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], victoria: VictoriaMetrics
) -> None:
    """No state at all (a new Pi that booted in the past): the API refuses a year-old
    window (KT-GB-4051), nothing crashes, and once corrected the real hour is fetched."""
    sim, server = served
    rig = make_rig(tmp_path, sim, server, **influx(victoria))
    rig.clock.skew = -timedelta(days=365)
    rig.start()
    behind = rig.cycles(4)
    assert all(r.outcome != OK for r in behind)
    rig.clock.skew = timedelta(0)
    first = rig.cycle()  # the year-old cursor: KT-GB-4051 jumps to 24 h back, as SPEC says
    assert first.outcome == OK and first.window is not None
    assert first.window[0] == rig.real() - timedelta(hours=24)
    rig.catch_up()
    after = rig.cycles(10)
    assert all(r.outcome == OK for r in after)
    end = rig.real()
    calls = rig.monitor.budget.calls_last_hour(rig.clock()) if rig.monitor else 0
    rig.stop()
    compare_db(victoria, existing(sim, first.window[0], end))  # more than the first hour
    state = StateStore(tmp_path / "cache").load()
    assert 0 < calls < 40 and state.backoff_until is None
    assert all(c <= end for c in state.calls)


def test_garbage_state_after_a_3_hour_gap_resumes_from_the_cache(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer]
) -> None:
    sim, server = served
    rig = make_rig(tmp_path, sim, server)  # local mode
    monitor = rig.start()
    rig.cycles(10)
    refresh = monitor.client.refresh_token
    assert refresh
    rig.stop()
    rig.real.advance(hours=3)
    # state.json damaged just after its journal was folded into it (octomon.journaled):
    # nothing good left to read.
    state_file = tmp_path / "cache" / "state.json"
    text = (StateStore(tmp_path / "cache").file.read_raw() or b"").decode()
    cut = text.index(refresh) + len(refresh) // 2
    state_file.write_text(text[:cut] + "\x00\x00 garbage after a torn write")
    state_file.with_suffix(".journal").write_bytes(b"")

    rig.start()
    rig.catch_up()
    rig.cycles(12)
    end = rig.real()
    rig.stop()
    damaged = rig.alerts.keyed("state_damaged")
    assert len(damaged) == 1 and damaged[0].level.value == "warning"
    assert "octomon backfill --until" in damaged[0].text
    assert warnings(rig).count("state.json was damaged") == 1
    cached = cached_readings(tmp_path / "cache")
    want = existing(sim, FIRST, end)
    missing = sorted(set(want) - set(cached))
    assert not missing, f"{len(missing)} readings of the gap not cached, e.g. {missing[:3]}"
    copies = list((tmp_path / "cache").glob("state.json.corrupt-*"))
    assert len(copies) == 1
    copy = copies[0].read_bytes()
    for secret in [refresh, sim.api_key, *sim.issued_secrets()]:
        assert secret[: len(secret) // 2].encode() not in copy


def test_direct_mode_notices_readings_another_process_cached_and_drains_them(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], victoria: VictoriaMetrics
) -> None:
    sim, server = served
    rig = make_rig(tmp_path, sim, server, **influx(victoria))
    monitor = rig.start()
    rig.cycles(3)
    assert monitor.writer.mode == "influxdb" and monitor.writer.backlog == 0
    # Another process (as `backfill` does while InfluxDB was briefly away) caches two hours
    # from before this run, through the cache's own lock.
    older = {t: r for t, r in existing(sim, T0 - timedelta(hours=3), T0).items() if t < FIRST}
    lines = "\n".join(r.to_json() for r in older.values())
    script = (
        "import sys; from pathlib import Path\n"
        "from octomon.readings import Reading\n"
        "from octomon.store.cache import Cache\nfrom octomon.store.lines import parse_line\n"
        "rs = [parse_line(l.encode()) for l in sys.stdin.read().splitlines()]\n"
        "Cache(Path(sys.argv[1])).append(rs)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        input=lines,
        text=True,
        check=True,
    )
    result = rig.cycle()
    assert result.mode == "cache" and result.backlog >= len(older) > 0
    assert monitor.cache_appeared
    status = Status.read(tmp_path / "cache")
    assert status is not None and status.cache_backlog >= len(older)
    step = monitor.health_check(rig.clock())
    while monitor.writer.draining:
        step = monitor.drain(rig.clock())
    assert step.done and monitor.writer.mode == "influxdb" and monitor.writer.backlog == 0
    rig.cycles(3)
    end = rig.real()
    rig.stop()
    assert not list((tmp_path / "cache").glob("cache_*.jsonl"))
    compare_db(victoria, existing(sim, T0 - timedelta(hours=3), end))


def test_state_json_is_written_at_most_once_per_cycle(
    tmp_path: Path, served: tuple[SimHomeMini, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    sim, server = served
    rig = make_rig(tmp_path, sim, server)
    renames: list[str] = []  # every write of the state appends one line to its journal
    real_append = fsutil.append_line

    def counting(path: Path, data: bytes, **kw: int) -> os.stat_result:
        if path.name == "state.journal":
            renames.append(str(path))
        return real_append(path, data, **kw)

    monkeypatch.setattr(fsutil, "append_line", counting)
    rig.start()
    at_start = len(renames)
    results = rig.cycles(100)
    assert all(r.outcome == OK for r in results)
    during = len(renames) - at_start
    rig.stop()
    assert at_start == 1  # the ledger's hold, written ahead of the first request
    assert during <= 100, during
    assert len(renames) <= 102  # and one at the clean stop (the hold released)
    state = StateStore(tmp_path / "cache").load()
    assert state.hold_calls == 0 and state.cursor is not None
