"""`octomon costs --json` says what the bill will say (SPEC §12): for each kind of account the
simulator offers, the bill computed by hand from the simulator's own rates and consumption
(``tests/helpers/hand_bill.py``: the raw REST JSON over HTTP, not octomon's parsing) matches
every bill line and the total to the penny, and the kWh to 0.001 — for one day, the whole
calendar month of the tariff switch, and a quarter (90 days).

Every date comes from the injected clock (``T0``): the switch is ``SWITCH_AGO`` before it, in
March 2026, whose last Sunday is the clocks going forward (a 46-half-hour day, the switch day
itself), and the month is settled by ``T0``. One simulator, one hand computation (over the
quarter, sliced for the day and the month) and one ``costs`` run per range, per kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.uktime import half_hours, uk_day
from tests.conftest import ISOLATED_PREFIXES
from tests.helpers.cli import point_at_sim
from tests.helpers.clock import ManualClock
from tests.helpers.hand_bill import HandAccount, HandBill, billed

pytestmark = pytest.mark.integration
UTC = timezone.utc

T0 = datetime(2026, 4, 8, 11, 0, tzinfo=UTC)  # noon UK (BST), a Wednesday
UNKNOWN_EXPORT = "E-1R-OUTGOING-SIMULATED-99-01-01-C"  # the products API answers 404
FOUR_REGISTERS = "E-4R-OE-FIX-12M-25-09-01-C"  # a register layout octomon does not price
KINDS = ["smets2-gas", "smets1-gas", "export-unknown", "economy7", "e-4r", "serial-exchange"]
SPANS = ["day", "month", "quarter"]
UNPRICEABLE = {"export-unknown": UNKNOWN_EXPORT, "e-4r": FOUR_REGISTERS}


@dataclass
class Run:
    """One kind of account: its simulator, the hand computation and the commands' output."""

    kind: str
    home: SimHomeMini
    hand: HandAccount
    spans: dict[str, tuple[date, date]]
    costs: dict[str, tuple[int, str]] = field(default_factory=dict)  # span -> (exit, output)
    tariff: tuple[int, str] = (0, "")

    def body(self, span: str) -> dict[str, Any]:
        code, output = self.costs[span]
        assert code == 0, output
        return dict(json.loads(output[output.index("{") :]))


def configure(home: SimHomeMini, kind: str) -> None:
    if kind == "smets1-gas":
        home.gas_units = "kWh"
    elif kind == "export-unknown":
        home.rest.export_tariff = UNKNOWN_EXPORT
    elif kind == "economy7":
        home.rest.economy7 = True
    elif kind == "e-4r":
        home.rest.import_tariff = FOUR_REGISTERS
    elif kind == "serial-exchange":  # the old meter reported until the switch day's morning
        home.settled.old_gas_until = home.rest.switch_at + timedelta(hours=9)


def spans_of(home: SimHomeMini) -> dict[str, tuple[date, date]]:
    """The day of the switch, its calendar month, and the 90 days up to the day before
    yesterday; each checked to be settled by the sim's clock."""
    today = uk_day(home.clock())
    switch_day = uk_day(home.rest.switch_at)
    month_first = switch_day.replace(day=1)
    month_last = (month_first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    quarter_last = today - timedelta(days=2)
    spans = {
        "day": (switch_day, switch_day),
        "month": (month_first, month_last),
        "quarter": (quarter_last - timedelta(days=89), quarter_last),
    }
    for first, last in spans.values():  # all settled, all after the move in, none today
        assert home.rest.moved_in_at <= home.rest.switch_at
        assert uk_day(home.rest.moved_in_at) <= first and last < today - timedelta(days=1)
    assert spans["quarter"][0] <= month_first and month_last <= quarter_last
    return spans


@pytest.fixture(scope="module", params=KINDS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    kind: str = request.param
    base = tmp_path_factory.mktemp(kind)
    (base / "cwd").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):  # as tests/conftest.py's _isolate, for the module
            if name.startswith(ISOLATED_PREFIXES) or name == "NOTIFY_SOCKET":
                mp.delenv(name, raising=False)
        mp.setenv("CACHE_DIR", str(base / "cache"))
        mp.chdir(base / "cwd")
        clock = ManualClock(T0)
        mp.setattr("octomon.clock.command_clock", clock)
        home = SimHomeMini(clock=clock, rate_limit_per_hour=100_000)  # the hand asks a lot
        configure(home, kind)
        with SimServer(home) as server:
            point_at_sim(mp, home, server)
            spans = spans_of(home)
            hand = HandAccount(
                server.rest_url,
                home.api_key,
                home.account_number,
                gas_units=home.gas_units,
                smart_serials=frozenset({ids.ELECTRICITY_SERIAL, ids.GAS_SERIAL}),
            ).priced(*spans["quarter"])
            out = Run(kind, home, hand, spans)
            runner = CliRunner()
            for span in SPANS:
                first, last = spans[span]
                result = runner.invoke(
                    app, ["costs", "--since", str(first), "--until", str(last), "--json"]
                )
                out.costs[span] = (result.exit_code, result.output)
            result = runner.invoke(app, ["tariff", "--json"])
            out.tariff = (result.exit_code, result.output)
            yield out


def money(x: float | None) -> Decimal:
    assert x is not None
    return Decimal(str(x))


def near(got: float | None, want: Decimal) -> bool:
    """kWh to 0.001."""
    return got is not None and abs(Decimal(str(got)) - want) <= Decimal("0.001")


# --- the bill, line by line -------------------------------------------------------------


@pytest.mark.parametrize("span", SPANS)
def test_costs_is_the_hand_computed_bill_to_the_penny(run: Run, span: str) -> None:
    first, last = run.spans[span]
    hand = run.hand.bill(first, last)
    body = run.body(span)
    assert hand.lines, "the hand computation priced nothing"

    got = {
        (x["kind"], x["fuel"], x["direction"], x["tariff_code"]): (
            money(x["amount"]),
            money(x["amount_exc_vat"]),
        )
        for x in body["lines"]
    }
    assert len(got) == len(body["lines"])  # one line per charge
    assert got == hand.lines
    for x in body["lines"]:
        key = (x["kind"], x["fuel"], x["direction"], x["tariff_code"])
        if x["kind"] == "energy":
            assert near(x["kwh"], hand.line_kwh[key]), (key, x["kwh"], hand.line_kwh[key])
        else:
            assert x["days"] == hand.line_days[key], key

    totals = body["totals"]
    assert money(totals["total"]) == hand.total()
    assert money(totals["total_exc_vat"]) == hand.total(exc_vat=True)
    assert money(totals["electricity"]) == hand.total(("electricity", "import"))
    assert money(totals["gas"]) == hand.total(("gas", "import"))
    assert money(totals["export"]) == hand.total(("electricity", "export"))
    assert money(totals["rows_total"]) == hand.rows_total()
    assert totals["complete"] is True
    assert_rows(body, hand)


def assert_rows(body: dict[str, Any], hand: HandBill) -> None:
    """Every day's row, rounded on its own."""
    rows = {(d["day"], d["fuel"], d["direction"]): d for d in body["days"]}
    assert set(rows) == set(hand.days)
    for key, want in hand.days.items():
        row = rows[key]
        assert row["source"] == "settled", key
        assert row["half_hours_covered"] == row["half_hours"], key
        assert near(row["kwh"], want.kwh), (key, row["kwh"], want.kwh)
        assert money(row["energy_cost"]) == want.energy, key
        assert money(row["energy_cost_exc_vat"]) == want.energy_exc, key
        if want.standing is None:
            assert row["standing_charge"] is None, key
        else:
            assert money(row["standing_charge"]) == want.standing, key
            assert money(row["standing_charge_exc_vat"]) == want.standing_exc, key
        assert money(row["total"]) == want.total, key
        assert set(row["tariffs"]) == want.tariffs, key


def test_the_ranges_are_what_they_say(run: Run) -> None:
    """The day is the switch's, the month the whole calendar month around it (with the
    clocks going forward), the quarter 90 days."""
    day, month, quarter = (run.spans[s] for s in SPANS)
    assert day[0] == uk_day(run.home.rest.switch_at) == date(2026, 3, 29)
    assert len(half_hours(day[0])) == 46
    assert month == (date(2026, 3, 1), date(2026, 3, 31))
    assert (quarter[1] - quarter[0]).days + 1 == 90
    body = run.body("month")
    codes = {x["tariff_code"] for x in body["lines"] if x["fuel"] == "electricity"}
    if run.kind in ("economy7", "e-4r"):
        assert len(codes) <= 1  # one import tariff throughout (or none priced)
    else:  # both sides of the switch are in the month's bill
        assert codes == {ids.FIXED_IMPORT_TARIFF, ids.AGILE_IMPORT_TARIFF}


# --- the kinds' own rules ---------------------------------------------------------------


@pytest.mark.parametrize("run", list(UNPRICEABLE), indirect=True)
def test_an_unpriceable_code_is_named_once_and_the_others_are_priced(run: Run) -> None:
    code = UNPRICEABLE[run.kind]
    series = (
        ("electricity", "export") if run.kind == "export-unknown" else ("electricity", "import")
    )
    assert run.hand.unpriceable == {series: code}  # the hand computation agrees it cannot
    for span in SPANS:
        exit_code, output = run.costs[span]
        assert exit_code == 0, output
        warnings = [line for line in output.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and code in warnings[0], output
        body = run.body(span)
        assert len(body["unpriced"]) == 1 and code in body["unpriced"][0]
        assert output.count(code) == 2  # the warning, and "unpriced" in the JSON: nowhere else
        priced = {(d["fuel"], d["direction"]) for d in body["days"]}
        assert series not in priced
        assert priced == ({("electricity", "import")} if series[1] == "export" else set()) | {
            ("gas", "import")
        }
    exit_code, output = run.tariff
    assert exit_code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and code in warnings[0], output
    body = json.loads(output[output.index("{") :])
    assert len(body["unpriced"]) == 1 and code in body["unpriced"][0]


@pytest.mark.parametrize("run", ["serial-exchange"], indirect=True)
def test_a_meter_exchange_counts_each_half_hour_once_the_smart_meters(run: Run) -> None:
    smart = run.hand.consumption[(ids.MPRN, ids.GAS_SERIAL)]
    old = run.hand.consumption[(ids.MPRN, ids.GAS_SERIAL_OLD)]
    both = set(smart) & set(old)
    first, last = run.spans["month"]
    month_days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    overlap_days = {uk_day(t) for t in both} & set(month_days)
    assert overlap_days and set(month_days) - overlap_days  # days with both, days with one
    assert any(old[t] != smart[t] for t in both)  # the two serials' figures differ
    rows = {d["day"]: d for d in run.body("month")["days"] if d["fuel"] == "gas"}
    for day in month_days:
        hh = half_hours(day)
        want = sum((billed(run.hand.kwh(smart[t], "m³")) for t in hh), Decimal(0))
        row = rows[day.isoformat()]
        assert row["half_hours_covered"] == len(hh), day  # none counted twice
        assert near(row["kwh"], want), (day, row["kwh"], want)
        if day in overlap_days:  # the old meter's figures, or both, would be another day
            olds = [billed(run.hand.kwh(old[t], "m³")) for t in hh if t in old]
            wrong = want - sum(
                (billed(run.hand.kwh(smart[t], "m³")) for t in hh if t in old), Decimal(0)
            )
            assert not near(row["kwh"], wrong + sum(olds, Decimal(0)))
            assert not near(row["kwh"], want + sum(olds, Decimal(0)))


@pytest.mark.parametrize("run", ["serial-exchange"], indirect=True)
def test_a_meter_exchange_warns_of_nothing(run: Run) -> None:
    """The replaced meter's m³ are known to be m³ (the GraphQL account says so): no warning
    that its gas is left out."""
    _, output = run.costs["month"]
    assert ids.GAS_SERIAL_OLD not in output, output[: output.index("{")]
