"""The simulator's settled consumption (sim.consumption), through ``SimHomeMini.handle``."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from octomon.sim import SimHomeMini
from octomon.sim import account as ids
from octomon.uktime import day_bounds, half_hours
from tests.helpers.clock import ManualClock

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
PATH = f"/v1/electricity-meter-points/{ids.MPAN}/meters/{ids.ELECTRICITY_SERIAL}/consumption/"


def get(sim: SimHomeMini, key: str | None = None, path: str = PATH, **params: Any) -> Any:
    auth = "Basic " + base64.b64encode(f"{key or sim.api_key}:".encode()).decode()
    resp = sim.handle("GET", path + ("?" + urlencode(params) if params else ""), auth, b"")
    return resp.status, json.loads(resp.body)


def test_settled_half_hours_are_the_meters_register_including_missed_readings() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    sim.settled.extra_rows = False
    status, body = get(
        sim,
        period_from="2026-11-27T00:00:00Z",
        period_to="2026-11-28T00:00:00Z",
        order_by="period",
        page_size=100,
    )
    assert status == 200 and body["count"] == 48 and body["next"] is None
    checked = gaps = 0
    for row in body["results"]:
        start = datetime.fromisoformat(row["interval_start"].replace("Z", "+00:00"))
        before = sim.reading_at(start - timedelta(seconds=10))
        last = sim.reading_at(start + timedelta(minutes=30) - timedelta(seconds=10))
        steps = [sim.reading_at(start + timedelta(seconds=10 * i)) for i in range(180)]
        home_mini = sum(Decimal(str(s["consumptionDelta"])) for s in steps if s)
        settled = Decimal(str(row["consumption"])) * 1000
        assert settled >= home_mini
        gaps += settled > home_mini
        if before and last:  # the register at both ends: settled is exactly its difference
            assert settled == Decimal(last["consumption"]) - Decimal(before["consumption"])
            checked += 1
    assert checked > 40 and gaps > 0


def test_uk_offsets_newest_first_paging_and_next() -> None:
    sim = SimHomeMini(clock=ManualClock(datetime(2026, 7, 3, 12, 0, tzinfo=UTC)))
    sim.settled.extra_rows = False
    sim.settled.page_size_cap = 20
    status, body = get(sim, period_from="2026-07-01T00:00:00+01:00", page_size=25000)
    assert status == 200 and body["count"] == 96  # two BST days, up to yesterday only
    assert body["results"][0]["interval_start"] == "2026-07-02T23:30:00+01:00"
    assert body["results"][0]["interval_end"] == "2026-07-03T00:00:00+01:00"
    assert body["next"].startswith("https://api.octopus.energy" + PATH + "?")
    assert "page=2" in body["next"]
    rows = list(body["results"])
    page = 2
    while body["next"]:
        status, body = get(sim, period_from="2026-07-01T00:00:00+01:00", page_size=25000, page=page)
        rows += body["results"]
        page += 1
    assert len(rows) == 96 and rows[-1]["interval_start"] == "2026-07-01T00:00:00+01:00"
    status, body = get(sim, period_from="2026-11-01T00:00", order_by="period")  # no offset: UK
    sim.clock = ManualClock(NOW)
    status, body = get(sim, period_from="2026-11-30T00:00:00", order_by="period")
    assert body["results"][0]["interval_start"] in ("2026-11-29T23:30:00Z", "2026-11-30T00:00:00Z")


def test_only_up_to_yesterday_after_the_delay_and_sometimes_a_row_more() -> None:
    clock = ManualClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    sim = SimHomeMini(clock=clock)
    sim.settled.extra_rows = False
    _, body = get(sim, period_from="2026-11-29T00:00:00Z", order_by="period")
    assert body["count"] == 48  # 30 Nov not yet there at 01:00 (delay 2 h)
    clock.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    _, body = get(sim, period_from="2026-11-29T00:00:00Z", order_by="period")
    assert body["count"] == 96
    sim.settled.extra_rows = True
    _, body = get(sim, period_from="2026-11-29T00:00:00Z", period_to="2026-11-29T12:00:00Z")
    assert body["count"] == 26  # one before and one after the window
    _, body = get(sim, period_from="2026-11-29T00:30:00Z", period_to="2026-11-29T12:00:00Z")
    assert body["count"] == 23  # "sometimes"


def test_clock_change_days_have_46_and_50_half_hours() -> None:
    sim = SimHomeMini(clock=ManualClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC)))
    sim.settled.extra_rows = False
    for day, n in ((date(2026, 3, 29), 46), (date(2026, 10, 25), 50)):
        lo, hi = day_bounds(day)
        _, body = get(sim, period_from=lo.isoformat(), period_to=hi.isoformat(), page_size=25000)
        assert body["count"] == n == len(half_hours(day))
    assert body["results"][-1]["interval_start"] == "2026-10-25T00:00:00+01:00"
    assert body["results"][0]["interval_start"] == "2026-10-25T23:30:00Z"


def test_the_bad_day_misses_a_fifth_of_the_readings_and_the_meter_none() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    assert sim.settled.bad_day == date(2026, 11, 29)
    lo, hi = day_bounds(date(2026, 11, 29))
    steps = int((hi - lo).total_seconds()) // 10
    seen = sum(sim.reading_at(lo + timedelta(seconds=10 * i)) is not None for i in range(steps))
    assert 0.70 * steps < seen < 0.90 * steps
    lo2 = lo - timedelta(days=1)
    normal = sum(sim.reading_at(lo2 + timedelta(seconds=10 * i)) is not None for i in range(steps))
    assert normal > 0.97 * steps
    sim.settled.extra_rows = False
    _, body = get(sim, period_from=lo.isoformat(), period_to=hi.isoformat())
    assert body["count"] == 48


def test_errors() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    assert get(sim, key="sk_live_wrong") == (401, {"detail": "Invalid API key."})
    other = f"/v1/electricity-meter-points/{ids.MPAN}/meters/000/consumption/"
    assert get(sim, path=other)[0] == 404
    assert get(sim, period_to="2026-11-30T00:00:00Z")[0] == 400


def test_the_smart_gas_meter_answers_in_cubic_metres_and_the_old_one_not_at_all() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    sim.settled.extra_rows = False
    gas = f"/v1/gas-meter-points/{ids.MPRN}/meters/{ids.GAS_SERIAL}/consumption/"
    status, body = get(sim, path=gas, period_from="2026-11-29T00:00:00Z", order_by="period")
    assert status == 200 and body["count"] == 96
    row = body["results"][18]  # 09:00 UTC: the morning heating
    start = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    assert row["interval_start"] == "2026-11-29T09:00:00Z"
    item = sim.gas_reading_at(start)
    wh = Decimal(item["consumptionDelta"]) if item else None
    m3 = Decimal(str(row["consumption"]))
    assert m3 == sim.settled.gas_m3(start) and m3 > 0
    if wh is not None:  # the same energy as the Home Mini's, at 39.5 MJ/m³, to 3 dp
        assert abs(
            m3 * Decimal("1.02264") * Decimal("39.5") / Decimal("3.6") - wh / 1000
        ) < Decimal("0.006")
    old = f"/v1/gas-meter-points/{ids.MPRN}/meters/{ids.GAS_SERIAL_OLD}/consumption/"
    assert get(sim, path=old)[0] == 404


def test_a_meter_exchange_the_old_gas_meter_answers_until_it_was_replaced() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    sim.settled.extra_rows = False
    sim.settled.old_gas_until = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    old = f"/v1/gas-meter-points/{ids.MPRN}/meters/{ids.GAS_SERIAL_OLD}/consumption/"
    status, body = get(sim, path=old, period_from="2026-11-29T00:00:00Z", order_by="period")
    assert status == 200 and body["count"] == 18  # 00:00 to 09:00 UTC
    assert body["results"][-1]["interval_end"] == "2026-11-29T09:00:00Z"
    for row in body["results"]:
        start = datetime.fromisoformat(row["interval_start"].replace("Z", "+00:00"))
        assert Decimal(str(row["consumption"])) == sim.settled.old_gas_m3(start)
    smart = f"/v1/gas-meter-points/{ids.MPRN}/meters/{ids.GAS_SERIAL}/consumption/"
    assert get(sim, path=smart, period_from="2026-11-29T00:00:00Z")[1]["count"] == 96
