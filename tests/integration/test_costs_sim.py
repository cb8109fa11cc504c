"""`octomon costs` against the simulator over real HTTP: the bill computed by hand from the
sim's own REST answers (rates, standing charges, settled consumption), compared to the penny.

The hand computation reads the raw JSON with urllib, independently of octomon's parsing: a
half-hour's kWh is rounded to 0.01 kWh half to even (Octopus's billing rule), then multiplied
by the direct-debit (or null) unit rate inc. VAT whose validity holds it; a day's energy is
rounded to the penny once; the standing charge is the row in force at the UK midnight,
rounded to the penny. The range's bill lines: each tariff's energy summed exactly and
rounded once, each standing charge as days × the daily rate rounded once; the total their
sum.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.uktime import day_bounds, half_hours, uk_day
from tests.helpers.cli import point_at_sim, set_clock
from tests.helpers.clock import ManualClock, uk_today_at
from tests.helpers.tally import store_home_mini

pytestmark = pytest.mark.integration
UTC = timezone.utc
PENNY = Decimal("0.01")


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


# --- the hand computation, from the raw REST JSON ----------------------------------------


def get_all(home: SimHomeMini, server: SimServer, path: str, **params: str) -> list[Any]:
    token = base64.b64encode(f"{home.api_key}:".encode()).decode()
    url: str | None = server.rest_url + path + "?" + urllib.parse.urlencode(params)
    rows: list[Any] = []
    while url:
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            page = json.loads(answer.read())
        rows += page["results"]
        url = page["next"]
    return rows


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def in_force(rows: list[Any], at: datetime) -> Decimal:
    """The inc-VAT value (pence) of the direct-debit or all-payment row holding ``at``."""
    found = [
        r
        for r in rows
        if r["payment_method"] in (None, "DIRECT_DEBIT")
        and instant(r["valid_from"]) <= at
        and (r["valid_to"] is None or at < instant(r["valid_to"]))
    ]
    assert len(found) == 1, (at, found)
    return Decimal(str(found[0]["value_inc_vat"]))


def tariff_at(agreements: list[Any], at: datetime) -> str:
    (a,) = [
        a
        for a in agreements
        if instant(a["valid_from"]) <= at and (a["valid_to"] is None or at < instant(a["valid_to"]))
    ]
    return str(a["tariff_code"])


class HandBill:
    """One UK day of one fuel, by hand: kWh, energy £ (exact), standing £/day (exact), and
    per tariff code the exact energy £ (for the bill's lines)."""

    def __init__(self) -> None:
        self.kwh = self.energy = self.standing = Decimal(0)
        self.by_tariff: dict[str, Decimal] = {}
        self.standing_code = ""


def hand_bill(home: SimHomeMini, server: SimServer, day: date, fuel: str) -> HandBill:
    """The bill of one UK day, from the sim's REST answers."""
    (prop,) = [p for p in get_all_account(home, server) if p["moved_out_at"] is None]
    if fuel == "electricity":
        (point,) = [p for p in prop["electricity_meter_points"] if not p["is_export"]]
        kind, number, serial = "electricity", point["mpan"], ids.ELECTRICITY_SERIAL
    else:
        (point,) = prop["gas_meter_points"]
        kind, number, serial = "gas", point["mprn"], ids.GAS_SERIAL
    lo, hi = day_bounds(day)
    consumption = {
        instant(r["interval_start"]).astimezone(UTC): Decimal(str(r["consumption"]))
        for r in get_all(
            home,
            server,
            f"{kind}-meter-points/{number}/meters/{serial}/consumption/",
            period_from=lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
            period_to=hi.strftime("%Y-%m-%dT%H:%M:%SZ"),
            order_by="period",
        )
    }
    rates: dict[str, list[Any]] = {}
    charges: dict[str, list[Any]] = {}
    bill = HandBill()
    for hh in half_hours(day):
        code = tariff_at(point["agreements"], hh)
        product = "-".join(code.split("-")[2:-1])
        base = f"products/{product}/{kind}-tariffs/{code}/"
        if code not in rates:
            rates[code] = get_all(home, server, base + "standard-unit-rates/")
            charges[code] = get_all(home, server, base + "standing-charges/")
        amount = consumption[hh]
        if fuel == "gas":  # the sim's SMETS2 gas meter reports m³: kWh by the CV
            amount = amount * Decimal("39.5") * Decimal("1.02264") / Decimal("3.6")
        amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        cost = amount * in_force(rates[code], hh) / 100
        bill.kwh += amount
        bill.energy += cost
        bill.by_tariff[code] = bill.by_tariff.get(code, Decimal(0)) + cost
    code = tariff_at(point["agreements"], lo)
    bill.standing = in_force(charges[code], lo) / 100
    bill.standing_code = code
    return bill


def get_all_account(home: SimHomeMini, server: SimServer) -> list[Any]:
    token = base64.b64encode(f"{home.api_key}:".encode()).decode()
    req = urllib.request.Request(
        server.rest_url + f"accounts/{home.account_number}/",
        headers={"Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as answer:
        return list(json.loads(answer.read())["properties"])


def penny(x: Decimal) -> Decimal:
    return x.quantize(PENNY, rounding=ROUND_HALF_UP)


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
    rows = {(d["day"], d["fuel"]): d for d in out["days"]}
    assert {fuel for _, fuel in rows} == {"electricity", "gas"}
    rows_total = Decimal(0)
    energy_lines: dict[tuple[str, str], Decimal] = {}
    standing_lines: dict[tuple[str, str, Decimal], int] = {}
    for day in (first, last):
        for fuel in ("electricity", "gas"):
            hand = hand_bill(home, server, day, fuel)
            row = rows[(day.isoformat(), fuel)]
            assert row["source"] == "settled"
            assert row["kwh"] == pytest.approx(float(hand.kwh), abs=1e-6)
            assert Decimal(str(row["energy_cost"])) == penny(hand.energy), (day, fuel)
            assert Decimal(str(row["standing_charge"])) == penny(hand.standing), (day, fuel)
            assert Decimal(str(row["total"])) == penny(hand.energy) + penny(hand.standing)
            rows_total += penny(hand.energy) + penny(hand.standing)
            for code, cost in hand.by_tariff.items():
                energy_lines[(fuel, code)] = energy_lines.get((fuel, code), Decimal(0)) + cost
            key = (fuel, hand.standing_code, hand.standing)
            standing_lines[key] = standing_lines.get(key, 0) + 1
    expected = {("energy", fuel, code): penny(v) for (fuel, code), v in energy_lines.items()}
    for (fuel, code, rate), n in standing_lines.items():
        expected[("standing charge", fuel, code)] = penny(rate * n)
    got = {
        (x["kind"], x["fuel"], x["tariff_code"]): Decimal(str(x["amount"])) for x in out["lines"]
    }
    assert got == expected
    total = sum(expected.values(), Decimal(0))
    assert Decimal(str(out["totals"]["rows_total"])) == rows_total
    assert rows[(first.isoformat(), "electricity")]["tariffs"] == [ids.FIXED_IMPORT_TARIFF]
    assert rows[(last.isoformat(), "electricity")]["tariffs"] == [ids.AGILE_IMPORT_TARIFF]
    assert Decimal(str(out["totals"]["total"])) == total
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
