"""`octomon reconcile`: what a user sees, against the simulator over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from octomon.uktime import day_bounds, uk_day
from tests.helpers.cli import point_at_sim, set_clock
from tests.helpers.clock import ManualClock, uk_today_at
from tests.helpers.http_stub import bad_gateway
from tests.helpers.tally import store_home_mini

UTC = timezone.utc


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, SimServer]]:
    """The simulator and the command on one clock at noon UK today (yesterday settled)."""
    clock = ManualClock(uk_today_at(12))
    set_clock(monkeypatch, clock)
    home = SimHomeMini(clock=clock)
    with SimServer(home) as server:
        point_at_sim(monkeypatch, home, server)
        yield home, server


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["reconcile", *args])


def test_per_uk_day_settled_home_mini_coverage_and_a_second_run_costs_nothing(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, _ = sim
    today = uk_day(home.clock())
    bad = home.settled.bad_day
    assert bad == today - timedelta(days=2)
    store_home_mini(home, today - timedelta(days=3), today - timedelta(days=1))
    result = invoke("--since", (today - timedelta(days=4)).isoformat(), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (
        out["api_calls"] == 4
    )  # the account, then one request per meter (import, gas, the old gas meter: 404)
    ledger = StateStore(Path(os.environ["CACHE_DIR"])).load().calls
    assert len(ledger) == 4 == len(home.rest.calls)  # every request in the shared ledger
    days = {d["day"]: d for d in out["days"]}
    assert list(days) == [(today - timedelta(days=n)).isoformat() for n in (4, 3, 2, 1)]
    assert days[(today - timedelta(days=4)).isoformat()]["tallied"] is False
    for n in (3, 2, 1):
        d = days[(today - timedelta(days=n)).isoformat()]
        assert d["settled"] is True and d["tallied"] is True and d["half_hours"] == 48
        lo = day_bounds(today - timedelta(days=n))[0]
        settled = sum(home.settled.wh(lo + timedelta(minutes=30 * i)) for i in range(48)) / 1000
        assert d["settled_kwh"] == pytest.approx(settled, abs=1e-9)
        assert d["difference_kwh"] == pytest.approx(settled - d["home_mini_kwh"], abs=1e-9)
        assert d["expected_readings"] == 8640
        assert d["coverage"] == pytest.approx(d["readings"] / 8640)
        assert d["short"] is (n == 2)  # the sim's bad day, and only it
        assert sum(m["readings"] for m in d["missing"]) == 8640 - d["readings"]

    asked = len(home.rest.calls)
    times = []
    for _ in range(3):  # the whole process, start-up included; best of 3 on a busy machine
        started = time.monotonic()
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "octomon",
                "reconcile",
                "--since",
                (today - timedelta(days=4)).isoformat(),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=30,
        )
        times.append(time.monotonic() - started)
        assert again.returncode == 0, again.stderr
    assert min(times) < 1.0, f"{min(times):.2f} s"
    assert len(home.rest.calls) == asked  # from the files kept today: no API call
    lines = again.stdout.splitlines()
    assert lines[0].split() == [
        "UK",
        "day",
        "settled",
        "Home",
        "Mini",
        "difference",
        "coverage",
        "missing",
    ]
    bad_line = next(line for line in lines if f"{bad.day:>2} {bad:%b}" in line)
    assert "← Home Mini short" in bad_line and "readings in" in bad_line
    assert "before octomon's tally began" in lines[1]


def test_yesterday_not_yet_settled_is_marked(sim: tuple[SimHomeMini, SimServer]) -> None:
    home, _ = sim
    home.settled.delay = timedelta(hours=30)  # yesterday is not there yet
    today = uk_day(home.clock())
    result = invoke("--since", (today - timedelta(days=2)).isoformat())
    assert result.exit_code == 0, result.output
    last = result.output.splitlines()[-2]
    yesterday = today - timedelta(days=1)
    assert f"{yesterday.day:>2} {yesterday:%b}" in last and "not yet settled" in last
    out = json.loads(invoke("--json").output)
    assert out["days"][-1]["settled"] is False and out["days"][-1]["settled_kwh"] is None


def test_api_failures_are_one_line_and_exit_1(
    sim: tuple[SimHomeMini, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCTOPUS_API_KEY", "sk_live_wrongkey000000000000")
    result = invoke()
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        result.output.strip()
    ] and result.output.startswith(
        "error: the Octopus API refused the key (HTTP 401: Invalid API key.)"
    )
    assert "wrongkey" not in result.output and "Traceback" not in result.output

    with bad_gateway() as url:
        monkeypatch.setenv("OCTOPUS_REST_URL", url)
        result = invoke()
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: the Octopus API answered HTTP 502")


def test_a_bad_date_is_a_usage_error(sim: tuple[SimHomeMini, SimServer]) -> None:
    result = invoke("--since", "30 Nov")
    assert result.exit_code == 2
    assert result.output.strip() == "error: --since '30 Nov' is not a date (YYYY-MM-DD, a UK day)"
