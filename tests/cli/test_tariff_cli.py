"""`octomon tariff` against the simulator over HTTP: what a user sees, and what it costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from octomon.octopus.pricebook import half_hour_floor
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from tests.helpers.cli import invoke, point_at_sim, set_clock
from tests.helpers.clock import ManualClock
from tests.helpers.sim_faults import FaultySim


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, dict[str, str]]]:
    """The simulator and the commands on one clock, stopped when the test starts (the one
    subprocess reads the wall clock: the same UK day unless midnight falls in between)."""
    clock = ManualClock(datetime.now(timezone.utc))
    set_clock(monkeypatch, clock)
    the_sim = FaultySim(clock=clock)
    with SimServer(the_sim) as server:
        env = {
            "OCTOPUS_API_KEY": the_sim.api_key,
            "OCTOPUS_ACCOUNT_NUMBER": the_sim.account_number,
            "OCTOPUS_API_URL": server.url,
            "OCTOPUS_REST_URL": server.rest_url,
        }
        yield the_sim, env


def test_tariff_shows_the_tariffs_rates_and_cheapest_windows(
    sim: tuple[SimHomeMini, dict[str, str]],
) -> None:
    _, env = sim
    result = invoke("tariff", env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"electricity import  {ids.AGILE_IMPORT_TARIFF}  product AGILE-24-10-01" in out
    assert f"gas import          {ids.GAS_TARIFF}  product OE-FIX-12M-25-09-01" in out
    assert "electricity import  49.98 p/day" in out  # 47.60 p + VAT
    assert "gas import          29.86 p/day" in out
    assert "Cheapest ahead" in out and "  1 h  " in out and "  3 h  " in out
    assert out.count(">") == 1  # the current half-hour, marked once


def test_second_run_the_same_day_makes_no_call_and_answers_within_a_second(
    sim: tuple[SimHomeMini, dict[str, str]], tmp_path: Path
) -> None:
    the_sim, env = sim
    assert invoke("tariff", env=env).exit_code == 0
    calls = len(the_sim.rest.calls)
    assert calls >= 4
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "octomon", "tariff", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert len(the_sim.rest.calls) == calls  # no API call
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    body = json.loads(second.stdout)
    assert body["api_calls"] == 0


def test_json_names_the_current_rate_and_the_cheapest_windows(
    sim: tuple[SimHomeMini, dict[str, str]],
) -> None:
    the_sim, env = sim
    result = invoke("tariff", "--json", env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    now = the_sim.clock()
    start = half_hour_floor(now)
    current = body["current_rate"]
    assert current["tariff_code"] == ids.AGILE_IMPORT_TARIFF
    assert current["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    pence = the_sim.rest.agile_price(start)
    assert current["unit_rate"] == float(pence * Decimal("1.05") / 100)
    assert current["unit_rate_exc_vat"] == float(pence / 100)
    for hours in (1, 2, 3):
        window = body["cheapest"][f"{hours}h"]
        begin = datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
        assert end - begin == timedelta(hours=hours) and begin >= start
        rates = [
            r["unit_rate"]
            for r in body["rates"]["today"] + body["rates"]["tomorrow"]
            if begin <= datetime.fromisoformat(r["start"].replace("Z", "+00:00")) < end
        ]
        assert len(rates) == hours * 2
        assert window["average_unit_rate"] == pytest.approx(sum(rates) / len(rates))
    assert {t["fuel"] for t in body["tariffs"]} == {"electricity", "gas"}
    assert {s["fuel"]: s["standing_charge"] for s in body["standing_charges"]} == {
        "electricity": 0.4998,
        "gas": 0.29862,
    }


def test_a_wrong_key_is_one_line_and_exit_1(sim: tuple[SimHomeMini, dict[str, str]]) -> None:
    _, env = sim
    result = invoke("tariff", env={**env, "OCTOPUS_API_KEY": "sk_live_wrongkey00000000000000"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the Octopus API refused the key (HTTP 401: Invalid API key.) — check "
        "OCTOPUS_API_KEY (Octopus account > Personal details > API access)"
    ]
    assert "wrongkey" not in result.output


def test_an_api_failure_is_one_line_and_exit_1(sim: tuple[SimHomeMini, dict[str, str]]) -> None:
    the_sim, env = sim
    the_sim.rest_errors = 100
    result = invoke("tariff", env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the Octopus API answered HTTP 503 — usually transient; octomon retries"
    ]


def test_since_needs_influxdb(
    sim: tuple[SimHomeMini, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env = sim
    set_clock(monkeypatch, ManualClock(datetime(2026, 12, 7, 12, tzinfo=timezone.utc)))
    result = invoke("tariff", "--since", "2026-11-01", env=env)
    assert result.exit_code == 2
    assert "INFLUXDB_URL is required" in result.output
    bad = invoke("tariff", "--since", "1st of May", env=env)
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: --since '1st of May' is not a date (YYYY-MM-DD, a UK day)"


def test_run_exits_2_on_a_wrong_key(sim: tuple[SimHomeMini, dict[str, str]]) -> None:
    _, env = sim
    result = invoke("run", "--once", env={**env, "OCTOPUS_API_KEY": "sk_live_wrongkey000000000"})
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "error: authentication failed: the Octopus API said KT-CT-1139: Authentication failed. "
        "— check OCTOPUS_API_KEY (Octopus account > Personal details > API access)"
    )


@pytest.mark.parametrize(
    ("now", "half_hours"),
    [  # today's prices end at 23:00 UK until tomorrow's are published at 16:00 UK
        (datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc), 46),
        (datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc), 48),
        (datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc), 46),  # 10:00 BST
        (datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc), 48),  # 17:00 BST
        (datetime(2026, 10, 25, 17, 0, tzinfo=timezone.utc), 50),  # a 25-hour UK day
    ],
    ids=["10h-GMT", "17h-GMT", "10h-BST", "17h-BST", "25h-day"],
)
def test_a_narrow_terminal_gets_a_sparkline_per_day(
    now: datetime, half_hours: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(now)
    set_clock(monkeypatch, clock)
    the_sim = SimHomeMini(clock=clock)
    with SimServer(the_sim) as server:
        point_at_sim(monkeypatch, the_sim, server)
        result = invoke("tariff", env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sparks = [
        line.strip() for line in lines if line.strip() and set(line.strip()) <= set("▁▂▃▄▅▆▇█|")
    ]
    assert sparks, result.output
    assert sparks[0].count("|") == 1  # the current half-hour is marked
    assert len(sparks[0]) == half_hours + 1  # every published half-hour of today, and the mark
    assert any(line.strip().startswith("min ") and " max " in line for line in lines)
    assert not any(">" in line for line in lines)  # no grid
