"""Drive the real `octomon run` as a subprocess, and check what reached the database.

Used by the reliability and integration tests of the monitor: start it with settings in
the environment, kill -9 it or SIGTERM it, read its status.json, and compare every
reading the simulator served with what VictoriaMetrics holds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from octomon.readings import FIELDS, AnyReading, GasReading, Reading, from_cache_obj

OCTOMON = str(Path(sys.executable).with_name("octomon"))


def daemon_env(
    *,
    sim: Any,
    api_url: str,
    cache_dir: Path,
    influx_url: str | None = None,
    slack_url: str | None = None,
    poll: int = 2,
    health: int = 1,
    budget: int = 100,
    **extra: str,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OCTOPUS_API_KEY=sim.api_key,
        OCTOPUS_ACCOUNT_NUMBER=sim.account_number,
        OCTOPUS_API_URL=api_url,
        OCTOPUS_REST_URL=api_url.rsplit("graphql/", 1)[0],  # the sim serves both
        OCTOPUS_MAX_CALLS_PER_HOUR=str(budget),
        POLL_INTERVAL_SECONDS=str(poll),
        HEALTH_CHECK_SECONDS=str(health),
        CACHE_DIR=str(cache_dir),
        LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    if influx_url:
        env.update(
            INFLUXDB_URL=influx_url,
            INFLUXDB_TOKEN="test-token-for-victoria",
            INFLUXDB_ORG="home",
            INFLUXDB_BUCKET="octopus_energy",
        )
    if slack_url:
        env["SLACK_WEBHOOK_URL"] = slack_url
    env.update(extra)
    return env


@dataclass
class Daemon:
    """One `octomon run` process; its output goes to ``log`` (appended across restarts)."""

    env: Mapping[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def cache_dir(self) -> Path:
        return Path(self.env["CACHE_DIR"])

    def start(self, *args: str) -> Daemon:
        with self.log.open("ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [OCTOMON, "run", *args],
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started_at = time.monotonic()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def term(self, timeout: float = 20) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"octomon did not stop within {timeout} s:\n{self.output()}"
            ) from None
        return code, time.monotonic() - began

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def status(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.cache_dir / "status.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def wait_status(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 30, what: str = ""
    ) -> dict[str, Any]:
        """Poll status.json (written by this process) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"octomon exited ({self.proc.returncode}) while waiting for {what}:\n"
                    + self.output()
                )
            status = self.status()
            if status is not None and status.get("pid") == self.proc.pid and check(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.status()}\n{self.output()}")


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("cache_*.jsonl"))


def cached_readings(cache_dir: Path) -> dict[datetime, list[Reading]]:
    """The electricity readings in the cache's day files, by time."""
    out: dict[datetime, list[Reading]] = {}
    for reading in _cached(cache_dir):
        if isinstance(reading, Reading):
            out.setdefault(reading.read_at, []).append(reading)
    return out


def cached_gas(cache_dir: Path) -> dict[datetime, list[GasReading]]:
    """The gas lines in the cache's day files, by time."""
    out: dict[datetime, list[GasReading]] = {}
    for reading in _cached(cache_dir):
        if isinstance(reading, GasReading):
            out.setdefault(reading.read_at, []).append(reading)
    return out


def _cached(cache_dir: Path) -> list[AnyReading]:
    out = []
    for path in cache_files(cache_dir):
        for line in path.read_text().splitlines():
            try:
                out.append(from_cache_obj(json.loads(line)))
            except ValueError:
                continue
    return out


def expected_gas(sim: Any, calorific_value: str = "39.5") -> dict[datetime, GasReading]:
    """What octomon must have stored for every gas half-hour the simulator served."""
    out: dict[datetime, GasReading] = {}
    for ts, item in dict(sim.gas_served).items():
        reading = GasReading.from_api(item, sim.gas_device_id, Decimal(calorific_value))
        if reading is not None:
            out[ts] = reading
    return out


def expected(sim: Any) -> dict[datetime, Reading]:
    """What octomon must have stored for every item the simulator served."""
    out: dict[datetime, Reading] = {}
    for ts, item in dict(sim.served).items():
        reading = Reading.from_api(item, sim.device_id)
        if reading is not None:
            out[ts] = reading
    return out


def _same(name: str, got: list[float], want: float) -> bool:
    if name == "volume_delta":
        return all(math.isclose(v, want, rel_tol=1e-12) for v in got)
    return set(got) == {want}


def compare_db(
    vm: Any,
    want: Mapping[datetime, AnyReading],
    fields: tuple[str, ...] = FIELDS,
    measurement: str = "energy_consumption",
) -> None:
    """Every served reading in the database once per timestamp, exact, nothing invented.

    ``volume_delta`` (gas) to 12 significant digits: VictoriaMetrics keeps about 14 of the
    17 that octomon writes (the written figure is checked exactly in the unit tests)."""
    problems: list[str] = []
    for name in fields:
        values = {ts: getattr(r, name) for ts, r in want.items() if getattr(r, name) is not None}
        got = vm.export(name, wait_for=len(values), timeout=15, measurement=measurement)
        stamps = {int(ts.timestamp()): v for ts, v in values.items()}
        missing = sorted(set(stamps) - set(got))
        invented = sorted(set(got) - set(stamps))
        wrong = sorted(t for t in stamps if t in got and not _same(name, got[t], stamps[t]))
        if missing:
            problems.append(f"{name}: {len(missing)} missing, e.g. {missing[:3]}")
        if invented:
            problems.append(f"{name}: {len(invented)} not served, e.g. {invented[:3]}")
        if wrong:
            t = wrong[0]
            problems.append(f"{name}: {len(wrong)} wrong, e.g. {t}: {got[t]} != {stamps[t]}")
    assert not problems, "; ".join(problems)


class QuietAlerts:
    """An alerter that sends nothing (in-process monitors whose alerts are not the point)."""

    def emit(self, alerts: object) -> None:
        pass

    def close(self, timeout: float = 3.0) -> None:
        pass


def sim_settings(sim: Any, server: Any, cache_dir: Path, **settings: Any) -> Any:
    """Settings for an in-process monitor against the simulator (local mode unless given)."""
    from octomon.config import Settings

    base: dict[str, Any] = {
        "octopus_api_key": sim.api_key,
        "octopus_account_number": sim.account_number,
        "octopus_api_url": server.url,
        "octopus_rest_url": server.rest_url,
        "cache_dir": cache_dir,
        "poll_interval_seconds": 60,
    }
    return Settings(**{**base, **settings})


def started_monitor(settings: Any, clock: Callable[[], datetime]) -> Any:
    """The daemon's monitor from ``settings``, started at ``clock()``, alerts silenced."""
    import threading

    from octomon.wiring import build_monitor

    monitor = build_monitor(settings, stop=threading.Event(), clock=clock, alerter=QuietAlerts())
    monitor.start(clock())
    return monitor
