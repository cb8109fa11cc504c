"""Settled consumption and reconciliation end to end: the simulator over real HTTP (GraphQL
telemetry stored by the real backfill path, REST consumption) into a real VictoriaMetrics."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.billing.settled import SettledStore, fill
from octomon.daemon.jobs import SettledJob
from octomon.history.backfill import plan, run_backfill
from octomon.octopus.budget import Budget
from octomon.octopus.consumption import Meter
from octomon.octopus.graphql import OctopusClient
from octomon.octopus.rest import RestClient
from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.state import StateStore
from octomon.store.cache import Cache
from octomon.store.influx import InfluxSink
from octomon.store.tally import Tally, TallyRecorder, half_hour_of
from octomon.uktime import day_bounds, half_hours
from tests.helpers.clock import ManualClock
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration
UTC = timezone.utc
IMPORT = Meter("electricity", "import", ids.MPAN, ids.ELECTRICITY_SERIAL)
GAS = Meter("gas", "import", ids.MPRN, ids.GAS_SERIAL)


def export(vm: VictoriaMetrics, metric: str, wait_for: int = 1) -> dict[int, float]:
    """{unix s: value} of one VictoriaMetrics series (any measurement_field name)."""
    deadline = time.monotonic() + 10
    while True:
        urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=5).read()
        query = urllib.parse.urlencode({"match[]": metric})
        with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as r:
            body = r.read().decode()
        out: dict[int, float] = {}
        for line in body.splitlines():
            row = json.loads(line)
            for value, ts in zip(row["values"], row["timestamps"]):
                out[ts // 1000] = float(value)
        if len(out) >= wait_for or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def __call__(self, alerts: Sequence[Alert]) -> None:
        self.sent.extend(alerts)


class World:
    def __init__(self, now: datetime, cache_dir: Path, vm: VictoriaMetrics | None) -> None:
        self.clock = ManualClock(now)
        self.sim = SimHomeMini(clock=self.clock)
        self.server = SimServer(self.sim).start()
        self.cache_dir = cache_dir
        self.store = StateStore(cache_dir)
        self.budget = Budget(self.store, 100)
        self.sink = InfluxSink(vm.url, "t", "home", "octopus_energy") if vm else None
        self.alerts = Alerts()

    def rest(self) -> RestClient:
        return RestClient(
            api_key=self.sim.api_key,
            base_url=self.server.rest_url,
            budget=self.budget,
            clock=self.clock,
        )

    def job(self, *meters: Meter) -> SettledJob:
        gas_units = self.sim.gas_units  # what the GraphQL meter's consumptionUnits says
        return SettledJob(
            rest=self.rest(),
            meters=lambda: list(meters or [IMPORT]),
            store=self.store,
            cache_dir=self.cache_dir,
            sink=self.sink,
            policy=AlertPolicy(),
            emit=self.alerts,
            units=lambda m: gas_units if m.fuel == "gas" else "kWh",
        )

    def backfill(self, since: datetime, until: datetime) -> None:
        """The Home Mini's readings, stored the real way (InfluxDB + the tally)."""
        client = OctopusClient(
            api_key=self.sim.api_key,
            account_number=self.sim.account_number,
            api_url=self.server.url,
            budget=self.budget,
            clock=self.clock,
            gas_enabled=False,
        )
        cache = Cache(self.cache_dir, 100, self.clock)
        result = run_backfill(
            plan(since, until, self.budget, self.clock()),
            client,
            self.sink,
            cache,
            clock=self.clock,
            tally=TallyRecorder(Tally(self.cache_dir)),
        )
        client.close()
        assert result.complete, result.error

    def close(self) -> None:
        self.server.stop()
        if self.sink is not None:
            self.sink.close()


@pytest.fixture
def world(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[World]:
    w = World(datetime(2026, 12, 1, 9, 10, tzinfo=UTC), tmp_path / "cache", victoria)
    yield w
    w.close()


def test_settled_values_and_reconciliation_per_half_hour_and_the_bad_day_alert(
    world: World, victoria: VictoriaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    sim = world.sim
    assert sim.settled.bad_day == date(2026, 11, 29)
    lo, hi = day_bounds(date(2026, 11, 29))[0], day_bounds(date(2026, 11, 30))[1]
    world.backfill(lo, hi)
    caplog.set_level(logging.INFO, "octomon.daemon.jobs")
    anchor = world.job().run(world.clock())
    assert anchor == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # yesterday is in: tomorrow 09:00

    settled = export(victoria, "energy_settled_consumption", wait_for=7 * 48)
    days = [h for d in (date(2026, 11, 29), date(2026, 11, 30)) for h in half_hours(d)]
    for hh in days:  # exact, as the meter measured (the bad day's missed readings included)
        assert Decimal(str(settled[int(hh.timestamp())])) == sim.settled.kwh(hh)
    assert len(settled) == 7 * 48  # the last 7 UK days; extra rows outside were dropped

    stored: dict[datetime, Decimal] = {}
    count: dict[datetime, int] = {}
    for ts, item in sim.served.items():
        if lo <= ts < hi:
            reading = Reading.from_api(item, sim.device_id)
            assert reading is not None and reading.consumption_delta is not None
            hh = half_hour_of(ts)
            stored[hh] = stored.get(hh, Decimal(0)) + Decimal(item["consumptionDelta"] or 0) / 1000
            count[hh] = count.get(hh, 0) + 1
    diff = export(victoria, "energy_reconciliation_difference", wait_for=96)
    readings = export(victoria, "energy_reconciliation_readings", wait_for=96)
    coverage = export(victoria, "energy_reconciliation_coverage", wait_for=96)
    assert sorted(diff) == [int(h.timestamp()) for h in days]  # from the tally's start only
    for hh in days:
        t = int(hh.timestamp())
        expected = sim.settled.kwh(hh) - stored.get(hh, Decimal(0))
        assert abs(Decimal(str(diff[t])) - expected) < Decimal("1e-9")
        assert readings[t] == count.get(hh, 0)
        assert coverage[t] == pytest.approx(count.get(hh, 0) / 180)

    short = [a for a in world.alerts.sent if a.key == "reconciliation"]
    assert len(short) == 1 and short[0].level.value == "warning"
    assert (
        "of 29 Nov: settled" in short[0].text and "power-cycle it if this repeats" in short[0].text
    )
    assert any("30 Nov: the Home Mini caught" in r.getMessage() for r in caplog.records)

    # a restart (a new job, the same state.json) does not say it again
    world.alerts.sent.clear()
    world.clock.advance(hours=1)
    world.job().judge(world.clock())
    assert world.alerts.sent == []


def test_the_clock_change_days_have_46_and_50_half_hours(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    for now, day, n in (
        (datetime(2026, 3, 31, 9, 10, tzinfo=UTC), date(2026, 3, 29), 46),
        (datetime(2026, 10, 27, 9, 10, tzinfo=UTC), date(2026, 10, 25), 50),
    ):
        w = World(now, tmp_path / f"cache-{n}", victoria)
        try:
            w.job().run(w.clock())
            got = export(victoria, "energy_settled_consumption", wait_for=1)
            lo, hi = day_bounds(day)
            inside = {t: v for t, v in got.items() if lo.timestamp() <= t < hi.timestamp()}
            assert len(inside) == n == len(half_hours(day))
            for hh in half_hours(day):
                assert Decimal(str(inside[int(hh.timestamp())])) == w.sim.settled.kwh(hh)
        finally:
            w.close()


def test_yesterday_late_is_retried_every_6_hours_and_filled(
    world: World, victoria: VictoriaMetrics
) -> None:
    world.sim.settled.delay = timedelta(hours=16)  # 30 Nov appears at 16:00 UK on 1 Dec
    job = world.job()
    assert job.run(world.clock()) == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert not job.settled.load().day_settled(date(2026, 11, 30))
    world.clock.now = datetime(2026, 12, 1, 15, 10, tzinfo=UTC)
    assert job.run(world.clock()) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    world.clock.now = datetime(2026, 12, 1, 21, 10, tzinfo=UTC)
    assert job.run(world.clock()) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert job.settled.load().day_settled(date(2026, 11, 30))
    got = export(victoria, "energy_settled_consumption", wait_for=7 * 48)
    assert len(got) == 7 * 48
    rest = [p for _, p in world.sim.rest.calls if p.endswith("/consumption/")]
    assert len(rest) == 3  # one request a run, nothing more
    assert world.store.load().calls == [world.clock()]  # the last hour's one request, in the ledger


def test_the_daemon_alerts_for_data_reconcile_fetched_without_fetching_again(
    world: World, victoria: VictoriaMetrics
) -> None:
    lo, hi = day_bounds(date(2026, 11, 29))[0], day_bounds(date(2026, 11, 30))[1]
    world.backfill(lo, hi)
    settled = SettledStore(world.cache_dir)
    rest = world.rest()
    fill(lambda: rest, [IMPORT], settled, date(2026, 11, 24), date(2026, 11, 30), world.clock())
    asked = len(world.sim.rest.calls)
    world.clock.advance(minutes=5)
    job = world.job()
    job.run(world.clock())  # at start: yesterday is in settled.json
    assert len(world.sim.rest.calls) == asked  # no request: the data was there
    short = [a for a in world.alerts.sent if a.key == "reconciliation"]
    assert [a.fields["day"] for a in short] == ["2026-11-29"]
    assert len(export(victoria, "energy_settled_consumption", wait_for=7 * 48)) == 7 * 48


def test_gas_settled_in_cubic_metres_is_stored_as_kwh_and_volume(
    world: World, victoria: VictoriaMetrics
) -> None:
    world.job(IMPORT, GAS).run(world.clock())
    volume = export(victoria, "energy_settled_volume", wait_for=7 * 48)
    kwh = export(victoria, 'energy_settled_consumption{fuel="gas"}', wait_for=7 * 48)
    assert len(volume) == len(kwh) == 7 * 48
    for hh in half_hours(date(2026, 11, 30)):
        t = int(hh.timestamp())
        m3 = world.sim.settled.gas_m3(hh)
        assert Decimal(str(volume[t])) == m3
        want = m3 * Decimal("1.02264") * Decimal("39.5") / Decimal("3.6")
        assert abs(Decimal(str(kwh[t])) - want) < Decimal("1e-9")


def test_gas_settled_in_kwh_smets1_is_stored_as_kwh_and_volume(
    world: World, victoria: VictoriaMetrics
) -> None:
    world.sim.gas_units = "kWh"  # a SMETS1 meter: the endpoint answers energy
    world.job(IMPORT, GAS).run(world.clock())
    volume = export(victoria, "energy_settled_volume", wait_for=7 * 48)
    kwh = export(victoria, 'energy_settled_consumption{fuel="gas"}', wait_for=7 * 48)
    assert len(volume) == len(kwh) == 7 * 48
    for hh in half_hours(date(2026, 11, 30)):
        t = int(hh.timestamp())
        energy = world.sim.settled.gas_kwh(hh)
        assert Decimal(str(kwh[t])) == energy  # as the meter said: not converted again
        want = energy * Decimal("3.6") / (Decimal("1.02264") * Decimal("39.5"))
        assert abs(Decimal(str(volume[t])) - want) < Decimal("1e-9")
