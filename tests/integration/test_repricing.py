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

import base64
import json
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

pytestmark = pytest.mark.integration
UTC = timezone.utc
CV = Decimal("39.5")


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


# --- by hand, from the raw REST JSON ---------------------------------------------------------


def get_all(home: SimHomeMini, server: SimServer, path: str, **params: str) -> list[Any]:
    token = base64.b64encode(f"{home.api_key}:".encode()).decode()
    url: str | None = server.rest_url + path + "?" + urllib.parse.urlencode(params)
    rows: list[Any] = []
    while url:
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            page = json.loads(answer.read())
        rows += page.get("results", [page])
        url = page.get("next")
    return rows


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def holds(row: dict[str, Any], at: datetime) -> bool:
    """``at`` is within the row's validity (``valid_to`` null: open)."""
    return instant(row["valid_from"]) <= at and (
        row["valid_to"] is None or at < instant(row["valid_to"])
    )


def holding(rows: list[Any], at: datetime, method: str) -> Decimal:
    """The inc-VAT pence of the row of ``method`` (else the null row) holding ``at``."""
    found = [r for r in rows if holds(r, at)]
    mine = [r for r in found if r["payment_method"] == method]
    rows = mine or [r for r in found if r["payment_method"] is None]
    assert len(rows) == 1, (at, found)
    return Decimal(str(rows[0]["value_inc_vat"]))


def in_night(t: datetime, night: tuple[int, int]) -> bool:
    minute = t.hour * 60 + t.minute
    lo, hi = night
    return lo <= minute < hi if lo < hi else (minute >= lo or minute < hi)


def hand_day(
    home: SimHomeMini,
    server: SimServer,
    day: date,
    fuel: str,
    method: str,
    night: tuple[int, int] = (30, 450),
) -> tuple[Decimal, Decimal]:
    """(energy £, standing charge £) of one UK day of one fuel, each rounded to the penny."""
    (account,) = get_all(home, server, f"accounts/{home.account_number}/")
    (prop,) = [p for p in account["properties"] if p["moved_out_at"] is None]
    if fuel == "electricity":
        (point,) = [p for p in prop["electricity_meter_points"] if not p["is_export"]]
        number, serial = point["mpan"], ids.ELECTRICITY_SERIAL
    else:
        (point,) = prop["gas_meter_points"]
        number, serial = point["mprn"], ids.GAS_SERIAL
    lo, hi = day_bounds(day)
    consumption = {
        instant(r["interval_start"]).astimezone(UTC): Decimal(str(r["consumption"]))
        for r in get_all(
            home,
            server,
            f"{fuel}-meter-points/{number}/meters/{serial}/consumption/",
            period_from=lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
            period_to=hi.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    }
    (agreement,) = [a for a in point["agreements"] if holds(a, lo)]
    code = agreement["tariff_code"]
    base = f"products/{'-'.join(code.split('-')[2:-1])}/{fuel}-tariffs/{code}/"
    dual = code.startswith("E-2R-")
    kinds = ["day-unit-rates", "night-unit-rates"] if dual else ["standard-unit-rates"]
    rates = {kind: get_all(home, server, base + kind + "/") for kind in kinds}
    energy = Decimal(0)
    for hh in half_hours(day):
        kwh = consumption[hh]
        if fuel == "gas":  # the sim's SMETS2 gas meter reports m³
            kwh = kwh * CV * Decimal("1.02264") / Decimal("3.6")
        kwh = kwh.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        kind = kinds[0] if not dual else kinds[1] if in_night(hh, night) else kinds[0]
        energy += kwh * holding(rates[kind], hh, method) / 100
    standing = holding(get_all(home, server, base + "standing-charges/"), lo, method) / 100
    return penny(energy), penny(standing)


def penny(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


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
        assert money(row, "total") == energy + standing, fuel
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
        is_night = in_night(t, night)
        nights += is_night
        pence = Decimal("12.588") if is_night else Decimal("28.10")  # the sim's DD rows
        assert rate["unit_rate"] == float(pence * Decimal("1.05") / 100), t
    assert nights == 14
