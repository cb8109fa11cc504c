"""Bad input from the REST API (SPEC §9, §10): a rates page with a null or non-numeric price,
a consumption row without ``interval_start``. Each is one clear warning line; nothing else
is lost (the other rows are kept and priced); the exit code is 0 (the API answered). Against
the simulator over HTTP, with the answers spoiled on the way out by a test-side route."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.sim.protocol import SimResponse, json_answer
from octomon.uktime import uk_day
from tests.helpers.cli import point_at_sim

pytestmark = pytest.mark.integration


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHomeMini]:
    sim = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(sim) as server:
        point_at_sim(monkeypatch, sim, server)
        yield sim


def spoil(sim: SimHomeMini, pattern: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Answer ``pattern`` as the sim does, with ``change`` applied to its JSON first."""
    original = list(sim.rest._routes)

    def spoiled(m: re.Match[str], query: dict[str, str], now: datetime) -> SimResponse:
        for route in original:
            if route.pattern.match(m.string):
                answer = route.handler(route.pattern.match(m.string), query, now)  # type: ignore[arg-type]
                body = json.loads(answer.body)
                change(body)
                return json_answer(answer.status, body)
        raise AssertionError(m.string)

    sim.rest.route(pattern, spoiled, auth=True)
    sim.rest._routes.insert(0, sim.rest._routes.pop())


def costs(sim: SimHomeMini) -> tuple[int, list[str], dict[str, Any]]:
    day = (uk_day(sim.clock()) - timedelta(days=3)).isoformat()
    result = CliRunner().invoke(app, ["costs", "--since", day, "--until", day, "--json"])
    lines = result.output.splitlines()
    start = lines.index("{")
    return result.exit_code, lines[:start], json.loads("\n".join(lines[start:]))


def test_a_rate_row_without_a_usable_price_is_one_line_and_only_its_half_hour_is_unpriced(
    home: SimHomeMini,
) -> None:
    def null_price(body: dict[str, Any]) -> None:
        for row in body["results"]:
            row["value_inc_vat"] = None  # every gas unit rate row: null
        if body["results"]:
            body["results"][0]["value_exc_vat"] = "n/a"

    spoil(home, r"products/(?P<p>[^/]+)/gas-tariffs/(?P<t>[^/]+)/standard-unit-rates", null_price)
    code, said, out = costs(home)
    assert code == 0, said
    warnings = [line for line in said if "row(s) of standard-unit-rates" in line]
    assert len(warnings) == 1 and "without a valid_from or a numeric price: skipped" in warnings[0]
    rows = {d["fuel"]: d for d in out["days"]}
    assert rows["gas"]["energy_cost"] is None and "prices" in rows["gas"]["missing"]
    assert rows["electricity"]["total"] is not None  # nothing else lost
    assert "Traceback" not in "\n".join(said)


def test_a_consumption_row_without_interval_start_is_one_line(home: SimHomeMini) -> None:
    def no_start(body: dict[str, Any]) -> None:
        for row in body["results"][:3]:
            del row["interval_start"]

    spoil(
        home,
        r"(?P<kind>electricity)-meter-points/(?P<point>[^/]+)/meters/(?P<serial>[^/]+)/consumption",
        no_start,
    )
    code, said, out = costs(home)
    assert code == 0, said
    warnings = [line for line in said if "consumption row(s)" in line]
    assert len(warnings) == 1 and "3 consumption row(s)" in warnings[0]
    rows = {d["fuel"]: d for d in out["days"]}
    assert rows["gas"]["source"] == "settled"  # nothing else lost
    assert rows["electricity"]["source"] in ("live", "missing")  # 3 half-hours short: not settled
