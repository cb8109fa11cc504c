"""The real `octomon run` publishing to a real Mosquitto: ``offline`` after kill -9 (the
broker's last will) and after SIGTERM; a broker that is down at start gets the state once
it comes up, without a restart, while every reading still reaches VictoriaMetrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from octomon.readings import format_time
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.daemon import Daemon, compare_db, daemon_env, expected
from tests.helpers.mosquitto import Mosquitto, Watcher, mosquitto, retained
from tests.helpers.services import VictoriaMetrics

pytest.importorskip("paho.mqtt", reason="the octomon[mqtt] extra is not installed")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini(rate_limit_per_hour=100)
    with SimServer(sim) as server:
        yield sim, server


def status_is(value: bytes):  # type: ignore[no-untyped-def]
    return lambda m: m.get("octomon/status", (b"",))[0] == value


def test_status_is_offline_after_kill9_and_after_sigterm(
    tmp_path: Path, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    with mosquitto(tmp_path / "mqtt") as broker:
        watcher = Watcher(broker)
        env = daemon_env(
            sim=the_sim, api_url=server.url, cache_dir=tmp_path / "cache", MQTT_URL=broker.url
        )
        daemon = Daemon(env, tmp_path / "octomon.log").start()
        try:
            state_topic = f"octomon/{the_sim.device_id}/state"
            watcher.wait(lambda m: status_is(b"online")(m) and state_topic in m, timeout=60)
            daemon.kill9()
            watcher.wait(status_is(b"offline"), timeout=15)  # the last will
            assert retained(broker, "octomon/status") == {"octomon/status": b"offline"}

            daemon.start()
            watcher.wait(status_is(b"online"), timeout=60)
            daemon.wait_status(
                lambda s: (s.get("outputs") or {}).get("mqtt", "").startswith("connected to"),
                what="the MQTT output in status.json",
            )
            code, _ = daemon.term()
            assert code == 0, daemon.output()
            watcher.wait(status_is(b"offline"), timeout=5)  # said by octomon itself
            assert retained(broker, "octomon/status") == {"octomon/status": b"offline"}
        finally:
            daemon.stop_quietly()
            watcher.close()


def test_a_broker_down_at_start_gets_the_state_later_and_nothing_is_lost(
    tmp_path: Path, victoria: VictoriaMetrics, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    broker = Mosquitto(tmp_path / "mqtt")  # not started yet
    env = daemon_env(
        sim=the_sim,
        api_url=server.url,
        cache_dir=tmp_path / "cache",
        influx_url=victoria.url,
        MQTT_URL=broker.url,
    )
    daemon = Daemon(env, tmp_path / "octomon.log").start()
    watcher = None
    try:
        daemon.wait_status(
            lambda s: s["stored_this_session"] > 300 and s["mode"] == "influxdb",
            what="the first window stored in InfluxDB while the broker is down",
        )
        status = daemon.status()
        assert status is not None
        assert not status["outputs"]["mqtt"].startswith("connected"), status["outputs"]
        broker.start()
        watcher = Watcher(broker)
        state_topic = f"octomon/{the_sim.device_id}/state"
        watcher.wait(lambda m: state_topic in m, timeout=120)
        code, _ = daemon.term()
        assert code == 0, daemon.output()
        want = expected(the_sim)
        compare_db(victoria, want)
        state = json.loads(retained(broker, state_topic)[state_topic])
        newest = want[max(want)]
        assert state["read_at"] == format_time(newest.read_at)
        assert newest.demand is not None
        assert state["demand_w"] == float(Decimal(str(newest.demand)) * 1000)
        assert state["consumption_kwh"] == newest.consumption
    finally:
        daemon.stop_quietly()
        if watcher is not None:
            watcher.close()
        broker.stop()
