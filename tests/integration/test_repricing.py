"""A corrected OCTOPUS_PAYMENT_METHOD or ECONOMY7_NIGHT re-prices what CACHE_DIR kept (SPEC §9):
`costs` and `tariff` against the simulator over real HTTP, the setting changed between two
runs on the same CACHE_DIR, the second run making no request.

The expected bills are computed by hand from the sim's raw REST JSON (urllib, not octomon's
parsing): each half-hour's kWh rounded to 0.01 half to even, times the inc-VAT pence of the
row of the chosen payment method (else the null row) holding it -- on the Economy 7 tariff
the night row inside the night window (UTC), the day row outside it; a day's energy and its
standing charge each rounded to the penny.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.uktime import uk_day
from tests.helpers.cli import point_at_sim, set_clock
from tests.helpers.clock import ManualClock, uk_today_at
from tests.helpers.hand_bill import HandAccount, instant, is_night

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, SimServer]]:
    clock = ManualClock(uk_today_at(12))
    set_clock(monkeypatch, clock)
    home = SimHomeMini(clock=clock, rate_limit_per_hour=10_000)
    with SimServer(home) as server:
        point_at_sim(monkeypatch, home, server)
        yield home, server


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def requests(home: SimHomeMini) -> int:
    """Every request that reached the simulator (GraphQL and REST)."""
    return len(home.calls) + len(home.rest.calls)


# --- by hand, from the raw REST JSON (tests/helpers/hand_bill.py) ------------------------------


def hand_day(
    home: SimHomeMini,
    server: SimServer,
    day: date,
    fuel: str,
    method: str,
    night: tuple[int, int] = (30, 450),
) -> tuple[Decimal, Decimal | None]:
    """(energy £, standing charge £) of one UK day of one fuel, each rounded to the penny."""
    hand = HandAccount(
        server.rest_url,
        home.api_key,
        home.account_number,
        gas_units=home.gas_units,
        smart_serials=frozenset({ids.ELECTRICITY_SERIAL, ids.GAS_SERIAL}),
        night=night,
        payment_method=method,
    ).priced(day, day)
    row = hand.bill(day, day).days[(day.isoformat(), fuel, "import")]
    return row.energy, row.standing


def money(row: dict[str, Any], key: str) -> Decimal:
    return Decimal(str(row[key]))


# --- the tests ---------------------------------------------------------------------------------


def test_a_corrected_payment_method_reprices_the_kept_days_without_a_call(
    sim: tuple[SimHomeMini, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, server = sim
    day = uk_day(home.rest.switch_at) - timedelta(days=2)  # fixed tariffs, both fuels
    args = ("costs", "--since", day.isoformat(), "--until", day.isoformat())
    monkeypatch.setenv("OCTOPUS_PAYMENT_METHOD", "direct_debit")
    before = run(*args)
    assert before["api_calls"] > 0

    monkeypatch.setenv("OCTOPUS_PAYMENT_METHOD", "non_direct_debit")
    asked = requests(home)
    after = run(*args)
    assert after["api_calls"] == 0
    assert requests(home) == asked  # nothing reached the simulator

    total = Decimal(0)
    for fuel in ("electricity", "gas"):
        (was,) = [d for d in before["days"] if d["fuel"] == fuel]
        (row,) = [d for d in after["days"] if d["fuel"] == fuel]
        energy, standing = hand_day(home, server, day, fuel, "NON_DIRECT_DEBIT")
        assert money(row, "energy_cost") == energy, fuel
        assert money(row, "standing_charge") == standing, fuel
        assert standing is not None and money(row, "total") == energy + standing, fuel
        dd = hand_day(home, server, day, fuel, "DIRECT_DEBIT")
        assert (money(was, "energy_cost"), money(was, "standing_charge")) == dd, fuel
        assert money(row, "total") > money(was, "total"), fuel  # the dearer method
        total += energy + standing
    assert money(after["totals"], "total") == total


def test_a_corrected_night_window_reprices_an_economy7_day_and_the_tariff(
    sim: tuple[SimHomeMini, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, server = sim
    home.rest.economy7 = True
    day = uk_day(home.clock()) - timedelta(days=3)
    args = ("costs", "--since", day.isoformat(), "--until", day.isoformat())
    monkeypatch.setenv("ECONOMY7_NIGHT", "00:30-07:30")
    first_tariff = run("tariff")
    first = run(*args)

    monkeypatch.setenv("ECONOMY7_NIGHT", "21:00-04:00")  # wraps midnight (UTC)
    asked = requests(home)
    tariff = run("tariff")
    after = run(*args)
    assert after["api_calls"] == 0 and tariff["api_calls"] == 0
    assert requests(home) == asked  # nothing reached the simulator

    night = (21 * 60, 4 * 60)
    (was,) = [d for d in first["days"] if d["fuel"] == "electricity"]
    (row,) = [d for d in after["days"] if d["fuel"] == "electricity"]
    energy, standing = hand_day(home, server, day, "electricity", "DIRECT_DEBIT", night)
    assert row["tariffs"] == [ids.ECONOMY7_IMPORT_TARIFF]
    assert money(row, "energy_cost") == energy
    assert money(row, "standing_charge") == standing
    old = hand_day(home, server, day, "electricity", "DIRECT_DEBIT", (30, 450))
    assert money(was, "energy_cost") == old[0] != energy

    # `tariff`: today's half-hours at the E-2R day or night price by the new window
    assert len(tariff["rates"]["today"]) == len(first_tariff["rates"]["today"]) >= 46
    nights = 0
    for rate in tariff["rates"]["today"]:
        t = instant(rate["start"])
        assert t is not None
        night_half_hour = is_night(t, night)
        nights += night_half_hour
        pence = Decimal("12.588") if night_half_hour else Decimal("28.10")  # the sim's DD rows
        assert rate["unit_rate"] == float(pence * Decimal("1.05") / 100), t
    assert nights == 14
