"""`octomon status` and `status --check`: what a cron job or Docker's HEALTHCHECK sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typer.testing import CliRunner

from octomon.cli import app
from octomon.daemon.status import Status

runner = CliRunner()


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def write_status(cache_dir: Path, *, good_ago: float | None, interval: int = 60) -> Status:
    cache_dir.mkdir(parents=True, exist_ok=True)
    status = Status(
        started_at=now() - timedelta(hours=2),
        poll_interval=interval,
        call_budget=75,
        mode="cache",
        last_cycle_at=now() - timedelta(seconds=5),
        last_good_cycle_at=None if good_ago is None else now() - timedelta(seconds=good_ago),
        last_reading_at=now() - timedelta(seconds=40),
        last_demand_kw=0.624,
        cache_backlog=1234,
        calls_last_hour=61,
        stored_this_session=4321,
        last_error="InfluxDB unreachable: connection refused",
        last_alert="InfluxDB unreachable: caching readings",
        pid=os.getpid(),
    )
    status.write(cache_dir)
    return status


def cache_dir() -> Path:
    return Path(os.environ["CACHE_DIR"])


def test_status_shows_every_field() -> None:
    write_status(cache_dir(), good_ago=30)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "healthy" in out and "unhealthy" not in out
    assert "cache" in out
    assert "1,234 readings" in out
    assert "61 in the last hour (budget 75)" in out
    assert "0.624 kW" in out
    assert "4,321 readings" in out
    assert "InfluxDB unreachable: connection refused" in out
    assert f"pid {os.getpid()} (running)" in out


def test_check_is_0_within_three_intervals_plus_60_s() -> None:
    write_status(cache_dir(), good_ago=3 * 60 + 50)
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("healthy: the last good cycle was")


def test_check_is_1_when_the_last_good_cycle_is_too_old() -> None:
    write_status(cache_dir(), good_ago=3 * 60 + 70)
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 1
    assert "unhealthy: the last good cycle was 4 min ago (limit 240 s)" in result.output
    assert "connection refused" in result.output  # the last error is the hint
    assert "Traceback" not in result.output


def test_check_uses_the_daemons_own_interval() -> None:
    write_status(cache_dir(), good_ago=600, interval=300)  # limit 3 × 300 + 60 = 960 s
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 0
    assert result.output == "healthy: the last good cycle was 10 min ago\n"


def test_check_is_1_before_any_good_cycle() -> None:
    write_status(cache_dir(), good_ago=None)
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 1
    assert "no good cycle yet" in result.output


def test_no_status_file_is_exit_1_with_a_clear_line() -> None:
    for args in (["status"], ["status", "--check"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "error: no daemon status in" in result.output
        assert "is `octomon run` running with this CACHE_DIR?" in result.output
        assert "Traceback" not in result.output
    assert not cache_dir().exists()  # validation never creates anything


def test_json_output() -> None:
    write_status(cache_dir(), good_ago=30)
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["healthy"] is True
    assert data["mode"] == "cache" and data["cache_backlog"] == 1234
    assert data["last_good_cycle_at"].endswith("Z")


def test_status_validates_only_cache_dir() -> None:
    write_status(cache_dir(), good_ago=30)
    env = {"OCTOPUS_MAX_CALLS_PER_HOUR": "999", "INFLUXDB_URL": "not a url"}
    assert runner.invoke(app, ["status", "--check"], env=env).exit_code == 0
    not_a_dir = cache_dir().parent / "a-file"
    not_a_dir.write_text("x")
    bad = runner.invoke(app, ["status"], env={"CACHE_DIR": str(not_a_dir)})
    assert bad.exit_code == 2
    assert "CACHE_DIR" in bad.output and "not a directory" in bad.output


def test_status_check_is_quick_and_imports_nothing_heavy() -> None:
    write_status(cache_dir(), good_ago=30)
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from octomon.cli import main\n"
        "sys.argv = ['octomon', 'status', '--check']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = [m for m in ('requests', 'influxdb_client', 'questionary') if m in sys.modules]\n"
        "print('RESULT', code, heavy)\n"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    elapsed = time.perf_counter() - started
    assert "RESULT 0 []" in out.stdout, out.stdout + out.stderr
    assert elapsed < 5


def test_status_shows_the_price_now() -> None:
    status = write_status(cache_dir(), good_ago=10)
    status.last_demand_kw, status.unit_rate = 0.56, 0.245
    status.tariff_code = "E-1R-AGILE-24-10-01-C"
    status.write(cache_dir())
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    price = "24.5 p/kWh · 13.7 p/h at this demand (E-1R-AGILE-24-10-01-C)"
    assert f"price            {price}" in result.output
    data = json.loads(runner.invoke(app, ["status", "--json"]).output)
    assert data["unit_rate"] == 0.245 and data["tariff_code"] == "E-1R-AGILE-24-10-01-C"
