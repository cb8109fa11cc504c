"""The settled job inside the monitor (build_monitor + the scheduler), on one injected clock,
against the simulator over real HTTP: it runs at start, and a failing REST API costs no
reading and says so once."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.billing.settled import SettledStore
from octomon.daemon.monitor import Monitor
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_readings, expected
from tests.helpers.sim_faults import FaultySim
from tests.helpers.tally import assert_tally_is_what_was_served
from tests.integration.test_run_sim import make_rig

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 8, 40, tzinfo=timezone.utc)


def monitor_for(tmp_path: Path, sim: SimHomeMini, server: SimServer, clock: ManualClock) -> Monitor:
    return make_rig(tmp_path, sim, clock, server).monitor


def drive(monitor: Monitor, clock: ManualClock, minutes: int) -> list[str]:
    """A minute at a time: a poll cycle, then any due job (as the loop does)."""
    ran: list[str] = []
    for _ in range(minutes):
        clock.advance(minutes=1)
        monitor.cycle(clock())
        while monitor.jobs_due(clock()):
            ran += [f"{r.name}:{r.outcome.value}" for r in monitor.run_jobs(clock())]
    return ran


def test_the_settled_job_runs_at_start_and_a_failing_rest_api_costs_no_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    sim = FaultySim(clock=clock)
    with SimServer(sim) as server:
        monitor = monitor_for(tmp_path, sim, server, clock)
        try:
            ran = drive(monitor, clock, 30)
            assert "settled:ran" in ran  # at start (its first anchor is now - offset)
            assert SettledStore(tmp_path / "cache").load().day_settled(date(2026, 11, 30))
            sim.rest_errors = 10_000  # from now on every REST request fails (503)
            caplog.set_level(logging.INFO, "octomon.daemon.schedule")
            clock.now = datetime(2026, 12, 2, 8, 50, tzinfo=timezone.utc)  # a gap to catch up
            ran = drive(monitor, clock, 40)  # across 09:00 UK + offset on 2 Dec
            assert "settled:failed" in ran and "settled:ran" not in ran
        finally:
            monitor.close(clock(), announce=False)
    failed = [r for r in caplog.records if "settled failed" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in failed]  # one line per state change
    assert "HTTP 503" in failed[0].getMessage()
    cached = cached_readings(tmp_path / "cache")
    want = expected(sim)
    assert set(want) == set(cached) and len(want) > 3000  # every reading served, stored
    assert_tally_is_what_was_served(tmp_path / "cache", sim)
    assert timedelta(0) < clock() - T0
