"""Test isolation (automatic) and shared fixtures for real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon import redact
from octomon.sim import SimHomeMini, SimServer
from tests.helpers.clock import ManualClock
from tests.helpers.services import VictoriaMetrics, victoria_metrics
from tests.helpers.sim_faults import FaultySim

ISOLATED_PREFIXES = (
    "OCTOPUS_",
    "INFLUXDB_",
    "SLACK_",
    "POLL_",
    "CACHE_",
    "LOG_",
    "HEALTH_",
    "GAS_",
    "ECONOMY7_",
)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's settings; each has its own CACHE_DIR and cwd."""
    import os

    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) or name == "NOTIFY_SOCKET":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics on loopback (skips, or fails under OCTOMON_REQUIRE_SERVICES=1)."""
    with victoria_metrics(tmp_path) as vm:
        yield vm


# --- the simulator on an injected clock (a test module may define its own instead) -------


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> ManualClock:
    """A hand-moved clock starting at the test module's ``T0``."""
    return ManualClock(request.module.T0)


@pytest.fixture
def sim(clock: ManualClock) -> SimHomeMini:
    return FaultySim(clock=clock)


@pytest.fixture
def server(sim: SimHomeMini) -> Iterator[SimServer]:
    """``sim`` on a loopback port, stopped after the test."""
    with SimServer(sim) as srv:
        yield srv
