"""The simulator's REST face, through ``SimHomeMini.handle`` (no sockets)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from octomon.sim import SimHomeMini
from octomon.sim import account as ids
from tests.helpers.clock import ManualClock

NOW = datetime(2026, 12, 1, 15, 59, tzinfo=timezone.utc)  # 15:59 GMT
AGILE = f"/v1/products/AGILE-24-10-01/electricity-tariffs/{ids.AGILE_IMPORT_TARIFF}"
FIXED = "/v1/products/OE-FIX-12M-25-09-01/electricity-tariffs/E-1R-OE-FIX-12M-25-09-01-C"


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def get(sim: SimHomeMini, path: str, key: str | None = None) -> tuple[int, Any]:
    resp = sim.handle("GET", path, basic(key) if key else None, b"")
    return resp.status, json.loads(resp.body)


def test_the_account_needs_the_key() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    path = f"/v1/accounts/{sim.account_number}/"
    assert get(sim, path) == (401, {"detail": "Authentication credentials were not provided."})
    assert get(sim, path, "sk_live_wrong") == (401, {"detail": "Invalid API key."})
    status, body = get(sim, path, sim.api_key)
    assert status == 200
    old, current = body["properties"]
    assert old["moved_out_at"] is not None and current["moved_out_at"] is None
    point = current["electricity_meter_points"][0]
    assert point["mpan"] == ids.MPAN and point["is_export"] is False
    fixed, agile = point["agreements"]
    assert fixed["tariff_code"] == ids.FIXED_IMPORT_TARIFF
    assert agile["tariff_code"] == ids.AGILE_IMPORT_TARIFF
    assert fixed["valid_to"] == agile["valid_from"] == "2026-11-21T00:00:00+00:00"
    gas = current["gas_meter_points"][0]
    assert [m["serial_number"] for m in gas["meters"]] == [ids.GAS_SERIAL_OLD, ids.GAS_SERIAL]
    assert get(sim, "/v1/accounts/A-00000000/", sim.api_key)[0] == 404


def test_rates_page_newest_first_with_absolute_next_links() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    sim.rest.page_size = 10
    query = "?period_from=2026-12-01T00:00:00Z&period_to=2026-12-01T12:00:00Z"
    status, body = get(sim, AGILE + "/standard-unit-rates/" + query)
    assert status == 200 and body["count"] == 24 and body["previous"] is None
    assert body["results"][0]["valid_from"] == "2026-12-01T11:30:00Z"
    assert body["next"] == (
        "https://api.octopus.energy" + AGILE + "/standard-unit-rates/"
        "?period_from=2026-12-01T00%3A00%3A00Z&period_to=2026-12-01T12%3A00%3A00Z&page=2"
    )
    status, last = get(sim, AGILE + "/standard-unit-rates/" + query + "&page=3")
    assert last["next"] is None and len(last["results"]) == 4
    assert last["results"][-1]["valid_from"] == "2026-12-01T00:00:00Z"
    assert all(r["payment_method"] is None for r in last["results"])


def test_tomorrows_agile_prices_appear_at_16_uk() -> None:
    clock = ManualClock(NOW)
    sim = SimHomeMini(clock=clock)
    path = AGILE + "/standard-unit-rates/?period_from=2026-12-02T00:00:00Z&page_size=1500"
    assert get(sim, path)[1]["count"] == 0
    clock.advance(minutes=1)  # 16:00 UK
    body = get(sim, path)[1]
    assert body["count"] == 46  # to 23:00 UK tomorrow
    assert body["results"][0]["valid_to"] == "2026-12-02T23:00:00Z"


def test_agile_prices_are_deterministic_and_sometimes_negative() -> None:
    a, b = SimHomeMini(clock=ManualClock(NOW)), SimHomeMini(clock=ManualClock(NOW))
    path = AGILE + "/standard-unit-rates/?period_from=2026-11-01T00:00:00Z&page_size=1500"
    rows = get(a, path)[1]["results"]
    assert rows == get(b, path)[1]["results"]
    assert any(r["value_exc_vat"] < 0 for r in rows)


def test_fixed_tariffs_have_a_direct_debit_and_a_non_direct_debit_row() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    rows = get(sim, FIXED + "/standard-unit-rates/")[1]["results"]
    assert [(r["payment_method"], r["value_exc_vat"], r["value_inc_vat"]) for r in rows] == [
        ("DIRECT_DEBIT", 23.81, 25.0005),
        ("NON_DIRECT_DEBIT", 25.05, 26.3025),
    ]


def test_standard_rates_of_a_dual_register_tariff_are_400() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW))
    e7 = FIXED.replace("E-1R-", "E-2R-")
    assert get(sim, e7 + "/standard-unit-rates/")[0] == 400
    assert get(sim, e7 + "/night-unit-rates/")[1]["results"][0]["value_exc_vat"] == 12.588
    assert get(sim, "/v1/products/NOPE-1/")[0] == 404


def test_rest_requests_count_in_the_sims_rate_limit() -> None:
    sim = SimHomeMini(clock=ManualClock(NOW), rate_limit_per_hour=2)
    assert get(sim, "/v1/products/AGILE-24-10-01/")[0] == 200
    assert get(sim, "/v1/products/AGILE-24-10-01/")[0] == 200
    assert get(sim, "/v1/products/AGILE-24-10-01/") == (429, {"detail": "Request was throttled."})
    assert len(sim.rest.calls) == 2 and sim.rate_limited_answers == 1
