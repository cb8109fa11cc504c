"""`octomon backfill` end to end: the simulator over real HTTP into a real VictoriaMetrics."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.readings import FIELDS, GAS_FIELDS, Reading
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHomeMini]:
    home = SimHomeMini()
    with SimServer(home) as server:
        monkeypatch.setenv("OCTOPUS_API_KEY", home.api_key)
        monkeypatch.setenv("OCTOPUS_ACCOUNT_NUMBER", home.account_number)
        monkeypatch.setenv("OCTOPUS_API_URL", server.url)
        yield home


@pytest.fixture
def influx(victoria: VictoriaMetrics, monkeypatch: pytest.MonkeyPatch) -> VictoriaMetrics:
    monkeypatch.setenv("INFLUXDB_URL", victoria.url)
    monkeypatch.setenv("INFLUXDB_TOKEN", "backfill-test-token")
    monkeypatch.setenv("INFLUXDB_ORG", "home")
    monkeypatch.setenv("INFLUXDB_BUCKET", "octopus_energy")
    return victoria


def _backfill(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["backfill", *args])
    return result.exit_code, result.output


def _expected(sim: SimHomeMini, lo: datetime, hi: datetime) -> dict[str, dict[int, float]]:
    """{field: {unix s: value}} of every reading the simulator served in [lo, hi)."""
    out: dict[str, dict[int, float]] = {f: {} for f in FIELDS}
    for ts, item in sim.served.items():
        if not lo <= ts < hi:
            continue
        reading = Reading.from_api(item, sim.device_id)
        assert reading is not None
        for name, value in reading.fields().items():
            out[name][int(ts.timestamp())] = value
    return out


def _expected_gas(
    sim: SimHomeMini, lo: datetime, hi: datetime, cv: str = "39.5"
) -> dict[str, dict[int, float]]:
    """{field: {unix s: value}} of every gas half-hour served in [lo, hi), volume included:
    m³ = Wh / 1000 x 3.6 / CV / 1.02264, computed here from the API's own strings."""
    out: dict[str, dict[int, float]] = {f: {} for f in GAS_FIELDS}
    for ts, item in sim.gas_served.items():
        if not lo <= ts < hi:
            continue
        t = int(ts.timestamp())
        wh = Decimal(str(item["consumptionDelta"]))
        out["consumption_delta"][t] = float(wh / 1000)
        out["consumption"][t] = float(Decimal(str(item["consumption"])) / 1000)
        out["cost_delta"][t] = float(Decimal(str(item["costDelta"])) / 100)
        out["cost_delta_with_tax"][t] = float(Decimal(str(item["costDeltaWithTax"])) / 100)
        volume = wh / 1000 * Decimal("3.6") / Decimal(cv) / Decimal("1.02264")
        out["volume_delta"][t] = float(volume)
    return out


def _check_stored(
    vm: VictoriaMetrics,
    expected: dict[str, dict[int, float]],
    measurement: str = "energy_consumption",
) -> None:
    for name, values in expected.items():
        if not values:
            continue
        got = vm.export(name, wait_for=len(values), measurement=measurement)
        assert set(got) == set(values), f"{name}: timestamps differ"
        for ts, value in values.items():
            if name == "volume_delta":
                # VictoriaMetrics keeps about 14 significant digits (the figure octomon writes
                # is the formula's float to the last bit: tests/unit/test_gas_readings.py).
                assert all(math.isclose(v, value, rel_tol=1e-12) for v in got[ts]), (ts, got[ts])
                continue
            assert set(got[ts]) == {value}, f"{name} at {ts}: {got[ts]} != {value}"


def test_yesterday_and_today_exactly_within_the_call_budget(
    sim: SimHomeMini, influx: VictoriaMetrics
) -> None:
    now = datetime.now(timezone.utc)
    yesterday = (now - timedelta(days=1)).date()
    since = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=timezone.utc)
    code, out = _backfill("--since", yesterday.isoformat())
    assert code == 0, out
    until = datetime.now(timezone.utc)
    hours = (until - since).total_seconds() / 3600
    calls = len(sim.calls)
    # Electricity, then gas: one call per 6-h window each, a token and one account query.
    assert calls <= 2 * math.ceil(hours / 6) + 2, f"{calls} calls for {hours:.1f} h"
    assert re.search(r"about \d+ API calls", out)
    assert "stored " in out and "in InfluxDB" in out
    assert re.search(r"stored \d+ gas half-hours in InfluxDB", out)

    expected = _expected(sim, since, until)
    assert len(expected["demand"]) > 24 * 360 * 0.9  # a day and more of 10-s readings
    _check_stored(influx, expected)
    tags = influx.series("demand")
    assert {t.get("device_id") for t in tags} == {sim.device_id}
    assert {t.get("source") for t in tags} == {"octopus_home_mini"}
    gas = _expected_gas(sim, since, until)
    assert len(gas["consumption_delta"]) >= 40  # yesterday's half-hours and today's so far
    _check_stored(influx, gas, "gas_consumption")

    # Again: harmless. Same distinct timestamps, same values (VictoriaMetrics keeps both
    # copies of a point; InfluxDB keeps one). Only readings uploaded since the first run
    # (the API shows a reading 10 s to a few minutes after its readAt) may be new.
    served_before = dict(sim.served)
    code, out = _backfill("--since", yesterday.isoformat(), "--until", until.isoformat())
    assert code == 0, out
    assert all(sim.served[ts] == item for ts, item in served_before.items())
    again = _expected(sim, since, until)
    for name, values in expected.items():
        assert again[name].items() >= values.items()
        late = set(again[name]) - set(values)
        assert all(ts >= until.timestamp() - 300 for ts in late), name
    _check_stored(influx, again)


def test_history_the_api_no_longer_serves_is_reported(
    sim: SimHomeMini, influx: VictoriaMetrics
) -> None:
    sim.retention = timedelta(hours=30)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    since = now - timedelta(days=2)
    code, out = _backfill("--since", since.isoformat())
    assert code == 1, out
    found = re.search(r"missing \(no longer served by the Octopus API\): (\S+) → (\S+)", out)
    assert found, out
    assert found.group(1) == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    gap_end = datetime.fromisoformat(found.group(2).replace("Z", "+00:00"))
    boundary = now - timedelta(hours=30)
    assert boundary <= gap_end <= boundary + timedelta(minutes=16)
    assert "error: backfill incomplete: part of the range is no longer served" in out
    until = datetime.now(timezone.utc)
    _check_stored(influx, _expected(sim, gap_end, until))  # the rest is all there


def test_local_mode_keeps_readings_in_the_cache(sim: SimHomeMini, tmp_path: object) -> None:
    from octomon.config import load
    from octomon.store.cache import Cache

    now = datetime.now(timezone.utc)
    since = now - timedelta(hours=3)
    code, out = _backfill("--since", since.isoformat())
    assert code == 0, out
    assert "local mode" in out
    settings = load(groups=["cache"])
    status = Cache(settings.cache_dir, settings.cache_max_mb).status()
    gas = len(_expected_gas(sim, since, now)["consumption_delta"])
    assert gas >= 3  # the cache holds gas lines beside electricity, counted by cache status
    assert status.readings == len(_expected(sim, since, now)["demand"]) + gas


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_the_budget_stops_cleanly(sim: SimHomeMini) -> None:
    """A subprocess (real signals): the budget runs out, it waits and says so; SIGINT stops
    it at once with what was stored and the exact command for the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    day = (datetime.now(timezone.utc) - timedelta(days=2)).date()
    env = dict(os.environ, OCTOPUS_MAX_CALLS_PER_HOUR="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "octomon", "backfill", "--since", day.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("waiting "):
                break
        assert any(line.startswith("waiting ") for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 1, out
    assert len(sim.calls) == 3  # token, discovery, one window: the budget
    assert "the API call budget (3 an hour" in out
    assert "stored " in out
    assert re.search(rf"not fetched: {day.isoformat()}T06:00:00Z → \S+", out), out
    assert "error: backfill incomplete: interrupted — `octomon backfill --since " in out
    assert "Traceback" not in out
