"""A meter point whose rates cannot be had (SPEC §9) never blanks the others: an export meter
on a code the products API does not know (404), and an ``E-4R-`` import code (a register
layout octomon does not price). Against the simulator over HTTP, with a real VictoriaMetrics
for the daemon's ``energy_tariff`` points."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from octomon.billing.tariffs import Tariffs
from octomon.config import night_window
from octomon.daemon.jobs import TariffsJob
from octomon.octopus.budget import Budget
from octomon.octopus.published import Pricing
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.state import StateStore
from octomon.store.influx import InfluxSink
from octomon.uktime import uk_day
from tests.helpers.cli import point_at_sim
from tests.helpers.clock import ManualClock
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration

UNKNOWN_EXPORT = "E-1R-OUTGOING-SIMULATED-99-01-01-C"
FOUR_REGISTERS = "E-4R-OE-FIX-12M-25-09-01-C"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(sim) as server:
        point_at_sim(monkeypatch, sim, server)
        yield sim, server


@pytest.mark.parametrize(("kind", "code"), [("export", UNKNOWN_EXPORT), ("import", FOUR_REGISTERS)])
def test_tariff_names_the_code_once_and_prices_the_rest(
    home: tuple[SimHomeMini, SimServer], kind: str, code: str
) -> None:
    sim, _ = home
    if kind == "export":
        sim.rest.export_tariff = code
    else:
        sim.rest.import_tariff = code
    result = CliRunner().invoke(_app(), ["tariff", "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and code in warnings[0], result.output
    body = json.loads(result.output[result.output.index("{") :])
    assert len(body["unpriced"]) == 1 and code in body["unpriced"][0]
    assert any(s["fuel"] == "gas" for s in body["standing_charges"])
    if kind == "export":  # the import is priced as usual
        assert body["current_rate"]["tariff_code"] == ids.AGILE_IMPORT_TARIFF
    # a second run answers from what was kept, and still names it (once)
    calls = len(sim.rest.calls)
    again = CliRunner().invoke(_app(), ["tariff"])
    assert again.exit_code == 0, again.output
    assert again.output.count(code) >= 1
    assert sum(line.startswith("warning:") for line in again.output.splitlines()) == 1
    assert len(sim.rest.calls) == calls


def test_costs_prices_import_and_gas_and_names_the_unknown_export(
    home: tuple[SimHomeMini, SimServer],
) -> None:
    sim, _ = home
    sim.rest.export_tariff = UNKNOWN_EXPORT
    day = uk_day(sim.clock()) - timedelta(days=3)
    result = CliRunner().invoke(
        _app(), ["costs", "--since", day.isoformat(), "--until", day.isoformat(), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(UNKNOWN_EXPORT) == 2  # the warning line, and "unpriced" in JSON
    body = json.loads(result.output[result.output.index("{") :])
    rows = {(d["fuel"], d["direction"]): d for d in body["days"]}
    assert set(rows) == {("electricity", "import"), ("gas", "import")}
    assert all(d["source"] == "settled" and d["total"] is not None for d in rows.values())
    assert body["totals"]["complete"] is True


def test_the_daemon_keeps_storing_import_and_gas_prices_and_warns_once(
    tmp_path: Path, victoria: VictoriaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc))
    sim = SimHomeMini(clock=clock)
    sim.rest.export_tariff = UNKNOWN_EXPORT
    with SimServer(sim) as server:
        store = StateStore(tmp_path)
        client = RestClient(
            api_key=sim.api_key, base_url=server.rest_url, budget=Budget(store, 75), clock=clock
        )
        tariffs = Tariffs(
            client,
            sim.account_number,
            tmp_path,
            pricing=Pricing("direct_debit", night_window("00:30-07:30")),
            state=store,
            sink=InfluxSink(victoria.url, "vm-token", "home", "octopus_energy"),
        )
        job = TariffsJob(tariffs)
        caplog.set_level(logging.WARNING, "octomon.daemon.jobs")
        job.run(clock())
        clock.now = clock() + timedelta(days=1)
        job.run(clock())
    assert job.last is not None and job.last.stored
    named = [r for r in caplog.records if UNKNOWN_EXPORT in r.getMessage()]
    assert len(named) == 1
    points = victoria.points("energy_tariff_unit_rate", wait_for=48 * 7)
    fuels = {labels["fuel"] for labels, _, _ in points}
    directions = {labels["direction"] for labels, _, _ in points}
    assert fuels == {"electricity", "gas"} and directions == {"import"}


def _app() -> typer.Typer:
    from octomon.cli import app

    return app
