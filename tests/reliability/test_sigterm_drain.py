"""SIGTERM while the daemon drains a large backlog (SPEC §4.7): the drain stops between
two batches, exit 0 within 15 s, and a later `sync-cache` delivers every reading."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.store.cache import Cache
from tests.helpers.daemon import OCTOMON, Daemon, daemon_env
from tests.helpers.proxy import ForwardingProxy
from tests.helpers.services import VictoriaMetrics

BACKLOG = 200_000
DEVICE = "00-00-00-00-00-00-0B-AC"  # not the simulator's: these are only the backlog


def backlog() -> list[Reading]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [
        Reading(start + timedelta(seconds=10 * i), DEVICE, demand=0.1 + (i % 97) / 100)
        for i in range(BACKLOG)
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_during_a_200k_drain_exits_0_in_time_and_nothing_is_lost(
    tmp_path: Path, victoria: VictoriaMetrics, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    cache_dir = tmp_path / "cache"
    readings = backlog()
    cache = Cache(cache_dir)
    for i in range(0, BACKLOG, 50_000):
        cache.append(readings[i : i + 50_000])
    # InfluxDB (VictoriaMetrics) behind a slow loopback proxy, so that the drain is surely
    # still going 3 s in: 0.15 s a request, 40 requests for the backlog.
    with ForwardingProxy(("127.0.0.1", victoria.port), delay=0.15) as proxy:
        env = daemon_env(
            sim=the_sim,
            api_url=server.url,
            cache_dir=cache_dir,
            influx_url=f"http://localhost:{victoria.port}",  # via the proxy, by name
            HTTP_PROXY=proxy.url,
            NO_PROXY="127.0.0.1",  # the simulated Octopus API directly
        )
        daemon = Daemon(env, tmp_path / "octomon.log").start()
        try:
            deadline = time.monotonic() + 30
            while len(proxy.seen) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(proxy.seen) >= 3, daemon.output()
            time.sleep(max(0.0, 3.0 - (time.monotonic() - daemon.started_at)))
            assert len(proxy.seen) < BACKLOG // 5000, "the drain had already finished"
            code, took = daemon.term()
        finally:
            daemon.stop_quietly()
    log = daemon.output()
    assert code == 0, log
    assert took < 15, log
    assert Cache(cache_dir).status().readings > 0  # stopped part-way: the rest stays cached

    done = subprocess.run(
        [OCTOMON, "sync-cache"],
        env={**env, "INFLUXDB_URL": victoria.url, "HTTP_PROXY": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = {
        t
        for labels, t, _ in victoria.points(
            "energy_consumption_demand", wait_for=BACKLOG, timeout=60
        )
        if labels.get("device_id") == DEVICE
    }
    assert got == {int(r.read_at.timestamp()) for r in readings}
