"""`octomon test-influx` as a whole process: live servers, a dead port, wrong settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.helpers.influx_emulator import InfluxEmulator
from tests.helpers.services import VictoriaMetrics, free_port

TOKEN = "test-influx-token-0123456789"


def run(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "octomon", "test-influx", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, time.monotonic() - started


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        yield emulator


def env_for(url: str, **kw: str) -> dict[str, str]:
    return {
        "INFLUXDB_URL": url,
        "INFLUXDB_TOKEN": kw.get("token", TOKEN),
        "INFLUXDB_ORG": kw.get("org", "home"),
        "INFLUXDB_BUCKET": kw.get("bucket", "energy"),
    }


@pytest.mark.integration
def test_live_victoriametrics_exits_0(victoria: VictoriaMetrics) -> None:
    proc, _ = run(env_for(victoria.url))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "InfluxDB ok — reachable; org and bucket cannot be verified on this server"
    )
    proc, _ = run(env_for(victoria.url), "--write-test-point")
    assert proc.returncode == 0, proc.stderr
    assert "wrote a test point (octomon_test)" in " ".join(proc.stdout.split())
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.integration
def test_live_influxdb_v2_is_verified(influx: InfluxEmulator) -> None:
    proc, _ = run(env_for(influx.url))
    assert proc.returncode == 0, proc.stderr
    assert "token, organisation 'home' and bucket 'energy' verified" in " ".join(
        proc.stdout.split()
    )
    assert influx.writes(None) == []  # nothing written without --write-test-point


@pytest.mark.integration
def test_dead_port_exits_1_quickly_in_one_line() -> None:
    proc, elapsed = run(env_for(f"http://127.0.0.1:{free_port()}"))
    assert proc.returncode == 1
    assert elapsed < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot reach InfluxDB at http://127.0.0.1:")
    assert "connection refused" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_a_silent_server_times_out_within_30_s() -> None:
    import socket

    with socket.socket() as s:  # accepts connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc, elapsed = run(env_for(f"http://127.0.0.1:{s.getsockname()[1]}"))
    assert proc.returncode == 1
    assert elapsed < 30
    assert "timed out" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"token": "wrong-token-9876543210"}, "check INFLUXDB_TOKEN"),
        ({"org": "elsewhere"}, "check INFLUXDB_ORG"),
        ({"bucket": "missing"}, "check INFLUXDB_BUCKET"),
    ],
)
def test_wrong_settings_are_named(
    influx: InfluxEmulator, kw: dict[str, str], expected: str
) -> None:
    proc, _ = run(env_for(influx.url, **kw))
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "wrong-token-9876543210" not in proc.stdout + proc.stderr


def test_without_influxdb_url_exits_2() -> None:
    proc, _ = run({})
    assert proc.returncode == 2
    assert "INFLUXDB_URL is required" in proc.stderr
