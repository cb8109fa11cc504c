"""A mid-day start shows today's electricity and gas from the tally (SPEC §4.8, §10): what an
earlier run or a backfill stored this morning, not only what this process fetched; counted
as `costs` counts it (each half-hour's kWh to 0.01, half to even)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from octomon.cli.panel import render
from octomon.daemon.status import Status
from octomon.sim import SimHomeMini, SimServer
from octomon.store.tally import ELECTRICITY, GAS, Tally
from tests.helpers.cli import invoke, set_clock
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import sim_settings, started_monitor

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)  # 15:00 UK (GMT), injected
MORNING = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)  # 06:00-09:00: six half-hours


def _morning(cache_dir: Path) -> None:
    """What an earlier run stored this morning: per half-hour, 125 readings of 1 Wh
    (0.125 kWh, billed 0.12) and one gas half-hour of 1.005 kWh (billed 1.00)."""
    entries = []
    for i in range(6):
        start = int((MORNING + timedelta(minutes=30 * i)).timestamp())
        entries += [(ELECTRICITY, start + 10 * slot, 1000) for slot in range(125)]
        entries.append((GAS, start, 1_005_000))
    entries.append((ELECTRICITY, int((MORNING - timedelta(days=1)).timestamp()), 10**6))
    assert Tally(cache_dir).record(entries) == 6 * 126 + 1


def _panel(status: Status, now: datetime) -> str:
    console = Console(record=True, width=100)
    console.print(render(status, now))
    return console.export_text()


@pytest.mark.integration
def test_a_mid_day_start_shows_the_mornings_electricity_and_gas(
    tmp_path: Path,
    sim: SimHomeMini,
    server: SimServer,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from octomon.billing.costs import GAS as GAS_SERIES
    from octomon.billing.costs import IMPORT, day_cost
    from octomon.billing.prices import TariffCache, pricing
    from octomon.billing.settled import SettledData
    from octomon.uktime import uk_day

    cache_dir = tmp_path / "cache"  # the CACHE_DIR the commands see (tests/conftest.py)
    cache_dir.mkdir(mode=0o700)
    _morning(cache_dir)
    settings = sim_settings(sim, server, cache_dir, poll_interval_seconds=300)
    monitor = started_monitor(settings, clock)
    closed = False
    try:
        status = monitor.status
        assert status is not None
        # Nothing fetched yet: the morning, from the tally, billed as `costs` bills it
        # (0.75 kWh and 6.03 kWh as raw sums); yesterday's reading is not today's.
        assert status.electricity_today_kwh == pytest.approx(0.72)
        assert status.gas_today_kwh == pytest.approx(6.00)
        assert status.electricity_today_gbp is None  # no tariffs fetched yet: no pounds
        panel = _panel(status, clock.now)
        assert "│ today            0.72 kWh " in panel
        assert "│ gas today        6.00 kWh " in panel

        set_clock(monkeypatch, clock)
        shown = invoke("status")
        assert shown.exit_code == 0, shown.output
        assert "today            0.72 kWh" in shown.output
        assert "gas              today 6.00 kWh (0.535 m³)" in shown.output
        as_json = invoke("status", "--json")
        assert '"electricity_today_kwh": 0.72' in as_json.output

        # The jobs (tariffs, gas) and a poll cycle later: what they stored adds to the
        # morning, and the figures are those of `costs` for today, pounds included.
        for _ in range(12):  # an hour of cycles: the jobs run at the installation's offset
            while monitor.jobs_due(clock.now):
                monitor.run_jobs(clock.now)
            assert monitor.cycle(clock.now).ok
            clock.advance(minutes=5)
        # The tally as the stop's save leaves it (its newest readings ride in state.json,
        # written every few cycles, SPEC §4.9): what the status counted, all of it.
        closed = True
        monitor.close(clock.now, announce=False)
        tally = Tally(cache_dir).load()
        cached = TariffCache(cache_dir, pricing(settings)).load()
        assert cached is not None
        day = uk_day(clock.now)
        want_e = day_cost(day, IMPORT, cached.book, SettledData(), tally)
        want_g = day_cost(day, GAS_SERIES, cached.book, SettledData(), tally)
        assert want_e.kwh is not None and want_e.kwh > 0.72 and want_e.total is not None
        assert want_g.kwh is not None and want_g.kwh >= 6 and want_g.total is not None
        assert status.electricity_today_kwh == float(want_e.kwh)
        assert status.electricity_today_gbp == float(want_e.total)
        assert status.gas_today_kwh == float(want_g.kwh)
        assert status.gas_today_gbp == float(want_g.total)
        panel = _panel(status, clock.now)
        assert f"{want_e.kwh:.2f} kWh · £{want_e.total:.2f} with standing charge" in panel
        assert f"{want_g.kwh:.2f} kWh · £{want_g.total:.2f} · newest" in panel
    finally:
        if not closed:
            monitor.close(clock.now, announce=False)
