"""Gas discovery and telemetry (SPEC §11): the real Kraken client against `octomon.sim` over
loopback HTTP, one injected clock for both."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from octomon.octopus import gas
from octomon.octopus.budget import Budget
from octomon.octopus.gas import GasMeter
from octomon.octopus.graphql import OctopusClient
from octomon.readings import GasReading
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, DEFAULT_DEVICE_ID, SimHomeMini, SimServer
from octomon.sim.account import GAS_DEVICE_ID, GAS_SERIAL, GAS_SERIAL_OLD, MPRN
from tests.helpers.clock import ManualClock

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 18, 14, 0, tzinfo=timezone.utc)


def client_for(server: SimServer, clock: ManualClock, **kwargs: object) -> OctopusClient:
    return OctopusClient(
        api_key=DEFAULT_API_KEY,
        account_number=DEFAULT_ACCOUNT,
        api_url=server.url,
        budget=Budget(None, 100),
        clock=clock,
        **kwargs,
    )


def ops(sim: SimHomeMini) -> list[str]:
    return [op for _, op in sim.calls]


def test_one_account_query_finds_both_fuels_and_picks_the_smart_gas_meter(
    server: SimServer, sim: SimHomeMini, clock: ManualClock
) -> None:
    client = client_for(server, clock)
    assert client.device() == DEFAULT_DEVICE_ID
    found = client.gas()
    assert found == GasMeter(GAS_DEVICE_ID, MPRN, GAS_SERIAL, "m³")
    assert found is not None and found.others == ((GAS_SERIAL_OLD, "m³"),)  # the replaced one
    assert found.units_of(GAS_SERIAL_OLD) == "m³" and found.units_of("E6S0") is None
    assert client.gas_status == gas.FOUND
    assert ops(sim) == ["token", "account"]


def test_gas_fields_refused_leaves_electricity_alone_and_is_not_retried(
    server: SimServer, sim: SimHomeMini, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sim.no_gas_schema = True
    client = client_for(server, clock)
    caplog.set_level("INFO", "octomon.octopus.graphql")
    assert client.device() == DEFAULT_DEVICE_ID
    for _ in range(5):
        assert client.gas() is None
        assert client.gas_telemetry(T0 - timedelta(hours=2), T0) == []
        assert client.gas_latest() is None
    assert client.telemetry(T0 - timedelta(minutes=5), T0)
    assert ops(sim) == ["token", "account", "account", "telemetry"]
    notes = [r.getMessage() for r in caplog.records if "no gas" in r.getMessage()]
    assert notes == ["no gas: the Octopus API does not know the gas fields of the account query"]


def test_gas_fields_refused_with_the_device_known_costs_one_call(
    server: SimServer, sim: SimHomeMini, clock: ManualClock
) -> None:
    sim.no_gas_schema = True
    client = client_for(server, clock, device_id=DEFAULT_DEVICE_ID)
    for _ in range(3):
        assert client.gas() is None
    assert client.gas_status == gas.UNSUPPORTED
    assert ops(sim) == ["token", "account"]


def test_an_account_without_gas(server: SimServer, sim: SimHomeMini, clock: ManualClock) -> None:
    sim.no_gas = True
    client = client_for(server, clock)
    assert client.device() == DEFAULT_DEVICE_ID
    assert client.gas() is None and client.gas_status == gas.NONE
    assert ops(sim) == ["token", "account"]


def test_gas_off_makes_no_gas_call_at_all(
    server: SimServer, sim: SimHomeMini, clock: ManualClock
) -> None:
    sim.no_gas_schema = True  # any gas field in a query would be a 400 and a retry
    client = client_for(server, clock, gas_enabled=False)
    assert client.device() == DEFAULT_DEVICE_ID
    assert client.gas() is None and client.gas_status == gas.OFF
    assert client.gas_telemetry(T0 - timedelta(hours=2), T0) == []
    assert client.gas_latest() is None
    assert ops(sim) == ["token", "account"]
    assert sim.gas_served == {}


def test_gas_telemetry_is_half_hourly_energy_with_the_volume_from_the_formula(
    server: SimServer, sim: SimHomeMini, clock: ManualClock
) -> None:
    known = GasMeter(GAS_DEVICE_ID, MPRN, GAS_SERIAL)
    client = client_for(server, clock, gas_meter=known, calorific_value=38.7)
    start = T0 - timedelta(hours=14)
    readings = client.gas_telemetry(start, T0)  # over 6 h: three calls, oldest first
    assert ops(sim) == ["token", "gas", "gas", "gas"]
    assert [r.read_at for r in readings] == sorted(sim.gas_served)
    assert 24 <= len(readings) <= 28  # 28 half-hours; the newest still being uploaded
    for reading in readings:
        item = sim.gas_served[reading.read_at]
        wh = Decimal(str(item["consumptionDelta"]))
        assert reading == GasReading(
            read_at=reading.read_at,
            device_id=GAS_DEVICE_ID,
            consumption_delta=float(wh / 1000),
            consumption=float(Decimal(str(item["consumption"])) / 1000),
            cost_delta=float(Decimal(str(item["costDelta"])) / 100),
            cost_delta_with_tax=float(Decimal(str(item["costDeltaWithTax"])) / 100),
            volume_delta=float(wh / 1000 * Decimal("3.6") / Decimal("38.7") / Decimal("1.02264")),
        )
    latest = client.gas_latest()
    assert latest is not None and latest.read_at == readings[-1].read_at
