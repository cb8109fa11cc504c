"""MQTT with Home Assistant discovery (SPEC §13), on ``MQTT_URL``.

paho-mqtt's own network thread connects, reconnects (1 s doubling to 60 s) and sends; the
daemon only swaps in the newest payloads (:meth:`MqttOutput.update`), which never waits for
the broker: a broker that is away changes nothing in polling or storing. On every connect
the output announces itself ``online`` (retained; the broker's last will says ``offline``
when the process dies), publishes the discovery configs and the newest retained state, and
listens for Home Assistant's own ``online`` to publish the configs again.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from octomon.latch import Latch
from octomon.publish.feed import View, watts
from octomon.readings import format_time

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger(__name__)

QOS = 1
RECONNECT_FIRST, RECONNECT_CAP = 1, 60  # seconds
CLOSE_WAIT = 2.0  # seconds a clean stop waits for "offline" to reach the broker
MODEL = "Home Mini"


class Sensor(NamedTuple):
    key: str
    name: str
    field: str  # in the state message
    unit: str
    device_class: str | None  # None: Home Assistant has none for it (a price per kWh)
    state_class: str


# Home Assistant's pairs: energy in kWh (total_increasing: the Energy dashboard takes it),
# power in W (measurement), monetary in GBP (total), gas volume in m³; gas *energy* is an
# `energy` sensor, as Home Assistant allows no kWh for `gas`.
ELECTRICITY = (
    Sensor("demand", "Demand", "demand_w", "W", "power", "measurement"),
    Sensor("consumption", "Energy", "consumption_kwh", "kWh", "energy", "total_increasing"),
    Sensor(
        "consumption_today",
        "Energy today",
        "consumption_today_kwh",
        "kWh",
        "energy",
        "total_increasing",
    ),
    Sensor("cost_today", "Cost today", "cost_today_gbp", "GBP", "monetary", "total"),
    Sensor("unit_rate", "Unit rate", "unit_rate_gbp_per_kwh", "GBP/kWh", None, "measurement"),
)
GAS = (
    Sensor("consumption", "Gas energy", "consumption_kwh", "kWh", "energy", "total_increasing"),
    Sensor(
        "consumption_today",
        "Gas energy today",
        "consumption_today_kwh",
        "kWh",
        "energy",
        "total_increasing",
    ),
    Sensor("volume_today", "Gas volume today", "volume_today_m3", "m³", "gas", "total_increasing"),
)


def topic_part(device_id: str) -> str:
    """A device id as one topic level (no '/', '+', '#')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def state_payloads(view: View) -> dict[str, dict[str, Any]]:
    """{device id: state message} for the newest stored reading of each fuel."""
    out: dict[str, dict[str, Any]] = {}
    e = view.electricity
    if e is not None:
        out[e.device_id] = {
            "read_at": format_time(e.read_at),
            "demand_w": watts(e.demand) if e.demand is not None else None,
            "consumption_kwh": e.consumption,
            "cost_today_gbp": view.cost_today_gbp,
            "consumption_today_kwh": view.today_kwh.get("electricity"),
            "unit_rate_gbp_per_kwh": view.unit_rate,
        }
    g = view.gas
    if g is not None:
        out[g.device_id] = {
            "read_at": format_time(g.read_at),
            "consumption_kwh": g.consumption,
            "consumption_today_kwh": view.today_kwh.get("gas"),
            "volume_today_m3": view.gas_today_m3,
        }
    return out


def discovery(
    device_id: str, sensors: tuple[Sensor, ...], prefix: str, ha_prefix: str
) -> dict[str, dict[str, Any]]:
    """{topic: config} for one device's sensors."""
    node = f"octomon_{topic_part(device_id)}"
    out = {}
    for s in sensors:
        config: dict[str, Any] = {
            "name": s.name,
            "unique_id": f"{node}_{s.key}",
            "state_topic": f"{prefix}/{topic_part(device_id)}/state",
            "value_template": f"{{{{ value_json.{s.field} }}}}",
            "unit_of_measurement": s.unit,
            "state_class": s.state_class,
            "availability_topic": f"{prefix}/status",
            "device": {
                "identifiers": [node],
                "name": "Octopus Home Mini",
                "manufacturer": "Octopus Energy",
                "model": MODEL,
            },
        }
        if s.device_class is not None:
            config["device_class"] = s.device_class
        out[f"{ha_prefix}/sensor/{node}/{s.key}/config"] = config
    return out


class MqttOutput:
    name = "mqtt"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "octomon",
        ha_prefix: str = "homeassistant",
        ca_cert: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or ""
        self.port = parts.port or (8883 if self.tls else 1883)
        self.where = f"{parts.scheme}://{self.host}:{self.port}"  # never the credentials
        self.prefix, self.ha_prefix = prefix, ha_prefix
        self.status_topic = f"{prefix}/status"
        self._lock = threading.Lock()
        self._states: dict[str, bytes] = {}  # topic -> the newest state message
        self._configs: dict[str, bytes] = {}  # topic -> discovery config
        self._seq = -1
        self._connected = False
        self._problem: str | None = None
        self._latch = Latch(log)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"octomon-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
        )
        if parts.username is not None:
            password = unquote(parts.password) if parts.password is not None else None
            client.username_pw_set(unquote(parts.username), password)
        if self.tls:
            client.tls_set(ca_certs=str(ca_cert) if ca_cert else None)  # verification on
        client.will_set(self.status_topic, "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(RECONNECT_FIRST, RECONNECT_CAP)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> MqttOutput:
        assert settings.mqtt_url
        out = cls(
            settings.mqtt_url,
            prefix=settings.mqtt_topic_prefix,
            ha_prefix=settings.ha_discovery_prefix,
            ca_cert=settings.mqtt_ca_cert,
        )
        out.start()
        return out

    def start(self) -> None:
        """Connect in the background: a broker that is away is retried, never waited for."""
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()

    # --- the daemon's side -------------------------------------------------------------------

    def update(self, view: View) -> None:
        if view.seq == self._seq:
            return
        self._seq = view.seq
        states, configs = {}, {}
        for device_id, payload in state_payloads(view).items():
            states[f"{self.prefix}/{topic_part(device_id)}/state"] = _encode(payload)
            sensors = GAS if view.gas is not None and device_id == view.gas.device_id else None
            found = discovery(device_id, sensors or ELECTRICITY, self.prefix, self.ha_prefix)
            configs.update({t: _encode(c) for t, c in found.items()})
        with self._lock:
            new_configs = {t: c for t, c in configs.items() if self._configs.get(t) != c}
            self._configs.update(configs)
            self._states.update(states)
            connected = self._connected
        if connected:
            self._send(new_configs)
            self._send(states)

    def state(self) -> str:
        if self._connected:
            return f"connected to {self.where}"
        if self._problem:
            return f"not connected to {self.where} ({self._problem}); retrying"
        return f"connecting to {self.where}"

    def close(self) -> None:
        """A clean stop: ``offline`` (retained), then disconnect."""
        try:
            if self._connected:
                info = self.client.publish(self.status_topic, "offline", qos=QOS, retain=True)
                info.wait_for_publish(CLOSE_WAIT)
                self.client.disconnect()
        finally:
            self.client.loop_stop()

    # --- paho's network thread -----------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._problem = str(reason)
            self._latch.fail("MQTT broker %s refused the connection (%s)", self.where, reason)
            return
        self._problem = None
        client.publish(self.status_topic, "online", qos=QOS, retain=True)
        client.subscribe(f"{self.ha_prefix}/status", qos=QOS)
        with self._lock:
            self._connected = True
            configs, states = dict(self._configs), dict(self._states)
        self._send(configs)
        self._send(states)
        self._latch.ok()
        log.info("MQTT: connected to %s", self.where)  # a change of state: logged each time

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._problem = "unreachable"
        self._latch.fail("MQTT: cannot reach %s; retrying in the background", self.where)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._lock:
            was, self._connected = self._connected, False
        if was and reason.is_failure:
            self._problem = str(reason)
            self._latch.fail("MQTT: lost %s (%s); retrying in the background", self.where, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == f"{self.ha_prefix}/status" and msg.payload.strip() == b"online":
            with self._lock:
                configs, states = dict(self._configs), dict(self._states)
            log.debug("MQTT: Home Assistant is online: discovery published again")
            self._send(configs)
            self._send(states)

    def _send(self, messages: dict[str, bytes]) -> None:
        for topic, payload in messages.items():
            self.client.publish(topic, payload, qos=QOS, retain=True)


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def check(settings: Settings, timeout: float = 10.0) -> str:
    """``verify-config --online``: connect, publish to ``{prefix}/test``, disconnect."""
    from octomon.errors import OctomonError

    out = MqttOutput(
        settings.mqtt_url or "",
        prefix=settings.mqtt_topic_prefix,
        ha_prefix=settings.ha_discovery_prefix,
        ca_cert=settings.mqtt_ca_cert,
    )
    answered = threading.Event()
    result: list[str] = []

    def on_connect(client: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        result.append("" if not reason.is_failure else str(reason))
        answered.set()

    client = out.client
    client.on_connect = on_connect
    client.on_connect_fail = lambda c, u: answered.set()
    client.on_disconnect = None
    client.on_message = None
    try:
        client.connect_timeout = timeout
        client.connect(out.host, out.port, keepalive=30)
        client.loop_start()
        if not answered.wait(timeout):
            raise OctomonError(f"MQTT broker {out.where}: no answer within {timeout:g} s")
        if not result or result[0]:
            reason = result[0] if result else "connection failed"
            raise OctomonError(
                f"MQTT broker {out.where} refused the connection ({reason})",
                "check the user and password in MQTT_URL",
            )
        topic = f"{out.prefix}/test"
        info = client.publish(topic, "octomon verify-config", qos=QOS)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise OctomonError(f"MQTT broker {out.where}: the test message was not acknowledged")
        return f"connected to {out.where}, published to {topic}"
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise OctomonError(
            f"MQTT broker {out.where}: cannot connect ({redact_reason(exc)})",
            "is the broker running, and MQTT_URL right?",
        ) from None
    finally:
        client.disconnect()
        client.loop_stop()


def redact_reason(exc: BaseException) -> str:
    from octomon.redact import scrub

    return scrub(getattr(exc, "strerror", None) or str(exc))
