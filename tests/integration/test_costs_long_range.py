"""`octomon costs` over long ranges against the simulator: five years back is a month per row,
the months without data one row, and the answer fits on a screen; a range across New Year
shows each day with its year."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.uktime import uk_day, uk_midnight
from tests.helpers.cli import point_at_sim

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
]  # 5 years of settled half-hours from the sim


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimHomeMini, SimServer]]:
    home = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(home) as server:
        point_at_sim(monkeypatch, home, server)
        yield home, server


def test_five_years_back_is_a_screenful(sim: tuple[SimHomeMini, SimServer]) -> None:
    today = uk_day(datetime.now(timezone.utc))
    since = today.replace(year=today.year - 5, day=1)
    result = CliRunner().invoke(app, ["costs", "--since", since.isoformat()])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) <= 40, result.output
    assert lines[0].startswith("UK month ")
    missing = [line for line in lines if "missing: " in line]
    assert len(missing) == 1, result.output
    assert missing[0].startswith(f"{since:%b %Y} – ")
    months = [line for line in lines if line[:4] in {f"{m} " for m in MONTHS}]
    assert months and all(line.split()[1].isdigit() for line in months), result.output
    assert lines[-1].startswith("Total £") or "Total £" in result.output


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def test_a_range_across_new_year_shows_the_year(sim: tuple[SimHomeMini, SimServer]) -> None:
    today = uk_day(datetime.now(timezone.utc))
    sim[0].rest.moved_in_at = uk_midnight(today - timedelta(days=500))  # a customer then
    since = date(today.year - 1, 12, 30)
    until = date(today.year, 1, 2)
    result = CliRunner().invoke(
        app, ["costs", "--since", since.isoformat(), "--until", until.isoformat()]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("UK day ")
    days = [line for line in lines if line[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")]
    shown = {line[:15] for line in days}
    assert {f"{d:%a} {d.day:>2} {d:%b} {d.year}" for d in (since, until)} <= shown | {
        line.split(" – ")[0] for line in days
    }, result.output
