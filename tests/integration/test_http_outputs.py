"""/metrics, /health and /ready (SPEC §13) served by the monitor in-process, against the
simulator over real HTTP on one injected clock; /metrics read with prometheus_client's
own parser, and scraped by a real Prometheus where Debian's is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from octomon.daemon.monitor import Monitor
from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_readings, sim_settings, started_monitor
from tests.helpers.services import free_port

pytest.importorskip("prometheus_client", reason="the octomon[prometheus] extra is not installed")

T0 = datetime(2026, 11, 27, 17, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def served(
    tmp_path: Path, sim: SimHomeMini, server: SimServer, clock: ManualClock
) -> Iterator[tuple[Monitor, str]]:
    port = free_port()
    settings = sim_settings(
        sim, server, tmp_path / "cache", octopus_gas="off", http_listen=f"127.0.0.1:{port}"
    )
    monitor = started_monitor(settings, clock)
    try:
        yield monitor, f"http://127.0.0.1:{port}"
    finally:
        monitor.close(clock())


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def newest(cache_dir: Path) -> Reading:
    readings = cached_readings(cache_dir)
    return readings[max(readings)][0]


@pytest.mark.integration
def test_metrics_health_ready_and_404(
    tmp_path: Path, served: tuple[Monitor, str], clock: ManualClock
) -> None:
    monitor, base = served
    status, _, body = get(base + "/ready")
    assert status == 503 and json.loads(body)["reason"] == "no good cycle yet"
    status, ctype, body = get(base + "/health")
    assert (status, ctype, json.loads(body)["status"]) == (200, "application/json", "ok")
    assert get(base + "/nothing-here")[0] == 404
    assert get(base + "/metricsx")[0] == 404

    for _ in range(3):
        clock.now += timedelta(seconds=60)
        assert monitor.cycle(clock.now).ok
    status, ctype, text = get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    got = samples(text)
    r = newest(tmp_path / "cache")
    dev = (("device_id", r.device_id), ("fuel", "electricity"))
    assert got[("octomon_demand_watts", dev)] == float(Decimal(str(r.demand)) * 1000)
    assert got[("octomon_consumption_kwh", dev)] == r.consumption
    assert got[("octomon_last_reading_timestamp_seconds", dev)] == r.read_at.timestamp()
    stored = sum(len(v) for v in cached_readings(tmp_path / "cache").values())
    first = got[("octomon_readings_stored_total", (("fuel", "electricity"),))]
    assert first == stored > 0
    assert got[("octomon_cycles_total", (("outcome", "ok"),))] == 3
    assert got[("octomon_api_calls_budget", ())] == 75
    assert got[("octomon_api_calls_last_hour", ())] == monitor.budget.calls_last_hour(clock.now)
    assert got[("octomon_cache_readings", ())] == monitor.writer.backlog  # local mode: all of them
    assert any(name == "process_cpu_seconds_total" for name, _ in got)
    assert get(base + "/ready")[0] == 200

    sim_clock_step = 120  # new readings for the next cycle
    clock.now += timedelta(seconds=sim_clock_step)
    assert monitor.cycle(clock.now).ok
    again = samples(get(base + "/metrics")[2])
    assert again[("octomon_readings_stored_total", (("fuel", "electricity"),))] > first

    # /ready: the rule of `status --check`, 3 intervals + 60 s after the last good cycle.
    clock.now += timedelta(seconds=3 * 60 + 60)
    assert get(base + "/ready")[0] == 200
    clock.now += timedelta(seconds=1)
    status, _, body = get(base + "/ready")
    assert status == 503 and "241 s ago" in json.loads(body)["reason"]
    assert monitor.cycle(clock.now).ok
    assert get(base + "/ready")[0] == 200
    assert monitor.status is not None and monitor.status.outputs is not None
    assert monitor.status.outputs["http"] == f"serving {base}/metrics"


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: octomon
    static_configs:
      - targets: ["{target}"]
"""


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_prometheus_scrapes_octomon(
    tmp_path: Path, served: tuple[Monitor, str], clock: ManualClock
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:  # optional even in CI (.ci/run installs it where Debian has it)
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    monitor, base = served
    for _ in range(2):
        clock.now += timedelta(seconds=60)
        assert monitor.cycle(clock.now).ok
    want = float(Decimal(str(newest(tmp_path / "cache").demand)) * 1000)
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(target=base.removeprefix("http://")))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        query = urllib.parse.urlencode({"query": "octomon_demand_watts"})
        result: list[Any] = []
        deadline = time.monotonic() + 60
        while not result and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=5
                ) as r:
                    result = json.loads(r.read())["data"]["result"]
            except OSError:
                continue
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert result[0]["metric"]["fuel"] == "electricity"
        assert float(result[0]["value"][1]) == want
    finally:
        proc.terminate()
        proc.wait(20)
