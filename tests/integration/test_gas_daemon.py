"""Gas in the running monitor (SPEC §11), in-process on one injected clock: the real Kraken
client against the simulator over HTTP, the real cache, a real VictoriaMetrics."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest

from octomon.alerts.policy import Alert
from octomon.config import Settings
from octomon.daemon.monitor import Monitor
from octomon.readings import GAS_FIELDS
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from octomon.store.tally import GAS, Tally
from octomon.wiring import build_monitor
from tests.helpers.cli import invoke
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_gas, cached_readings, compare_db, expected, expected_gas
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 6, 7, 13, tzinfo=timezone.utc)


class Quiet:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.sent.extend(alerts)

    def close(self, timeout: float = 3.0) -> None:
        pass


def monitor_for(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    vm: VictoriaMetrics | None,
    poll: int = 300,
    gas: str = "auto",
) -> Monitor:
    influx = {}
    if vm is not None:
        influx = dict(
            influxdb_url=vm.url, influxdb_token="t", influxdb_org="o", influxdb_bucket="b"
        )
    settings = Settings(
        octopus_api_key=sim.api_key,
        octopus_account_number=sim.account_number,
        octopus_api_url=server.url,
        octopus_rest_url=server.rest_url,
        cache_dir=tmp_path / "cache",
        poll_interval_seconds=poll,
        health_check_seconds=30,
        octopus_gas=gas,
        **influx,
    )
    monitor = build_monitor(settings, stop=threading.Event(), clock=clock, alerter=Quiet())
    monitor.start(clock())
    return monitor


def drive(monitor: Monitor, clock: ManualClock, hours: float, poll: int = 300) -> None:
    """Poll cycles every ``poll`` s and the due jobs in between, as the loop does; in cache
    mode a health check every cycle and the drain until it is done."""
    end = clock() + timedelta(hours=hours)
    next_poll = clock()
    while clock() < end:
        job = monitor.scheduler.next_due() if monitor.scheduler else None
        clock.now = min(next_poll, job) if job else next_poll
        if clock() >= next_poll:
            monitor.cycle(clock())
            if monitor.writer.cache_mode:
                monitor.health_check(clock())
                while monitor.writer.draining and not monitor.drain(clock()).done:
                    pass
            next_poll = clock() + timedelta(seconds=poll)
        while monitor.jobs_due(clock()):
            monitor.run_jobs(clock())


def test_a_live_run_stores_exact_gas_consumption_and_tallies_it(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    victoria: VictoriaMetrics,
) -> None:
    monitor = monitor_for(tmp_path, sim, server, clock, victoria)
    try:
        drive(monitor, clock, 4)
    finally:
        monitor.close(clock(), announce=False)
    want = expected_gas(sim)
    assert len(want) >= 8  # four hours of half-hours, and the two before the start
    compare_db(victoria, want, GAS_FIELDS, "gas_consumption")
    tags = victoria.series("consumption_delta", measurement="gas_consumption")
    assert {t.get("device_id") for t in tags} == {sim.gas_device_id}
    assert {t.get("source") for t in tags} == {"octopus_home_mini"}
    # The tally (SPEC §10) holds each gas half-hour's energy, once.
    tally = Tally(tmp_path / "cache").load()
    for ts, reading in want.items():
        assert tally.kwh(ts, GAS) == pytest.approx(reading.consumption_delta, abs=1e-6)
    assert cached_gas(tmp_path / "cache") == {}


def test_influxdb_down_during_gas_polls_caches_them_and_the_drain_delivers_all(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    victoria: VictoriaMetrics,
) -> None:
    monitor = monitor_for(tmp_path, sim, server, clock, victoria)
    try:
        drive(monitor, clock, 1)
        before = set(expected_gas(sim))
        victoria.stop()
        drive(monitor, clock, 3)  # six gas polls while InfluxDB is away
        during = set(expected_gas(sim)) - before
        assert len(during) >= 5
        assert during <= set(cached_gas(tmp_path / "cache"))  # gas lines of the day files
        assert monitor.writer.cache_mode
        victoria.start()
        drive(monitor, clock, 0.5)  # health check, then the drain
        assert not monitor.writer.cache_mode
    finally:
        monitor.close(clock(), announce=False)
    compare_db(victoria, expected_gas(sim), GAS_FIELDS, "gas_consumption")
    assert cached_gas(tmp_path / "cache") == {}


def test_sync_cache_delivers_the_gas_lines_a_local_run_kept(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    victoria: VictoriaMetrics,
) -> None:
    monitor = monitor_for(tmp_path, sim, server, clock, None)  # local mode: all in the cache
    try:
        drive(monitor, clock, 2)
    finally:
        monitor.close(clock(), announce=False)
    want = expected_gas(sim)
    cached = cached_gas(tmp_path / "cache")
    assert set(cached) == set(want) and all(cached[t] == [want[t]] for t in want)
    result = invoke(
        "sync-cache",
        env={
            "CACHE_DIR": str(tmp_path / "cache"),
            "INFLUXDB_URL": victoria.url,
            "INFLUXDB_TOKEN": "t",
            "INFLUXDB_ORG": "o",
            "INFLUXDB_BUCKET": "b",
        },
    )
    assert result.exit_code == 0, result.output
    compare_db(victoria, want, GAS_FIELDS, "gas_consumption")
    assert cached_gas(tmp_path / "cache") == {}


def test_accelerated_hours_at_the_defaults_keep_gas_to_two_calls_an_hour_off_the_hour(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    victoria: VictoriaMetrics,
) -> None:
    monitor = monitor_for(tmp_path, sim, server, clock, victoria, poll=60)
    hours = 6  # a whole day (24 h) was run by hand too: same figures, 40 s
    try:
        drive(monitor, clock, hours, poll=60)
    finally:
        monitor.close(clock(), announce=False)
    calls = sorted(sim.calls)
    gas = [t for t, op in calls if op == "gas"]
    assert gas[0] == T0  # at start, then every half-hour at the offset
    assert len(gas) == 2 * hours and all(
        b - a == timedelta(minutes=30) for a, b in pairwise(gas[1:])
    )
    assert all(t.minute not in (0, 30) for t in gas)
    graphql = [(t, op) for t, op in calls if op != "rest"]  # tariffs and settled: REST jobs
    times = [t for t, _ in graphql]
    worst: Counter[str] = Counter()
    worst_total = 0
    for i, t in enumerate(times):  # every rolling hour, ending at each request
        if t < T0 + timedelta(hours=1):
            continue  # the first hour also holds the start's token and account query
        hour = Counter(
            op for _, op in graphql[bisect.bisect_right(times, t - timedelta(hours=1)) : i + 1]
        )
        worst = Counter({k: max(worst[k], hour[k]) for k in {*worst, *hour}})
        total = hour["telemetry"] + hour["gas"] + hour["token"]
        assert total == sum(hour.values()) <= 63, (t, hour)
        worst_total = max(worst_total, total)
    # 60 cycles an hour, each making one request: a poll, or the token's renewal (every
    # 55 min: tokens live 60 and are renewed 5 early) in its place; and 2 gas polls. So no
    # rolling hour holds more than 62, although some hold two renewals.
    assert worst["token"] == 2 and worst["telemetry"] == 59 and worst["gas"] == 2
    assert worst_total == 62
    # … and the minute a renewal took is in the next poll's window: nothing is missing.
    served = expected(sim)
    first, t = min(served), min(served)
    while sim.available_at(t) < clock() - timedelta(minutes=1):  # every step there was
        assert (t in served) == (sim.reading_at(t) is not None), t
        t += timedelta(seconds=10)
    assert t - first > timedelta(hours=hours)
    compare_db(victoria, served)
    assert sim.rate_limited_answers == 0


def test_gas_off_the_daemon_asks_nothing_about_gas(
    tmp_path: Path, sim: SimHomeMini, server: SimServer, clock: ManualClock
) -> None:
    sim.no_gas_schema = True  # a query naming gas fields would be refused, then retried
    monitor = monitor_for(tmp_path, sim, server, clock, None, gas="off")
    try:
        drive(monitor, clock, 2)
        assert monitor.scheduler is not None and "gas" not in monitor.scheduler.jobs
    finally:
        monitor.close(clock(), announce=False)
    ops = Counter(op for _, op in sim.calls)
    # 24 cycles in 2 hours, each one request: a poll, or a token renewal in its place
    assert ops["gas"] == 0 and ops["account"] == 1 and ops["telemetry"] >= 22
    assert sim.gas_served == {} and cached_gas(tmp_path / "cache") == {}


def test_gas_fields_refused_the_daemon_runs_electricity_with_one_note(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim.no_gas_schema = True
    caplog.set_level("INFO")
    monitor = monitor_for(tmp_path, sim, server, clock, None)
    try:
        drive(monitor, clock, 3)  # six gas slots
    finally:
        monitor.close(clock(), announce=False)
    ops = Counter(op for _, op in sim.calls)
    assert ops["account"] == 2 and ops["gas"] == 0  # asked once more without the gas fields
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no gas")]
    assert notes == ["no gas: the Octopus API does not know the gas fields of the account query"]
    assert len(cached_readings(tmp_path / "cache")) >= 3 * 360 * 0.9  # electricity unaffected


@pytest.mark.parametrize("switch", ["no_gas", "no_gas_schema"])
def test_no_gas_is_kept_so_a_restart_asks_nothing_and_a_week_on_asks_once(
    tmp_path: Path, sim: SimHomeMini, server: SimServer, clock: ManualClock, switch: str
) -> None:
    setattr(sim, switch, True)  # an account without gas, or an API without the gas fields

    def run_an_hour() -> int:
        monitor = monitor_for(tmp_path, sim, server, clock, None)
        try:
            drive(monitor, clock, 1)
        finally:
            monitor.close(clock(), announce=False)
        return Counter(op for _, op in sim.calls)["account"]

    first = run_an_hour()
    assert first == (2 if switch == "no_gas_schema" else 1)
    store = StateStore(tmp_path / "cache")
    saved = store.load()
    assert saved.gas_absent == ("unsupported" if switch == "no_gas_schema" else "none")
    assert run_an_hour() == first  # the restart: device and "no gas" both known
    week_ago = clock() - timedelta(days=7, minutes=1)
    store.update(lambda s: setattr(s, "gas_absent_at", week_ago))
    assert run_an_hour() == first + 1  # a meter may have been fitted: asked once more
    checked = store.load().gas_absent_at
    assert checked is not None and checked > week_ago
    assert Counter(op for _, op in sim.calls)["gas"] == 0
