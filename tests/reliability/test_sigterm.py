"""SIGTERM in the middle of a cycle (SPEC §4.7): exit 0 within 15 s, state saved,
what was fetched is stored, and nothing is lost across the restart."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from octomon.readings import parse_time
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from tests.helpers.daemon import (
    Daemon,
    cache_files,
    cached_readings,
    compare_db,
    daemon_env,
    expected,
)
from tests.helpers.services import VictoriaMetrics

SLOW = 3.0  # seconds the simulator takes to answer a telemetry request, on demand


class SlowSim:
    """Wraps the sim's request handler: on demand, the first telemetry answer that brings
    a reading newer than the daemon's saved cursor is held for SLOW seconds."""

    def __init__(self, sim: SimHomeMini, cache_dir: Path) -> None:
        self.sim = sim
        self.cache_dir = cache_dir
        self.handle = sim.handle
        self.slow = threading.Event()
        self.in_flight = threading.Event()
        self.held: list[datetime] = []  # readAts in the answer that was held
        sim.handle = self

    def __call__(self, method: str, path: str, auth: str | None, body: bytes) -> Any:
        response = self.handle(method, path, auth, body)
        if self.slow.is_set() and b"smartMeterTelemetry" in body and not self.in_flight.is_set():
            data = json.loads(response.body).get("data") or {}
            held = [parse_time(item["readAt"]) for item in data.get("smartMeterTelemetry") or []]
            cursor = StateStore(self.cache_dir).load().cursor
            if held and cursor is not None and max(held) > cursor:
                self.held = held
                self.in_flight.set()
                time.sleep(SLOW)
        return response


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_mid_cycle_stores_what_was_fetched_and_exits_0(
    tmp_path: Path, victoria: VictoriaMetrics, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    cache_dir = tmp_path / "cache"
    slow = SlowSim(the_sim, cache_dir)
    env = daemon_env(
        sim=the_sim, api_url=server.url, cache_dir=cache_dir, influx_url=victoria.url, poll=2
    )
    daemon = Daemon(env, tmp_path / "octomon.log").start()
    try:
        daemon.wait_status(lambda s: s["stored_this_session"] > 0, what="a first cycle")
        slow.slow.set()
        # The simulator's uploads come 10-60 s late (and now and then minutes): the newest
        # visible reading can stand still for half a minute on a loaded machine.
        assert slow.in_flight.wait(120), "no telemetry answer with a new reading came"
        served_before = len(the_sim.served)
        code, took = daemon.term()
    finally:
        daemon.stop_quietly()
    log = daemon.output()
    assert code == 0, log
    assert took < 15, log
    assert took >= SLOW - 0.5  # it did wait for the request in flight, as it should
    assert "SIGTERM received: stopping" in log
    calls_at_stop = len(the_sim.calls)

    # The answer of the interrupted request was stored (the cache takes it while
    # stopping), the cursor was saved after it, and no further window was fetched.
    assert len(the_sim.served) >= served_before
    state = StateStore(cache_dir).load()
    assert state.cursor == max(expected(the_sim)) == max(slow.held)
    assert max(slow.held) in cached_readings(cache_dir)

    # Restart: the cache drains into the database and nothing the simulator served is lost.
    slow.slow.clear()
    daemon.start()
    try:
        daemon.wait_status(
            lambda s: (
                s["mode"] == "influxdb"
                and s["cache_backlog"] == 0
                and s["last_good_cycle_at"] is not None
            ),
            timeout=30,
            what="the cache drained after the restart",
        )
        code, _ = daemon.term()
    finally:
        daemon.stop_quietly()
    assert code == 0
    assert len(the_sim.calls) > calls_at_stop
    assert cache_files(cache_dir) == []
    compare_db(victoria, expected(the_sim))
