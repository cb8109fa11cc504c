"""`octomon costs` against the simulator over real HTTP: the bill computed by hand from the
sim's own REST answers (rates, standing charges, settled consumption), compared to the penny.

The hand computation is ``tests/helpers/hand_bill.py`` (the raw JSON with urllib,
independently of octomon's parsing); ``test_costs_hand_bill.py`` runs it for every kind of
account over a day, a month and a quarter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
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
from tests.helpers.hand_bill import HandAccount
from tests.helpers.tally import store_home_mini

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, SimServer]]:
    clock = ManualClock(uk_today_at(12))  # the simulator and `costs` at noon UK today
    set_clock(monkeypatch, clock)
    home = SimHomeMini(clock=clock, rate_limit_per_hour=10_000)  # the hand computation asks a lot
    with SimServer(home) as server:
        point_at_sim(monkeypatch, home, server)
        yield home, server


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["costs", *args])


# --- the tests --------------------------------------------------------------------------


def test_a_days_bill_by_hand_equals_costs_to_the_penny_across_the_switch(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, server = sim
    switch_day = uk_day(home.rest.switch_at)
    first, last = switch_day - timedelta(days=1), switch_day
    result = invoke("--since", first.isoformat(), "--until", last.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = {(d["day"], d["fuel"], d["direction"]): d for d in out["days"]}
    assert {fuel for _, fuel, _ in rows} == {"electricity", "gas"}
    hand = HandAccount(
        server.rest_url,
        home.api_key,
        home.account_number,
        smart_serials=frozenset({ids.ELECTRICITY_SERIAL, ids.GAS_SERIAL}),
    )
    bill = hand.priced(first, last).bill(first, last)
    assert set(rows) == set(bill.days)
    for key, want in bill.days.items():
        row = rows[key]
        assert row["source"] == "settled"
        assert row["kwh"] == pytest.approx(float(want.kwh), abs=1e-6)
        assert Decimal(str(row["energy_cost"])) == want.energy, key
        assert Decimal(str(row["standing_charge"])) == want.standing, key
        assert Decimal(str(row["total"])) == want.total, key
    got = {
        (x["kind"], x["fuel"], x["direction"], x["tariff_code"]): Decimal(str(x["amount"]))
        for x in out["lines"]
    }
    assert got == {key: inc for key, (inc, _) in bill.lines.items()}
    assert Decimal(str(out["totals"]["rows_total"])) == bill.rows_total()
    imports = [(first, ids.FIXED_IMPORT_TARIFF), (last, ids.AGILE_IMPORT_TARIFF)]
    for day, code in imports:
        assert rows[(day.isoformat(), "electricity", "import")]["tariffs"] == [code]
    assert Decimal(str(out["totals"]["total"])) == bill.total()
    assert out["totals"]["complete"] is True


def test_settled_live_and_missing_days_and_a_second_run_makes_no_call(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, _ = sim
    home.settled.delay = timedelta(hours=30)  # yesterday is not settled yet
    today = uk_day(home.clock())
    yesterday = today - timedelta(days=1)
    assert store_home_mini(home, today, today) > 0  # today: not settled, the Home Mini's
    first = today - timedelta(days=2)
    args = ("--since", first.isoformat(), "--until", today.isoformat(), "--json")
    result = invoke(*args)
    assert result.exit_code == 0, result.output  # the API answered: missing days are shown
    out = json.loads(result.output)
    sources = {(d["day"], d["fuel"]): d["source"] for d in out["days"]}
    assert sources[(today.isoformat(), "electricity")] == "live"
    assert sources[(first.isoformat(), "electricity")] == "settled"
    assert sources[(yesterday.isoformat(), "electricity")] == "missing"  # neither: not zero
    missing = [d for d in out["days"] if d["source"] == "missing"]
    assert all(d["kwh"] is None and d["total"] is None for d in missing)
    y = yesterday.isoformat()
    assert {(d["day"], d["fuel"]) for d in missing} >= {(y, "electricity"), (y, "gas")}

    calls = len(home.calls)
    started = time.monotonic()
    again = invoke("--since", first.isoformat(), "--until", first.isoformat(), "--json")
    elapsed = time.monotonic() - started
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["api_calls"] == 0
    assert len(home.calls) == calls  # no request reached the sim
    assert elapsed < 1.0


def test_with_the_rest_api_down_costs_answers_from_what_it_kept(
    sim: tuple[SimHomeMini, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    today = uk_day(sim[0].clock())
    yesterday = today - timedelta(days=1)
    assert invoke("--since", yesterday.isoformat(), "--json").exit_code == 0
    from tests.helpers.http_stub import bad_gateway

    with bad_gateway() as url:
        monkeypatch.setenv("OCTOPUS_REST_URL", url)
        kept = invoke("--since", yesterday.isoformat(), "--json")
        assert kept.exit_code == 0, kept.output  # yesterday was kept: answered from files
        lacking = invoke("--since", (today - timedelta(days=3)).isoformat(), "--json")
    assert "Traceback" not in lacking.output
    assert lacking.exit_code == 1
    assert "warning: could not fetch the prices" in lacking.output
    assert "error: nothing known for" in lacking.output


def test_a_quarter_is_priced_in_one_pass_then_answered_without_a_call(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, _ = sim
    today = uk_day(home.clock())
    first, last = today - timedelta(days=90), today - timedelta(days=3)
    args = ("--since", first.isoformat(), "--until", last.isoformat(), "--json")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    settled = [d for d in out["days"] if d["source"] == "settled"]
    assert {d["day"] for d in settled} == {
        (first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)
    }
    assert all(d["total"] is not None for d in settled)
    assert out["totals"]["complete"] is True
    calls = len(home.calls)
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["api_calls"] == 0
    assert len(home.calls) == calls  # nothing reached the sim: all of it was kept


def test_days_the_daemon_did_not_ask_for_are_fetched_even_right_after_its_fetch(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, _ = sim
    today = uk_day(home.clock())
    recent = today - timedelta(days=2)
    assert invoke("--since", recent.isoformat(), "--until", recent.isoformat()).exit_code == 0
    # a minute later, a month further back: those days were never asked for
    month = today - timedelta(days=40)
    result = invoke(
        "--since", month.isoformat(), "--until", (month + timedelta(days=6)).isoformat(), "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["api_calls"] > 0
    assert all(d["source"] == "settled" for d in out["days"])


def test_costs_and_reconcile_show_the_same_kwh_for_the_same_day(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    home, _ = sim
    today = uk_day(home.clock())
    first, last = today - timedelta(days=6), today - timedelta(days=3)
    args = ["--since", first.isoformat(), "--until", last.isoformat()]
    costs_out = json.loads(invoke(*args, "--json").output)
    rec = CliRunner().invoke(app, ["reconcile", *args, "--json"])
    assert rec.exit_code == 0, rec.output
    settled = {d["day"]: d["billed_kwh"] for d in json.loads(rec.output)["days"]}
    rows = [d for d in costs_out["days"] if d["fuel"] == "electricity"]
    assert len(rows) == 4
    for row in rows:  # one figure, one rounding: the bill's kWh
        assert row["kwh"] == settled[row["day"]], row["day"]
        assert f"{row['kwh']:.2f}" == f"{settled[row['day']]:.2f}"
    text = CliRunner().invoke(app, ["reconcile", *args]).output
    for row in rows:
        assert f"{row['kwh']:.2f}" in text


def test_days_after_a_range_just_asked_for_are_fetched_too(
    sim: tuple[SimHomeMini, SimServer],
) -> None:
    """Asking for one day, then (within the hour) for a range running on past it: the days
    after the one asked for were never asked, so they are fetched, not shown missing."""
    home, _ = sim
    today = uk_day(home.clock())
    day = today - timedelta(days=6)
    assert invoke("--since", day.isoformat(), "--until", day.isoformat()).exit_code == 0
    last = today - timedelta(days=2)
    result = invoke("--since", day.isoformat(), "--until", last.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["api_calls"] > 0
    assert {(d["day"], d["source"]) for d in out["days"]} == {
        ((day + timedelta(days=n)).isoformat(), "settled") for n in range(5)
    }
