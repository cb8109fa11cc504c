"""`octomon backfill --fuel electricity|gas|all` against the simulator over loopback HTTP,
in local mode (the readings go to the cache, where the test reads them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.sim import SimHomeMini, SimServer
from tests.helpers.cli import invoke, set_clock
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_gas, cached_readings, expected, expected_gas

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimHomeMini]:
    """The simulator and `backfill` on one clock, stopped 10 minutes into the current half-hour
    (or the last one): which gas half-hours are uploaded is then the same at any time. Close
    to the wall clock, which the client's token expiry and the call ledger read."""
    wall = datetime.now(timezone.utc) - timedelta(minutes=10)
    start = wall.replace(minute=wall.minute // 30 * 30, second=0, microsecond=0)
    clock = ManualClock(start + timedelta(minutes=10))
    set_clock(monkeypatch, clock)
    home = SimHomeMini(clock=clock)
    with SimServer(home) as server:
        monkeypatch.setenv("OCTOPUS_API_KEY", home.api_key)
        monkeypatch.setenv("OCTOPUS_ACCOUNT_NUMBER", home.account_number)
        monkeypatch.setenv("OCTOPUS_API_URL", server.url)
        monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
        yield home


def since() -> str:
    from octomon.clock import command_now

    return (command_now() - timedelta(hours=5)).isoformat()


def ops(sim: SimHomeMini) -> list[str]:
    return [op for _, op in sim.calls]


def test_gas_only_fetches_the_gas_half_hours(sim: SimHomeMini, tmp_path: Path) -> None:
    result = invoke("backfill", "--since", since(), "--fuel", "gas")
    assert result.exit_code == 0, result.output
    assert ops(sim) == ["token", "account", "gas"]  # 5 h: one window
    gas = cached_gas(tmp_path / "cache")
    assert set(gas) == set(expected_gas(sim)) and len(gas) >= 8
    assert cached_readings(tmp_path / "cache") == {}
    assert f"stored {len(gas)} gas half-hours in the cache" in result.output


def test_electricity_only_makes_no_gas_call(sim: SimHomeMini, tmp_path: Path) -> None:
    result = invoke("backfill", "--since", since(), "--fuel", "electricity")
    assert result.exit_code == 0, result.output
    stored = len(cached_readings(tmp_path / "cache"))
    assert f"\nstored {stored:,} readings in the cache\n" in result.output
    assert "gas" not in ops(sim)
    assert cached_gas(tmp_path / "cache") == {}
    assert set(cached_readings(tmp_path / "cache")) == set(expected(sim))


def test_all_is_the_default_electricity_then_gas(sim: SimHomeMini, tmp_path: Path) -> None:
    result = invoke("backfill", "--since", since())
    assert result.exit_code == 0, result.output
    assert ops(sim) == ["token", "account", "telemetry", "gas"]
    assert set(cached_gas(tmp_path / "cache")) == set(expected_gas(sim))
    assert set(cached_readings(tmp_path / "cache")) == set(expected(sim))


def test_gas_with_gas_off_is_a_configuration_error(sim: SimHomeMini) -> None:
    result = invoke("backfill", "--since", since(), "--fuel", "gas", env={"OCTOPUS_GAS": "off"})
    assert result.exit_code == 2
    assert "--fuel gas, but OCTOPUS_GAS=off" in result.output
    assert "Traceback" not in result.output
    assert sim.calls == []


def test_all_with_gas_off_is_electricity_only(sim: SimHomeMini) -> None:
    result = invoke("backfill", "--since", since(), env={"OCTOPUS_GAS": "off"})
    assert result.exit_code == 0, result.output
    assert "gas is off (OCTOPUS_GAS=off): electricity only" in result.output
    assert "gas" not in ops(sim)


def test_gas_on_an_account_without_gas_says_so_and_fails(sim: SimHomeMini) -> None:
    sim.no_gas = True
    result = invoke("backfill", "--since", since(), "--fuel", "gas")
    assert result.exit_code == 1
    assert "no gas: the account has no smart gas meter with a device id: nothing to fetch" in (
        result.output
    )
    assert "backfill incomplete: no smart gas meter on the account" in result.output
