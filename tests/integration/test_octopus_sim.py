"""The real Kraken client against `octomon.sim` over loopback HTTP.

One injected clock drives both the simulator and the client (and its budget), so token
expiry, late uploads, backoff and retention are exercised without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.checks import octopus_check
from octomon.config import Settings
from octomon.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    NoDevice,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
)
from octomon.octopus.budget import Budget
from octomon.octopus.graphql import OctopusClient
from octomon.readings import Reading
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, DEFAULT_DEVICE_ID, SimHomeMini, SimServer
from octomon.state import StateStore
from tests.helpers.clock import ManualClock as Clock
from tests.helpers.sim_faults import FaultySim

pytestmark = pytest.mark.integration

# 14:00 UTC on a weekday; the hour's late-upload bursts are at minutes 10-11, 30-31, 50-51.
T0 = datetime(2026, 11, 18, 14, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sim(clock: Clock) -> SimHomeMini:
    return FaultySim(clock=clock)


@pytest.fixture
def server(sim: SimHomeMini) -> Iterator[SimServer]:
    srv = SimServer(sim).start()
    yield srv
    srv.stop()


@pytest.fixture
def budget() -> Budget:
    return Budget(None, 100)


def make(server: SimServer, clock: Clock, budget: Budget, **kwargs: object) -> OctopusClient:
    params: dict[str, object] = {
        "api_key": DEFAULT_API_KEY,
        "account_number": DEFAULT_ACCOUNT,
        "api_url": server.url,
        "budget": budget,
        "clock": clock,
    }
    params.update(kwargs)
    return OctopusClient(**params)


@pytest.fixture
def client(server: SimServer, clock: Clock, budget: Budget) -> Iterator[OctopusClient]:
    c = make(server, clock, budget)
    yield c
    c.close()


def ops(sim: SimHomeMini) -> list[str]:
    return [op for _, op in sim.calls]


def truth(sim: SimHomeMini, start: datetime, end: datetime, now: datetime) -> set[datetime]:
    """Every 10-s step in [start, end) the sim has a reading for, visible by ``now``."""
    out = set()
    t = start
    while t < end:
        if sim.reading_at(t) is not None and sim.available_at(t) <= now:
            out.add(t)
        t += timedelta(seconds=10)
    return out


def test_discovery_finds_the_meter_and_lists_the_others(
    client: OctopusClient, sim: SimHomeMini
) -> None:
    assert client.device() == DEFAULT_DEVICE_ID
    assert client.other_devices == [sim.ihd_id, sim.cad_id]
    assert ops(sim) == ["token", "account"]
    reading = client.latest()
    assert reading is not None
    assert reading.device_id == DEFAULT_DEVICE_ID
    assert T0 - timedelta(minutes=5) < reading.read_at < T0


def test_thirteen_hours_are_fetched_in_three_calls_matching_the_sim(
    client: OctopusClient, sim: SimHomeMini, clock: Clock
) -> None:
    start = T0 - timedelta(hours=13)
    readings = client.telemetry(start, T0)
    assert ops(sim).count("telemetry") == 3
    times = [r.read_at for r in readings]
    assert times == sorted(set(times))
    expected = truth(sim, start, T0, clock())
    assert set(times) == expected
    assert len(times) > 4000  # ~4,680 steps minus the sim's ~1 % gaps and the latest
    # The values are exactly the sim's items, converted.
    for r in readings[:: len(readings) // 50]:
        item = sim.reading_at(r.read_at)
        assert item is not None
        assert r == Reading.from_api(item, DEFAULT_DEVICE_ID)
    assert client.dropped == 0


def test_late_readings_are_caught_by_re_fetching_with_an_overlap(
    client: OctopusClient, sim: SimHomeMini, clock: Clock
) -> None:
    sim.late_uploads = True
    start = T0
    clock.now = T0 + timedelta(minutes=12, seconds=30)  # the 14:10-14:11 burst is not up yet
    first = {r.read_at: r for r in client.telemetry(start, clock.now)}
    cursor = max(first)
    burst = truth(
        sim, T0 + timedelta(minutes=10), T0 + timedelta(minutes=12), clock.now + timedelta(hours=1)
    )
    assert burst and not burst & set(first), "the burst should be missing on the first fetch"

    clock.now = T0 + timedelta(minutes=17)
    second = client.telemetry(cursor - timedelta(minutes=5), clock.now)
    stored = set(first) | {r.read_at for r in second}
    assert burst <= stored
    assert truth(sim, start, cursor, clock.now) <= stored  # nothing before the cursor missing


def test_a_token_expiring_mid_run_is_renewed_transparently(
    client: OctopusClient, sim: SimHomeMini, clock: Clock
) -> None:
    client.device()
    client.telemetry(T0 - timedelta(minutes=10), T0)
    refresh = client.refresh_token
    assert refresh is not None
    sim.expire_tokens()
    clock.advance(minutes=1)
    readings = client.telemetry(T0 - timedelta(minutes=5), clock())
    assert readings
    assert ops(sim)[-3:] == ["telemetry", "token", "telemetry"]  # refused, renewed, retried
    assert client.refresh_token == refresh  # renewed with the refresh token

    # Refresh tokens expired too: the API key takes over.
    sim.expire_tokens(refresh=True)
    clock.advance(minutes=1)
    assert client.latest() is not None
    assert ops(sim)[-4:] == ["telemetry", "token", "token", "telemetry"]
    assert client.refresh_token != refresh


def test_token_is_renewed_before_it_expires(
    client: OctopusClient, sim: SimHomeMini, clock: Clock
) -> None:
    client.latest()
    assert client.token_expires_at == T0 + timedelta(hours=1)
    clock.advance(minutes=54)
    client.latest()
    clock.advance(minutes=1, seconds=1)  # inside the last 5 minutes
    client.latest()
    assert ops(sim) == ["token", "account", "telemetry", "telemetry", "token", "telemetry"]
    assert sim.rate_limited_answers == 0


def test_rate_limit_backs_off_and_the_next_reserve_refuses_without_calling(
    client: OctopusClient, sim: SimHomeMini, clock: Clock, budget: Budget
) -> None:
    client.latest()
    sim.rate_limited = True
    with pytest.raises(RateLimited) as info:
        client.latest()
    assert info.value.retry_in == 300
    assert sim.rate_limited_answers == 1
    assert budget.backoff_remaining(clock()) == 300
    sent = len(sim.calls)
    clock.advance(minutes=2)
    with pytest.raises(RateLimited):
        client.telemetry(T0 - timedelta(minutes=5), clock())
    assert len(sim.calls) == sent  # the ledger refused: the sim saw nothing

    clock.advance(minutes=3)  # the 300 s are over; still limited: 600 s now
    with pytest.raises(RateLimited) as info:
        client.latest()
    assert info.value.retry_in == 600

    sim.rate_limited = False
    clock.advance(minutes=10)
    assert client.latest() is not None
    assert budget.backoff_remaining(clock()) == 0
    assert budget.rate_limited_since() is None


def test_the_budget_keeps_the_client_under_the_servers_limit(
    server: SimServer, sim: SimHomeMini, clock: Clock
) -> None:
    sim.rate_limit_per_hour = 10
    budget = Budget(None, 8)
    c = make(server, clock, budget)
    with pytest.raises(BudgetExhausted):
        for _ in range(20):
            c.latest()
            clock.advance(seconds=30)
    assert len(sim.calls) == 8
    assert sim.rate_limited_answers == 0
    c.close()


def test_a_range_beyond_retention_is_range_too_old(client: OctopusClient, sim: SimHomeMini) -> None:
    sim.retention = timedelta(days=1)
    with pytest.raises(RangeTooOld):
        client.telemetry(T0 - timedelta(days=1, minutes=1), T0 - timedelta(hours=23))
    assert client.telemetry(T0 - timedelta(hours=23), T0 - timedelta(hours=22))


def test_a_server_without_the_newer_fields(client: OctopusClient, sim: SimHomeMini) -> None:
    sim.legacy_schema = True
    readings = client.telemetry(T0 - timedelta(minutes=10), T0)
    assert readings
    assert all(r.cost_delta_with_tax is None and r.export is None for r in readings)
    assert all(r.demand is not None and r.consumption is not None for r in readings)
    client.telemetry(T0 - timedelta(minutes=5), T0)
    assert ops(sim).count("telemetry") == 3  # one refused, then two without the fields


def test_service_errors_are_unavailable_then_recover(
    client: OctopusClient, sim: SimHomeMini
) -> None:
    client.device()
    sim.service_errors = 3
    for _ in range(3):
        with pytest.raises(OctopusUnavailable):
            client.latest()
    assert client.latest() is not None


def test_bad_key_wrong_account_and_no_device(
    server: SimServer, sim: SimHomeMini, clock: Clock, budget: Budget
) -> None:
    with pytest.raises(AuthError):
        make(server, clock, budget, api_key="sk_live_wrong0000000000000000000").device()
    with pytest.raises(ApiError) as info:
        make(server, clock, budget, account_number="A-00000000").device()
    assert info.value.hint is not None and "OCTOPUS_ACCOUNT_NUMBER" in info.value.hint
    sim.no_device = True
    with pytest.raises(NoDevice) as nodev:
        make(server, clock, budget).device()
    assert nodev.value.message.startswith("No smart devices found")
    with pytest.raises(NoDevice):
        make(server, clock, budget, device_id=DEFAULT_DEVICE_ID).latest()


def test_check_records_its_calls_in_the_shared_ledger(
    server: SimServer, sim: SimHomeMini, clock: Clock, tmp_path: Path
) -> None:
    settings = Settings(
        octopus_api_key=DEFAULT_API_KEY,
        octopus_account_number=DEFAULT_ACCOUNT,
        octopus_api_url=server.url,
        cache_dir=tmp_path / "cache",
    )
    result = octopus_check(settings, clock)
    assert result.device_id == DEFAULT_DEVICE_ID
    assert result.reading is not None
    assert result.other_devices == [sim.ihd_id, sim.cad_id]
    assert result.gas_meter is not None and result.gas_reading is not None
    # token, account (both fuels), latest electricity, latest gas
    assert len(StateStore(tmp_path / "cache").load().calls) == 4 == len(sim.calls)
