"""Output that reads well at 60, 80 and 120 columns: the reports, `status` and `cache status`
never break a word (a tariff code, a date, a figure) across lines; a cell too narrow for a
code is cut with "…", never folded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from octomon.daemon.status import Status
from octomon.sim import SimHomeMini, SimServer
from tests.cli.test_help import tokens
from tests.helpers.cli import invoke, set_clock
from tests.helpers.clock import ManualClock
from tests.helpers.sim_faults import FaultySim

T0 = datetime(2026, 12, 3, 15, 7, tzinfo=timezone.utc)
RANGE = ("--since", "2026-11-28", "--until", "2026-12-01")
COMMANDS = [
    ("tariff",),
    ("costs", *RANGE),
    ("reconcile", *RANGE),
    ("status",),
    ("cache", "status"),
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    clock = ManualClock(T0)
    set_clock(monkeypatch, clock)
    sim: SimHomeMini = FaultySim(clock=clock)
    cache_dir = Path(os.environ["CACHE_DIR"])
    cache_dir.mkdir(mode=0o700, exist_ok=True)
    Status(
        started_at=T0 - timedelta(hours=3),
        poll_interval=60,
        call_budget=75,
        mode="local",
        last_cycle_at=T0 - timedelta(seconds=20),
        last_good_cycle_at=T0 - timedelta(seconds=20),
        last_reading_at=T0 - timedelta(seconds=50),
        last_demand_kw=0.612,
        cache_backlog=12_345,
        calls_last_hour=61,
        stored_this_session=4321,
        unit_rate=0.2468,
        tariff_code="E-1R-AGILE-24-10-01-C",
        electricity_today_kwh=8.43,
        electricity_today_gbp=2.61,
        gas_today_kwh=21.07,
        gas_today_m3=1.879,
        gas_today_gbp=1.55,
        gas_last_reading_at=T0 - timedelta(minutes=67),
        last_error="InfluxDB unreachable: connection refused by 192.168.1.20:8086",
        last_alert="InfluxDB unreachable: caching readings",
        outputs={"mqtt": "connected to mqtt://broker.local:1883", "http": "127.0.0.1:9110"},
        pid=os.getpid(),
    ).write(cache_dir)
    with SimServer(sim) as server:
        yield {
            "OCTOPUS_API_KEY": sim.api_key,
            "OCTOPUS_ACCOUNT_NUMBER": sim.account_number,
            "OCTOPUS_API_URL": server.url,
            "OCTOPUS_REST_URL": server.rest_url,
        }


def _output(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: tuple[str, ...], width: int
) -> str:
    """What a terminal ``width`` columns wide shows (without colours)."""
    from octomon.cli import ui

    terminal = Console(width=width, highlight=False, force_terminal=True, color_system=None)
    monkeypatch.setattr(ui, "console", terminal, raising=False)
    monkeypatch.setattr(ui, "is_terminal", lambda: True)
    result = invoke(*args, env={**env, "COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.integration
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_word_is_broken_at_60_80_or_120_columns(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: tuple[str, ...]
) -> None:
    whole = set(tokens(_output(monkeypatch, env, args, 1000)))
    assert whole
    for width in (60, 80, 120):
        text = _output(monkeypatch, env, args, width)
        lines = text.splitlines()
        # A word cut in two: the end of a line and the start of the next make a word that
        # the unwrapped output has whole.
        broken = [
            (a[-1], b[0])
            for a, b in zip(map(tokens, lines), map(tokens, lines[1:]), strict=False)
            if a and b and a[-1] + b[0] in whole
        ]
        assert not broken, f"{' '.join(args)} at {width} columns: {broken}\n{text}"
        # A line the terminal would wrap itself (a path at its end may be longer: a path
        # is printed whole, to be copied).
        wide = [
            line for line in lines if len(line.rstrip()) > width and "/" not in line.split()[-1]
        ]
        assert not wide, f"{' '.join(args)} at {width} columns: {wide}\n{text}"
