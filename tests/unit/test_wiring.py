"""octomon/wiring.py: every part built once per process, the monitor whole when built, and
no command wiring clients by hand (counted by constructions, against the simulator)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from octomon.config import Settings
from octomon.daemon.gas import GasJob
from octomon.octopus.budget import Budget
from octomon.octopus.graphql import OctopusClient
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.wiring import CHECK, Wiring, build_monitor
from tests.helpers.cli import invoke
from tests.helpers.daemon import daemon_env


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each client (and the call ledger) is constructed."""
    counts: Counter[str] = Counter()
    for cls in (Budget, OctopusClient, RestClient):
        original = cls.__init__

        def counting(
            self: Any, *args: Any, _o: Any = original, _n: str = cls.__name__, **kw: Any
        ) -> None:
            counts[_n] += 1
            _o(self, *args, **kw)

        monkeypatch.setattr(cls, "__init__", counting)
    return counts


@pytest.fixture
def live_sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini()
    with SimServer(sim) as server:
        yield sim, server


def settings_for(sim: SimHomeMini, server: SimServer, cache_dir: Path, **kw: Any) -> Settings:
    return Settings(
        octopus_api_key=sim.api_key,
        octopus_account_number=sim.account_number,
        octopus_api_url=server.url,
        octopus_rest_url=server.rest_url,
        cache_dir=cache_dir,
        **kw,
    )


def test_run_once_builds_one_ledger_and_each_client_once(
    built: Counter[str], live_sim: tuple[SimHomeMini, SimServer], tmp_path: Path
) -> None:
    sim, server = live_sim
    env = daemon_env(sim=sim, api_url=server.url, cache_dir=tmp_path / "cache")
    result = invoke("run", "--once", env=env)
    assert result.exit_code == 0, result.output
    assert "stored" in result.output
    # One ledger; one GraphQL client; one REST client shared by the tariffs and settled jobs.
    assert built == Counter(Budget=1, OctopusClient=1, RestClient=1)


def test_costs_builds_one_ledger_and_one_rest_client(
    built: Counter[str],
    live_sim: tuple[SimHomeMini, SimServer],
    tmp_path: Path,
) -> None:
    sim, server = live_sim
    env = daemon_env(sim=sim, api_url=server.url, cache_dir=tmp_path / "cache")
    result = invoke("costs", "--json", env=env)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output  # 1: a day without any data
    # each once; the GraphQL client asks the gas meter's consumptionUnits, which a fresh
    # CACHE_DIR does not know (settled gas is priced in the meter's own units)
    assert built == Counter(Budget=1, RestClient=1, OctopusClient=1)


def test_each_part_is_built_once_and_only_when_asked_for(
    built: Counter[str], live_sim: tuple[SimHomeMini, SimServer], tmp_path: Path
) -> None:
    sim, server = live_sim
    wiring = Wiring(settings_for(sim, server, tmp_path / "cache"))
    assert built == Counter()  # nothing until asked for
    assert wiring.budget is wiring.budget and wiring.rest is wiring.rest
    assert wiring.octopus.budget is wiring.budget and wiring.rest.budget is wiring.budget
    assert wiring.sink is None  # local mode
    assert wiring.rest_calls == 0
    wiring.close()
    assert built == Counter(Budget=1, OctopusClient=1, RestClient=1)


def test_a_check_counts_in_memory_when_cache_dir_is_not_usable(
    live_sim: tuple[SimHomeMini, SimServer], tmp_path: Path
) -> None:
    sim, server = live_sim
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    wiring = Wiring(settings_for(sim, server, blocker / "cache"), purpose=CHECK)
    assert wiring.budget.store is None
    usable = Wiring(settings_for(sim, server, tmp_path / "cache"), purpose=CHECK)
    assert usable.budget.store is not None


def test_the_monitor_is_whole_when_built(
    built: Counter[str], live_sim: tuple[SimHomeMini, SimServer], tmp_path: Path
) -> None:
    sim, server = live_sim
    settings = settings_for(sim, server, tmp_path / "cache", octopus_device_id=sim.device_id)
    monitor = build_monitor(settings, stop=threading.Event())
    try:
        assert monitor.device_id == sim.device_id
        assert monitor.scheduler is not None
        assert monitor.scheduler.jobs == ["tariffs", "settled", "gas"]
        assert len(monitor.board.fillers) == 3  # the price now, gas, today from the tally
        gas = next(e.job for e in monitor.scheduler._entries if e.job.name == "gas")
        assert isinstance(gas, GasJob)
        # The gas stream stores through the monitor's writer and counts into its tally.
        assert gas.stream.writer is monitor.writer
        assert gas.stream.tally is monitor.stream.tally
        assert gas.stream.cursor is not monitor.stream.cursor
    finally:
        monitor.close(monitor.stream.cursor.at or sim.clock(), announce=False)
    assert built == Counter(Budget=1, OctopusClient=1, RestClient=1)
