"""The tariffs job on the daemon's schedule, on one injected clock shared with the simulator.

The driver wakes exactly when the real loop would (the next poll cycle or the scheduler's
next slot), so the minute of every REST request is the one the daemon would use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from octomon.alerts.policy import Alert
from octomon.billing.tariffs import Tariffs
from octomon.config import Settings, night_window
from octomon.daemon.jobs import TariffsJob
from octomon.daemon.schedule import Scheduler, installation_offset, slot
from octomon.daemon.status import Status
from octomon.octopus.budget import Budget
from octomon.octopus.pricebook import half_hour_floor
from octomon.octopus.published import Pricing
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.state import StateStore
from octomon.wiring import build_monitor
from tests.helpers.clock import ManualClock

pytestmark = pytest.mark.integration

UK = ZoneInfo("Europe/London")
UTC = timezone.utc
DAY = date(2026, 11, 26)  # GMT
AGILE_RATES = "standard-unit-rates"


def uk(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), UK).astimezone(UTC)


class Quiet:
    def emit(self, alerts: Sequence[Alert]) -> None:
        pass

    def close(self, timeout: float = 3.0) -> None:
        pass


@pytest.fixture
def sim_server() -> Iterator[tuple[SimHomeMini, SimServer, ManualClock]]:
    clock = ManualClock(uk(DAY, 9))
    sim = SimHomeMini(clock=clock)
    with SimServer(sim) as server:
        yield sim, server, clock


def rest_times(sim: SimHomeMini) -> list[datetime]:
    return sorted({t for t, _ in sim.rest.calls})


def agile_until(tariffs: Tariffs) -> datetime | None:
    cached = tariffs.cached()
    return cached.book.covered_until(("electricity", "import")) if cached else None


def run_jobs_alone(
    sim: SimHomeMini, server: SimServer, clock: ManualClock, tmp_path: Path, until: datetime
) -> tuple[Tariffs, timedelta, list[tuple[datetime, datetime | None]]]:
    """The scheduler with only the tariffs job, woken at each of its slots up to ``until``;
    returns what the cache knew after each run."""
    store = StateStore(tmp_path / "cache")
    budget = Budget(store, 75)
    rest = RestClient(api_key=sim.api_key, base_url=server.rest_url, budget=budget, clock=clock)
    tariffs = Tariffs(
        rest,
        sim.account_number,
        tmp_path / "cache",
        pricing=Pricing("direct_debit", night_window("00:30-07:30")),
        state=store,
        sink=None,
    )
    offset = installation_offset(sim.account_number)
    scheduler = Scheduler(budget, offset=offset, headroom=5)
    scheduler.add(TariffsJob(tariffs), clock() - offset)
    seen: list[tuple[datetime, datetime | None]] = []
    while (at := scheduler.next_due() or clock()) <= until:
        clock.now = at
        for report in scheduler.run_due(at):
            assert report.outcome.value == "ran", report
            seen.append((at, agile_until(tariffs)))
    return tariffs, offset, seen


def test_tomorrows_prices_are_fetched_after_16_05_uk_plus_the_offset_and_not_before(
    sim_server: tuple[SimHomeMini, SimServer, ManualClock], tmp_path: Path
) -> None:
    sim, server, clock = sim_server
    _, offset, seen = run_jobs_alone(sim, server, clock, tmp_path, uk(DAY + timedelta(days=1), 15))
    after_16 = slot(uk(DAY, 16, 5), offset)
    assert [at for at, _ in seen] == [uk(DAY, 9, 1), after_16]  # at start (off 09:00), then
    assert seen[0][1] == uk(DAY, 23)  # before 16:00 UK: today's prices only
    assert seen[1][1] == uk(DAY + timedelta(days=1), 23)  # tomorrow's, to 23:00 UK
    assert rest_times(sim) == [uk(DAY, 9, 1), after_16]
    assert all(t.minute not in (0, 30) for t in rest_times(sim))


def test_late_prices_are_retried_hourly_until_published(
    sim_server: tuple[SimHomeMini, SimServer, ManualClock], tmp_path: Path
) -> None:
    sim, server, clock = sim_server
    sim.rest.publish_at = time(18, 40)  # a late day
    _, offset, seen = run_jobs_alone(sim, server, clock, tmp_path, uk(DAY + timedelta(days=1), 15))
    tries = [slot(uk(DAY, h, 5), offset) for h in (16, 17, 18, 19)]
    assert [at for at, _ in seen] == [uk(DAY, 9, 1), *tries]
    assert [known for _, known in seen[1:]] == [uk(DAY, 23)] * 3 + [uk(DAY, 23) + timedelta(days=1)]
    assert all(t.minute not in (0, 30) for t in rest_times(sim))
    # Each late try asks only for what is missing: one request, no account, no gas.
    late = [p for t, p in sim.rest.calls if tries[0] <= t < tries[3]]
    assert len(late) == 3 and all(p.endswith(f"/{AGILE_RATES}/") for p in late)


def test_prices_are_not_asked_for_after_23_00_uk(
    sim_server: tuple[SimHomeMini, SimServer, ManualClock], tmp_path: Path
) -> None:
    sim, server, clock = sim_server
    sim.rest.publish_at = time(23, 30)  # not today at all
    *_, seen = run_jobs_alone(sim, server, clock, tmp_path, uk(DAY + timedelta(days=1), 12))
    hours = [at.astimezone(UK).hour for at, _ in seen[1:]]
    assert hours == [16, 17, 18, 19, 20, 21, 22]


def test_an_accelerated_day_stays_within_the_hourly_budget_with_rest_in_the_ledger(
    sim_server: tuple[SimHomeMini, SimServer, ManualClock], tmp_path: Path
) -> None:
    sim, server, clock = sim_server
    sim.rest.publish_at = time(17, 20)  # one late retry inside the day
    limit, poll = 25, 300  # 12 telemetry calls and a token an hour leave 12 for the rest
    settings = Settings(
        octopus_api_key=sim.api_key,
        octopus_account_number=sim.account_number,
        octopus_api_url=server.url,
        octopus_rest_url=server.rest_url,
        octopus_max_calls_per_hour=limit,
        octopus_gas="off",  # gas has its own accelerated day (tests/integration/test_gas_daemon.py)
        poll_interval_seconds=poll,
        cache_dir=tmp_path / "cache",
    )
    monitor = build_monitor(settings, stop=threading.Event(), clock=clock, alerter=Quiet())
    monitor.start(clock())
    end = clock() + timedelta(hours=24)
    next_poll = clock()
    worst_ledger_gap = 0
    try:
        while clock() < end:
            job_at = monitor.scheduler.next_due() if monitor.scheduler else None
            clock.now = min(next_poll, job_at) if job_at else next_poll
            if clock() >= next_poll:
                monitor.cycle(clock())
                next_poll = clock() + timedelta(seconds=poll)
            while monitor.jobs_due(clock()):
                monitor.run_jobs(clock())
            # Every request the sim saw in the last hour is in the ledger (REST included).
            hour = [t for t, _ in sim.calls if t > clock() - timedelta(hours=1)]
            ledger = monitor.budget.calls_last_hour(clock())
            worst_ledger_gap = max(worst_ledger_gap, len(hour) - ledger)
        # The status (panel, status.json) carries the price of the half-hour of the last cycle.
        status = Status.read(tmp_path / "cache")
        assert status is not None and status.last_cycle_at is not None
        pence = sim.rest.agile_price(half_hour_floor(status.last_cycle_at))
        assert status.unit_rate == float(pence * Decimal("1.05") / 100)
        assert status.tariff_code == ids.AGILE_IMPORT_TARIFF
    finally:
        monitor.close(clock(), announce=False)
    assert worst_ledger_gap == 0
    times = sorted(t for t, _ in sim.calls)
    for i, t in enumerate(times):  # every rolling hour, ending at each request
        in_hour = [u for u in times[: i + 1] if u > t - timedelta(hours=1)]
        assert len(in_hour) <= limit, t
    rest = rest_times(sim)
    assert rest and all(t.minute not in (0, 30) for t in rest)
    assert any(op == "telemetry" for _, op in sim.calls)
    assert sim.rate_limited_answers == 0
    # The day's tariff runs all happened: at start, 16:05 (not yet), 17:05 (published).
    offset = installation_offset(sim.account_number)
    assert rest_times(sim)[0] <= uk(DAY, 9, 5)
    assert slot(uk(DAY, 16, 5), offset) in rest and slot(uk(DAY, 17, 5), offset) in rest
    assert not [t for t in rest if slot(uk(DAY, 17, 5), offset) < t < uk(DAY, 16) + timedelta(1)]
