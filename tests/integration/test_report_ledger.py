"""Every request `costs`, `reconcile` and `tariff` make is in the one call ledger of
state.json, and none of them goes past OCTOPUS_MAX_CALLS_PER_HOUR (SPEC §4.3, §4.9) — even
when a year is asked for. Against the simulator over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from octomon.uktime import uk_day
from tests.helpers.cli import point_at_sim

pytestmark = pytest.mark.integration


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHomeMini]:
    sim = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(sim) as server:
        point_at_sim(monkeypatch, sim, server)
        yield sim


def ledger(cache_dir: Path) -> int:
    return len(StateStore(cache_dir).load().calls)


@pytest.mark.parametrize("command", ["costs", "reconcile", "tariff"])
def test_every_request_is_in_the_ledger(
    home: SimHomeMini, command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "ledger"
    monkeypatch.setenv("CACHE_DIR", str(cache))
    today = uk_day(home.clock())
    args = [command]
    if command != "tariff":
        args += ["--since", (today - timedelta(days=365)).isoformat()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(home.calls) > 0
    assert ledger(cache) == len(home.calls)  # every request recorded, none twice


def test_a_year_of_costs_stays_inside_a_small_budget(
    home: SimHomeMini, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "small"
    monkeypatch.setenv("CACHE_DIR", str(cache))
    monkeypatch.setenv("OCTOPUS_MAX_CALLS_PER_HOUR", "4")
    today = uk_day(home.clock())
    result = CliRunner().invoke(
        app, ["costs", "--since", (today - timedelta(days=365)).isoformat(), "--json"]
    )
    assert len(home.calls) <= 4, home.calls
    assert ledger(cache) == len(home.calls)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        json.loads(result.output[result.output.index("{") :])
    else:  # the budget ran out before everything asked for was known: API failure, exit 1
        assert result.exit_code == 1, result.output
        assert "budget" in result.output
