"""Real services for tests: VictoriaMetrics on loopback, with outage/restart control."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REQUIRE = os.environ.get("OCTOMON_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if REQUIRE:
            pytest.fail(f"{message}, and OCTOMON_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    return path


class VictoriaMetrics:
    """A real VictoriaMetrics on 127.0.0.1 that accepts InfluxDB line protocol.

    ``stop()`` and ``start()`` on the same data directory are a real outage and recovery.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.binary = need_binary("victoria-metrics")
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VictoriaMetrics:
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data_dir}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("VictoriaMetrics did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def export(
        self,
        field: str,
        wait_for: int | None = None,
        timeout: float = 10.0,
        measurement: str = "energy_consumption",
    ) -> dict[int, list[float]]:
        """{unix seconds: [values…]} for ``<measurement>_<field>`` (duplicates kept).

        Polls until at least ``wait_for`` distinct timestamps are visible (or timeout).
        """
        deadline = time.monotonic() + timeout
        while True:
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).read()
            query = urllib.parse.urlencode({"match[]": f"{measurement}_{field}"})
            with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as r:
                body = r.read().decode()
            out: dict[int, list[float]] = {}
            for line in body.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                for value, ts in zip(row["values"], row["timestamps"]):
                    out.setdefault(ts // 1000, []).append(float(value))
            if wait_for is None or len(out) >= wait_for or time.monotonic() > deadline:
                if wait_for is None and not out and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                return out
            time.sleep(0.2)

    def points(
        self, metric: str, wait_for: int = 1, timeout: float = 10.0
    ) -> list[tuple[dict[str, str], int, float]]:
        """Every (labels, unix seconds, value) of ``metric`` at any time (``start=0``),
        e.g. ``energy_tariff_unit_rate``; polls until ``wait_for`` are visible."""
        deadline = time.monotonic() + timeout
        while True:
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).read()
            query = urllib.parse.urlencode({"match[]": metric, "start": "0"})
            with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as r:
                body = r.read().decode()
            out: list[tuple[dict[str, str], int, float]] = []
            for line in body.splitlines():
                if line.strip():
                    row = json.loads(line)
                    labels = {k: v for k, v in row["metric"].items() if k != "__name__"}
                    for value, ts in zip(row["values"], row["timestamps"]):
                        out.append((labels, ts // 1000, float(value)))
            if len(out) >= wait_for or time.monotonic() > deadline:
                return sorted(out, key=lambda p: (p[1], sorted(p[0].items())))
            time.sleep(0.2)

    def series(self, field: str, measurement: str = "energy_consumption") -> list[dict[str, str]]:
        """The label sets of ``<measurement>_<field>`` (tags check)."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).read()
        query = urllib.parse.urlencode({"match[]": f"{measurement}_{field}", "start": "946684800"})
        with urllib.request.urlopen(f"{self.url}/api/v1/series?{query}", timeout=10) as r:
            return list(json.loads(r.read())["data"])


@contextmanager
def victoria_metrics(tmp: Path) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp / "vm-data")
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()
