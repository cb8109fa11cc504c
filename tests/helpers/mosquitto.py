"""A real Mosquitto broker on loopback for the MQTT tests, and a subscriber that keeps
every message it sees (retained ones included).

``stop()`` then ``start()`` on the same port is a real outage and recovery.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.services import free_port, need_binary


class Mosquitto:
    def __init__(
        self,
        work: Path,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.tls = tls  # (certificate, key): an mqtts:// listener
        self.binary = need_binary("mosquitto")
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.user = "octomon" if password else None
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.work / "mosquitto.log"

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false"]
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot read passwd
        if self.password:
            pwfile = self.work / "passwd"
            pwfile.write_text("")
            subprocess.run(
                [need_binary("mosquitto_passwd"), "-b", str(pwfile), "octomon", self.password],
                check=True,
                capture_output=True,
            )
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.work / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Mosquitto:
        conf = self._config()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextmanager
def mosquitto(
    work: Path, password: str | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[Mosquitto]:
    broker = Mosquitto(work, password=password, tls=tls).start()
    try:
        yield broker
    finally:
        broker.stop()


class Watcher:
    """A paho subscriber to ``#``: the newest message (and whether retained) per topic."""

    def __init__(self, broker: Mosquitto) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: dict[str, tuple[bytes, bool]] = {}
        self.history: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-watcher")
        if broker.user:
            self.client.username_pw_set(broker.user, broker.password)
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages[msg.topic] = (bytes(msg.payload), bool(msg.retain))
            self.history.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(
        self, check: Callable[[dict[str, tuple[bytes, bool]]], bool], timeout: float = 20
    ) -> dict[str, tuple[bytes, bool]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; messages: {sorted(self.messages)}")
                self._cond.wait(left)
            return dict(self.messages)

    def json(self, topic: str) -> Any:
        return json.loads(self.messages[topic][0])

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(broker: Mosquitto, topic_filter: str = "#", settle: float = 1.0) -> dict[str, bytes]:
    """What a new subscriber receives as retained, right now (a fresh connection)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: dict[str, bytes] = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if broker.user:
        client.username_pw_set(broker.user, broker.password)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        if msg.retain:
            got[msg.topic] = bytes(msg.payload)

    client.on_connect = lambda c, *a: (c.subscribe(topic_filter, qos=1), done.set())
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    done.wait(5)
    time.sleep(settle)
    client.loop_stop()
    client.disconnect()
    return got
