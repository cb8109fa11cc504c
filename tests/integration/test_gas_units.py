"""Gas in the meter's own units (SPEC §10, §12): a SMETS2 meter's settled data is m³, a SMETS1
meter's kWh (the GraphQL meter's ``consumptionUnits`` says which). `costs` prices either
right, keeps what the API said, and re-prices a corrected GAS_CALORIFIC_VALUE without a
request. Against the simulator over HTTP; the expected figures are computed by hand here
from the simulator's own consumption and rates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.uktime import half_hours, uk_day
from tests.helpers.cli import point_at_sim

pytestmark = pytest.mark.integration
GAS_RATE = Decimal("0.05985")  # the sim's gas unit rate inc. VAT, direct debit, GBP/kWh
HUNDREDTH = Decimal("0.01")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHomeMini]:
    sim = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(sim) as server:
        point_at_sim(monkeypatch, sim, server)
        yield sim


def gas_row(*args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    result = CliRunner().invoke(app, ["costs", *args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    (row,) = [d for d in out["days"] if d["fuel"] == "gas"]
    return row, out


def by_hand(kwh_per_half_hour: list[Decimal]) -> tuple[Decimal, Decimal]:
    """(kWh, energy £) of a day: each half-hour rounded to 0.01 kWh half to even, priced."""
    billed = [k.quantize(HUNDREDTH, rounding=ROUND_HALF_EVEN) for k in kwh_per_half_hour]
    energy = sum((k * GAS_RATE for k in billed), Decimal(0))
    return sum(billed, Decimal(0)), energy.quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


def m3_to_kwh(m3: Decimal, cv: Decimal) -> Decimal:
    return m3 * Decimal("1.02264") * cv / Decimal("3.6")


@pytest.mark.parametrize("units", ["m³", "kWh"])
def test_a_days_gas_is_priced_in_the_meters_own_units(home: SimHomeMini, units: str) -> None:
    home.gas_units = units
    day = uk_day(home.clock()) - timedelta(days=3)
    row, _ = gas_row("--since", day.isoformat(), "--until", day.isoformat())
    if units == "kWh":  # SMETS1: the endpoint's kWh as they are (no conversion)
        kwh = [home.settled.gas_kwh(hh) for hh in half_hours(day)]
    else:  # SMETS2: m³ × 1.02264 × 39.5 ÷ 3.6
        kwh = [m3_to_kwh(home.settled.gas_m3(hh), Decimal("39.5")) for hh in half_hours(day)]
    want_kwh, want_energy = by_hand(kwh)
    assert row["source"] == "settled"
    assert Decimal(str(row["kwh"])) == want_kwh
    assert Decimal(str(row["energy_cost"])) == want_energy
    assert 0 < want_kwh < 200  # a household's day of gas (summer or winter), not 11 times it


def test_smets1_and_smets2_give_the_same_days_gas(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows: dict[str, dict[str, Any]] = {}
    day: date | None = None
    for units in ("m³", "kWh"):
        sim = SimHomeMini(rate_limit_per_hour=10_000)
        sim.gas_units = units
        with SimServer(sim) as server:
            point_at_sim(monkeypatch, sim, server)
            monkeypatch.setenv(
                "CACHE_DIR", str(tmp_path / ("smets2" if units == "m³" else "smets1"))
            )
            day = day or uk_day(sim.clock()) - timedelta(days=3)
            rows[units], _ = gas_row("--since", day.isoformat(), "--until", day.isoformat())
    a, b = rows["m³"], rows["kWh"]
    # the same household's gas; m³ is published to 0.001 m³ (about 0.011 kWh) and each
    # half-hour is billed to 0.01 kWh, so the two differ by rounding only: at most about
    # 0.01 kWh a half-hour, far from the factor of 11 of energy taken for volume
    slack = max(0.01 * b["kwh"], 0.25)
    assert abs(a["kwh"] - b["kwh"]) <= slack
    assert abs(a["energy_cost"] - b["energy_cost"]) <= slack * 0.06 + 0.01


def test_a_corrected_calorific_value_reprices_without_a_request(
    home: SimHomeMini, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = uk_day(home.clock()) - timedelta(days=3)
    args = ("--since", day.isoformat(), "--until", day.isoformat())
    before, _ = gas_row(*args)
    calls = len(home.calls)
    monkeypatch.setenv("GAS_CALORIFIC_VALUE", "38.0")
    after, out = gas_row(*args)
    assert out["api_calls"] == 0 and len(home.calls) == calls
    kwh = [m3_to_kwh(home.settled.gas_m3(hh), Decimal("38.0")) for hh in half_hours(day)]
    want_kwh, want_energy = by_hand(kwh)
    assert Decimal(str(after["kwh"])) == want_kwh < Decimal(str(before["kwh"]))
    assert Decimal(str(after["energy_cost"])) == want_energy


def test_a_unit_octomon_does_not_know_is_named_not_guessed(home: SimHomeMini) -> None:
    home.gas_units = "ft³"
    day = uk_day(home.clock()) - timedelta(days=3)
    result = CliRunner().invoke(
        app, ["costs", "--since", day.isoformat(), "--until", day.isoformat()]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: gas meter E6S15151012345 reports in 'ft³', which octomon does not convert: "
        "its gas is not in the costs"
    ]
