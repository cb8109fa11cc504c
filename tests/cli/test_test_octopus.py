"""`octomon test-octopus` against the simulated Home Mini over loopback HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.readings import Reading
from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, DEFAULT_DEVICE_ID, SimHomeMini, SimServer
from octomon.sim.account import GAS_DEVICE_ID, GAS_SERIAL, GAS_SERIAL_OLD, MPRN
from octomon.state import StateStore
from tests.helpers.services import free_port
from tests.helpers.sim_faults import FaultySim

pytestmark = pytest.mark.integration

runner = CliRunner()
BAD_KEY = "sk_live_WRONGwrongWRONG0123456789"
JWT = re.compile(r"eyJ[\w-]{8,}")  # a base64url JSON header: any token the sim issued
HEX_TOKEN = re.compile(r"\b[0-9a-f]{64}\b")  # the sim's refresh tokens


@pytest.fixture
def sim() -> SimHomeMini:
    return FaultySim()


@pytest.fixture
def server(sim: SimHomeMini) -> Iterator[SimServer]:
    srv = SimServer(sim).start()
    yield srv
    srv.stop()


def env_for(server: SimServer, **overrides: str) -> dict[str, str]:
    env = {
        "OCTOPUS_API_KEY": DEFAULT_API_KEY,
        "OCTOPUS_ACCOUNT_NUMBER": DEFAULT_ACCOUNT,
        "OCTOPUS_API_URL": server.url,
    }
    env.update(overrides)
    return env


def invoke(env: dict[str, str]):
    return runner.invoke(app, ["test-octopus"], env=env)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_ok_shows_the_device_and_the_latest_reading(server: SimServer, sim: SimHomeMini) -> None:
    result = invoke(env_for(server))
    assert result.exit_code == 0, result.output
    assert f"device id: {DEFAULT_DEVICE_ID}" in result.output
    assert re.search(r"latest reading: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.output)
    assert re.search(r"demand: [-\d.e]+ kW", result.output)
    assert re.search(r"consumption: [\d.e+]+ kWh", result.output)
    assert f"other devices on the account: {sim.ihd_id}, {sim.cad_id}" in result.output
    # The register is shown to the Wh, not rounded to 6 digits.
    (item,) = sim.served.values()
    reading = Reading.from_api(item, DEFAULT_DEVICE_ID)
    assert reading is not None and reading.consumption is not None
    assert f"consumption: {reading.consumption:.10g} kWh" in result.output
    assert DEFAULT_API_KEY not in result.output
    # Its three calls are in the shared ledger under CACHE_DIR.
    ledger = StateStore(Path(os.environ["CACHE_DIR"])).load().calls
    assert len(ledger) == len(sim.calls) == 4
    assert [op for _, op in sim.calls] == ["token", "account", "telemetry", "gas"]


def test_bad_key_fails_with_one_line_and_no_key(server: SimServer) -> None:
    result = invoke(env_for(server, OCTOPUS_API_KEY=BAD_KEY))
    assert result.exit_code == 1
    assert "authentication failed" in result.output.lower()
    assert "OCTOPUS_API_KEY" in result.output
    assert BAD_KEY not in result.output
    assert "Traceback" not in result.output


def test_wrong_account_fails_with_one_line(server: SimServer) -> None:
    result = invoke(env_for(server, OCTOPUS_ACCOUNT_NUMBER="A-00000000"))
    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert "OCTOPUS_ACCOUNT_NUMBER" in lines[0]
    assert "Traceback" not in result.output


def test_no_device(server: SimServer, sim: SimHomeMini) -> None:
    sim.no_device = True
    result = invoke(env_for(server))
    assert result.exit_code == 1
    assert "No smart devices found" in result.output
    assert len(error_lines(result.output)) == 1


def test_rate_limited(server: SimServer, sim: SimHomeMini) -> None:
    sim.rate_limited = True
    result = invoke(env_for(server))
    assert result.exit_code == 1
    assert "rate limit" in result.output.lower()
    assert len(error_lines(result.output)) == 1
    # The backoff is persisted: a second run does not even call the API.
    calls = len(sim.calls)
    again = invoke(env_for(server))
    assert again.exit_code == 1
    assert "backing off" in again.output
    assert len(sim.calls) == calls


def test_unreachable_api(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/graphql/"
    result = invoke(
        {
            "OCTOPUS_API_KEY": DEFAULT_API_KEY,
            "OCTOPUS_ACCOUNT_NUMBER": DEFAULT_ACCOUNT,
            "OCTOPUS_API_URL": url,
        }
    )
    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert len(lines) == 1 and "could not reach the Octopus API" in lines[0]


def test_configured_device_id_skips_discovery(server: SimServer, sim: SimHomeMini) -> None:
    result = invoke(env_for(server, OCTOPUS_DEVICE_ID=DEFAULT_DEVICE_ID, OCTOPUS_GAS="off"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        f"Octopus API ok — account {DEFAULT_ACCOUNT}",
        f"device id: {DEFAULT_DEVICE_ID}",
    ]
    assert result.output.splitlines()[-1] == "gas is off (OCTOPUS_GAS=off)"
    assert [op for _, op in sim.calls] == ["token", "telemetry"]


def test_configured_device_id_still_asks_the_account_for_gas(
    server: SimServer, sim: SimHomeMini
) -> None:
    result = invoke(env_for(server, OCTOPUS_DEVICE_ID=DEFAULT_DEVICE_ID))
    assert result.exit_code == 0, result.output
    assert [op for _, op in sim.calls] == ["token", "telemetry", "account", "gas"]
    assert f"gas device id: {GAS_DEVICE_ID}" in result.output


def test_shows_the_smart_gas_meter_and_its_latest_half_hour(
    server: SimServer, sim: SimHomeMini
) -> None:
    result = invoke(env_for(server, GAS_CALORIFIC_VALUE="40"))
    assert result.exit_code == 0, result.output
    # The meter point lists the replaced meter first: the smart one is picked.
    assert f"gas device id: {GAS_DEVICE_ID} (meter {GAS_SERIAL}, MPRN {MPRN})" in result.output
    assert GAS_SERIAL_OLD not in result.output
    ((at, item),) = sim.gas_served.items()
    assert f"latest gas half-hour: {at:%Y-%m-%dT%H:%M:%SZ}" in result.output
    wh = Decimal(str(item["consumptionDelta"]))
    m3 = wh / 1000 * Decimal("3.6") / 40 / Decimal("1.02264")
    assert f"  volume_delta: {float(m3):.10g} m³" in result.output
    assert f"  consumption: {float(Decimal(str(item['consumption'])) / 1000):.10g} kWh" in (
        result.output
    )


def test_a_server_without_the_gas_fields_is_asked_once_more_without_them(
    server: SimServer, sim: SimHomeMini
) -> None:
    sim.no_gas_schema = True
    result = invoke(env_for(server))
    assert result.exit_code == 0, result.output
    assert f"device id: {DEFAULT_DEVICE_ID}" in result.output
    assert "no gas: the Octopus API does not know the gas fields" in result.output
    assert [op for _, op in sim.calls] == ["token", "account", "account", "telemetry"]


def test_an_account_without_gas_says_so(server: SimServer, sim: SimHomeMini) -> None:
    sim.no_gas = True
    result = invoke(env_for(server))
    assert result.exit_code == 0, result.output
    assert "no gas: the account has no smart gas meter with a device id" in result.output
    assert [op for _, op in sim.calls] == ["token", "account", "telemetry"]


def test_gas_off_asks_nothing_about_gas(server: SimServer, sim: SimHomeMini) -> None:
    sim.no_gas_schema = True  # a query naming gas fields would be refused (and retried)
    result = invoke(env_for(server, OCTOPUS_GAS="off"))
    assert result.exit_code == 0, result.output
    assert "gas is off (OCTOPUS_GAS=off)" in result.output
    assert [op for _, op in sim.calls] == ["token", "account", "telemetry"]
    assert sim.gas_served == {}


@pytest.mark.parametrize("key", [DEFAULT_API_KEY, BAD_KEY])
def test_debug_output_never_holds_the_key_or_tokens(
    server: SimServer, sim: SimHomeMini, key: str, tmp_path: Path
) -> None:
    """The real process at LOG_LEVEL=debug: stdout and stderr, urllib3's lines included."""
    octomon = Path(sys.executable).with_name("octomon")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(env_for(server, OCTOPUS_API_KEY=key, LOG_LEVEL="debug"))
    proc = subprocess.run(
        [str(octomon), "test-octopus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == (0 if key == DEFAULT_API_KEY else 1), output
    assert "DEBUG" in output and "ObtainToken" in output  # debug logging really was on
    assert key not in output
    assert not JWT.search(output), output
    assert not HEX_TOKEN.search(output), output
    # (At DEBUG the error translator logs the traceback by design; it is scrubbed too.)
    if key != DEFAULT_API_KEY:
        assert proc.stderr.strip().splitlines()[-1].startswith("error: authentication failed")
    if key == DEFAULT_API_KEY:
        assert sim.calls, "the subprocess talked to the sim"
        assert "Octopus API ok" in proc.stdout
