"""MQTT against a real Mosquitto, fed by the monitor in-process (the simulator over real
HTTP, one injected clock): the state equals the newest stored reading, the discovery
configs are what Home Assistant accepts, and they come back when Home Assistant does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from octomon.daemon.monitor import Monitor
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.clock import ManualClock
from tests.helpers.daemon import cached_readings, sim_settings, started_monitor
from tests.helpers.mosquitto import Mosquitto, Watcher, mosquitto, retained

pytest.importorskip("paho.mqtt", reason="the octomon[mqtt] extra is not installed")

T0 = datetime(2026, 11, 27, 17, 0, 0, tzinfo=timezone.utc)

# Home Assistant's documented sensor device classes: the units each accepts and the state
# classes it allows (developers.home-assistant.io, "Sensor entity"; the MQTT sensor's
# discovery keys from home-assistant.io/integrations/sensor.mqtt).
HA_UNITS = {
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal"},
    "gas": {"L", "m³", "ft³", "CCF", "MCF"},
    "monetary": None,  # an ISO 4217 currency
}
HA_STATE_CLASSES = {
    "power": {"measurement"},
    "energy": {"total", "total_increasing"},
    "gas": {"total", "total_increasing"},
    "monetary": {"total"},
    None: {"measurement", "total", "total_increasing"},
}
SPEC_KEYS = {
    "name",
    "unique_id",
    "state_topic",
    "value_template",
    "unit_of_measurement",
    "state_class",
    "availability_topic",
    "device",
}


def check_ha_config(topic: str, config: dict[str, object]) -> None:
    assert set(config) >= SPEC_KEYS, (topic, SPEC_KEYS - set(config))
    dc = config.get("device_class")
    assert dc in HA_STATE_CLASSES, (topic, dc)
    assert config["state_class"] in HA_STATE_CLASSES[dc], (topic, dc, config["state_class"])
    units = HA_UNITS.get(dc) if isinstance(dc, str) else None
    if units is not None:
        assert config["unit_of_measurement"] in units, (topic, dc, config["unit_of_measurement"])
    if dc == "monetary":
        assert config["unit_of_measurement"] == "GBP"
    device = config["device"]
    assert isinstance(device, dict)
    assert isinstance(device["identifiers"], list) and device["identifiers"]
    assert device["name"] == "Octopus Home Mini"
    assert device["manufacturer"] and device["model"]
    assert str(config["value_template"]).startswith("{{ value_json.")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path / "mqtt") as b:
        yield b


def rig(
    tmp_path: Path, sim: SimHomeMini, server: SimServer, clock: ManualClock, mqtt_url: str
) -> Monitor:
    settings = sim_settings(sim, server, tmp_path / "cache", octopus_gas="off", mqtt_url=mqtt_url)
    return started_monitor(settings, clock)


def newest_stored(cache_dir: Path):  # type: ignore[no-untyped-def]
    readings = cached_readings(cache_dir)
    return readings[max(readings)][0]


@pytest.mark.integration
def test_state_is_the_newest_stored_reading_and_discovery_is_valid(
    tmp_path: Path, broker: Mosquitto, sim: SimHomeMini, server: SimServer, clock: ManualClock
) -> None:
    watcher = Watcher(broker)
    monitor = rig(tmp_path, sim, server, clock, broker.url)
    try:
        for _ in range(3):
            clock.now += timedelta(seconds=60)
            assert monitor.cycle(clock.now).ok
        device = monitor.device_id
        assert device
        state_topic = f"octomon/{device}/state"
        newest = newest_stored(tmp_path / "cache")  # local mode: the cache is the store
        want_w = float(Decimal(str(newest.demand)) * 1000)

        def current(m: dict[str, tuple[bytes, bool]]) -> bool:
            if state_topic not in m:
                return False
            return json.loads(m[state_topic][0])["read_at"] == newest.read_at.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )

        msgs = watcher.wait(current)
        state = json.loads(msgs[state_topic][0])
        assert msgs[state_topic][1] or state_topic in retained(broker, state_topic)
        assert state["demand_w"] == want_w
        assert state["consumption_kwh"] == newest.consumption
        assert state["consumption_today_kwh"] > 0
        assert set(state) == {
            "read_at",
            "demand_w",
            "consumption_kwh",
            "cost_today_gbp",
            "consumption_today_kwh",
            "unit_rate_gbp_per_kwh",
        }
        kept = retained(broker)
        assert kept["octomon/status"] == b"online"
        assert json.loads(kept[state_topic]) == state
        configs = {
            t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/sensor/")
        }
        keys = {t.split("/")[3] for t in configs}
        assert keys == {"demand", "consumption", "consumption_today", "cost_today", "unit_rate"}
        for topic, config in configs.items():
            assert topic.startswith(f"homeassistant/sensor/octomon_{device}/")
            check_ha_config(topic, config)
            assert config["state_topic"] == state_topic
            assert config["availability_topic"] == "octomon/status"
        energy = configs[f"homeassistant/sensor/octomon_{device}/consumption/config"]
        assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
            "energy",
            "total_increasing",
            "kWh",
        )

        # Home Assistant restarts: its discovery messages are gone until it says "online".
        config_topic = f"homeassistant/sensor/octomon_{device}/demand/config"
        watcher.client.publish(config_topic, b"", qos=1, retain=True).wait_for_publish(5)
        watcher.wait(lambda m: m.get(config_topic, (b"x",))[0] == b"")
        watcher.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        watcher.wait(lambda m: m.get(config_topic, (b"",))[0] != b"")
        assert json.loads(retained(broker, config_topic)[config_topic]) == configs[config_topic]
        assert monitor.status is not None and monitor.status.outputs is not None
        assert monitor.status.outputs["mqtt"] == f"connected to mqtt://127.0.0.1:{broker.port}"
    finally:
        monitor.close(clock.now)
        watcher.close()
    assert retained(broker, "octomon/status")["octomon/status"] == b"offline"  # a clean stop


@pytest.mark.integration
def test_gas_prices_and_todays_figures_come_from_the_tally_and_the_tariffs(
    tmp_path: Path, broker: Mosquitto, sim: SimHomeMini, server: SimServer, clock: ManualClock
) -> None:
    from octomon.billing.costs import IMPORT, day_cost
    from octomon.billing.settled import SettledData
    from octomon.billing.tariffs import TariffCache, pricing
    from octomon.readings import calorific, volume_m3
    from octomon.store.tally import GAS, Tally, half_hour_of
    from octomon.uktime import uk_day, uk_midnight
    from tests.helpers.daemon import cached_gas

    settings = sim_settings(
        sim, server, tmp_path / "cache", poll_interval_seconds=300, mqtt_url=broker.url
    )
    monitor = started_monitor(settings, clock)
    watcher = Watcher(broker)
    closed = False
    try:
        for _ in range(24):  # two hours: poll cycles, and the jobs (tariffs, gas) when due
            while monitor.jobs_due(clock.now):
                monitor.run_jobs(clock.now)
            assert monitor.cycle(clock.now).ok
            clock.now += timedelta(seconds=300)
        clock.now -= timedelta(seconds=300)
        elec, gas_id = monitor.device_id, sim.gas_device_id
        newest = newest_stored(tmp_path / "cache")
        gas_cached = cached_gas(tmp_path / "cache")
        gas_newest = gas_cached[max(gas_cached)][0]
        stamp = newest.read_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        e_topic, g_topic = f"octomon/{elec}/state", f"octomon/{gas_id}/state"
        watcher.wait(
            lambda m: (
                e_topic in m
                and g_topic in m
                and json.loads(m[e_topic][0])["read_at"] == stamp
                and json.loads(m[g_topic][0])["read_at"]
                == gas_newest.read_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        )
        state, gas = watcher.json(e_topic), watcher.json(g_topic)
        # The stop's save: the tally's newest readings ride in state.json, which waits for
        # the hold between saves (SPEC §4.9); the published figures already hold them.
        monitor.close(clock.now)
        closed = True

        tally = Tally(tmp_path / "cache").load()
        midnight = uk_midnight(uk_day(clock.now))
        today_e = sum(h.micro_kwh for h in tally.half_hours(since=midnight)) / 1e6
        today_g = sum(h.micro_kwh for h in tally.half_hours(GAS, since=midnight)) / 1e6
        cached = TariffCache(tmp_path / "cache", pricing(settings)).load()
        assert cached is not None
        price = cached.book.price_at(half_hour_of(clock.now))
        assert price is not None
        cost = day_cost(uk_day(clock.now), IMPORT, cached.book, SettledData(), tally).total
        assert cost is not None

        assert state["consumption_today_kwh"] == pytest.approx(today_e, abs=1e-9) and today_e > 0
        assert state["unit_rate_gbp_per_kwh"] == float(price.unit_rate)
        assert state["cost_today_gbp"] == float(cost)
        assert gas["consumption_kwh"] == gas_newest.consumption
        assert gas["consumption_today_kwh"] == pytest.approx(today_g, abs=1e-9) and today_g > 0
        cv = calorific(settings.gas_calorific_value)
        want_m3 = float(volume_m3(Decimal(str(gas["consumption_today_kwh"])), cv))
        assert gas["volume_today_m3"] == want_m3

        kept = retained(broker, f"homeassistant/sensor/octomon_{gas_id}/#")
        configs = {t: json.loads(p) for t, p in kept.items()}
        assert {t.split("/")[3] for t in configs} == {
            "consumption",
            "consumption_today",
            "volume_today",
        }
        for topic, config in configs.items():
            check_ha_config(topic, config)
            assert config["state_topic"] == g_topic
    finally:
        if not closed:
            monitor.close(clock.now)
        watcher.close()
