"""The live panel: rendered from a fixed Status into a recording console."""

from __future__ import annotations

import io
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from octomon import logs
from octomon.cli.panel import BLOCKS, LivePanel, format_age, render, sparkline
from octomon.daemon.status import Status

NOW = datetime(2026, 11, 27, 14, 30, tzinfo=timezone.utc)


def _status(**changes: object) -> Status:
    status = Status(
        started_at=NOW - timedelta(hours=2, minutes=3),
        poll_interval=60,
        call_budget=75,
        mode="cache",
        last_cycle_at=NOW - timedelta(seconds=5),
        last_good_cycle_at=NOW - timedelta(seconds=5),
        last_reading_at=NOW - timedelta(seconds=35),
        last_demand_kw=0.624,
        cache_backlog=1234,
        calls_last_hour=42,
        stored_this_session=5678,
        last_alert="InfluxDB lost: readings go to the cache",
        last_error="InfluxDB unavailable: connection refused",
    )
    for i in range(180):  # 30 min of 10-s readings: base load with a kettle in the middle
        if 60 < i < 70:
            continue  # a gap
        at = NOW - timedelta(minutes=30) + timedelta(seconds=10 * i)
        status.record_demand(at, 3.2 if 100 <= i < 118 else 0.3)
    for key, value in changes.items():
        setattr(status, key, value)
    return status


def _text(status: Status, now: datetime = NOW, width: int = 100) -> str:
    console = Console(record=True, width=width)
    console.print(render(status, now))
    return console.export_text()


def _row(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.startswith("│ " + label):
            return line
    raise AssertionError(f"no row {label!r} in\n{text}")


def test_every_value_is_on_the_panel() -> None:
    text = _text(_status())
    assert "0.624 kW" in _row(text, "demand")
    assert "14:29:25 UTC (35 s ago)" in _row(text, "last reading")
    assert "5,678 readings this session" in _row(text, "stored")
    assert "cache" in _row(text, "mode")
    assert "1,234 readings" in _row(text, "cache backlog")
    assert "42 / 75" in _row(text, "API calls (1 h)")
    assert "InfluxDB lost: readings go to the cache" in _row(text, "last alert")
    assert "connection refused" in _row(text, "last error")
    assert "poll every 60 s" in text and "up 2 h 3 min" in text


def test_sparkline_shows_the_kettle_and_the_gap() -> None:
    spark = _row(_text(_status()), "last 30 min")
    assert "█" in spark  # the kettle is the peak
    assert spark.count("▂") > 40  # the base load (0.3 of 3.2 kW, scaled from zero) is low
    found = re.search(f"[{BLOCKS}][{BLOCKS} ]*[{BLOCKS}]", spark)
    assert found is not None
    blocks = found.group(0)
    assert len(blocks) == 60
    assert " " in blocks  # the gap is a gap, not a zero
    assert "0.30–3.20 kW" in spark


@pytest.mark.parametrize(("mode", "label"), [("influxdb", "InfluxDB"), ("local", "local")])
def test_modes(mode: str, label: str) -> None:
    assert label in _row(_text(_status(mode=mode, cache_backlog=0)), "mode")


def test_budget_used_up_is_said() -> None:
    row = _row(_text(_status(calls_last_hour=75)), "API calls (1 h)")
    assert "75 / 75" in row and "waiting for a free slot" in row


def test_stale_reading_is_flagged() -> None:
    row = _row(_text(_status(), now=NOW + timedelta(minutes=20)), "last reading")
    assert "20 min ago" in row and "stale" in row


def test_a_fresh_start_has_no_numbers_yet() -> None:
    status = Status(started_at=NOW, poll_interval=60, call_budget=75, mode="local")
    text = _text(status)
    assert "no reading yet" in _row(text, "demand")
    assert "none yet" in _row(text, "last reading")
    assert "0 / 75" in _row(text, "API calls (1 h)")
    assert "no readings yet" in _row(text, "last 30 min")
    assert "none" in _row(text, "last alert")


def test_narrow_terminal_keeps_the_sparkline_on_one_line() -> None:
    text = _text(_status(last_error=None), width=60)
    assert len(text.splitlines()) == 14  # two borders + twelve rows, nothing wrapped
    assert "kW" in _row(text, "last 30 min")


def test_sparkline_scaling() -> None:
    start = NOW - timedelta(minutes=30)
    history = [(start + timedelta(minutes=i), float(i)) for i in range(30)]
    spark = sparkline(history, NOW, width=30)
    assert spark is not None
    line, low, high = spark
    assert line[0] == BLOCKS[0] and line[-1] == BLOCKS[-1]
    assert list(line) == sorted(line)
    assert (low, high) == (0.0, 29.0)
    assert sparkline([], NOW) is None
    assert sparkline([(NOW - timedelta(hours=1), 1.0)], NOW) is None  # outside the span
    flat = sparkline([(NOW - timedelta(minutes=1), 0.0)], NOW, width=10)
    assert flat is not None and flat[0].strip() == BLOCKS[0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0 s"),
        (35, "35 s"),
        (240, "4 min"),
        (7500, "2 h 5 min"),
        (3 * 86400 + 7200, "3 d 2 h"),
    ],
)
def test_format_age(seconds: int, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text


def test_live_panel_renders_updates_and_routes_logs_above_it() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None)
    logs.setup("info", stream=console.file)
    # The handler writes to the same terminal the panel draws on: it must be redirected.
    handler = logging.getLogger().handlers[-1]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(console.file)
    clock_now = [NOW]
    try:
        import sys

        original = sys.stderr
        sys.stderr = console.file  # the panel treats the process's stderr as "the terminal"
        try:
            with LivePanel(console=console, clock=lambda: clock_now[0]) as panel:
                assert handler.stream is not console.file  # swapped for a proxy
                panel.update(_status())
                logging.getLogger("octomon.test").warning("a log line while the panel is up")
                clock_now[0] = NOW + timedelta(seconds=10)
                panel.update(_status(stored_this_session=5690))
            assert handler.stream is console.file  # restored
        finally:
            sys.stderr = original
    finally:
        logs.setup("info")
    out = stream.getvalue()
    assert "a log line while the panel is up" in out
    assert "5,690 readings this session" in out
    assert "(45 s ago)" in out  # the clock moved on


def test_the_price_now_and_what_the_demand_costs_an_hour() -> None:
    text = _text(_status(last_demand_kw=0.56, unit_rate=0.245, tariff_code="E-1R-AGILE-24-10-01-C"))
    row = " ".join(_row(text, "price").split("│")[1].split())
    assert row == "price 24.5 p/kWh · 13.7 p/h at this demand"  # the kW is the demand row's
    assert " ".join(_row(_text(_status()), "price").split()) == "│ price — │"  # not known yet


def test_today_of_both_fuels() -> None:
    status = _status(
        electricity_today_kwh=5.43,
        electricity_today_gbp=1.87,
        gas_today_kwh=12.3,
        gas_today_gbp=0.7,
        gas_last_reading_at=NOW - timedelta(minutes=45),
    )
    text = _text(status)
    assert "5.43 kWh · £1.87 with standing charge" in _row(text, "today")
    assert "12.30 kWh · £0.70 · newest 13:45 UTC (45 min ago)" in _row(text, "gas today")


def _frame(status: Status | None, width: int, stopped: bool = False) -> list[str]:
    console = Console(record=True, width=width)
    console.print(render(status, NOW, stopped=stopped))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_layout_is_fixed_from_the_first_frame(width: int) -> None:
    """Starting, then no price or gas yet, then everything known: the same rows, one line
    each, so nothing jumps when the tariffs and the gas arrive."""
    starting = _frame(None, width)
    early = _frame(Status(started_at=NOW, poll_interval=60, call_budget=75), width)
    full = _status(
        unit_rate=0.245,
        electricity_today_kwh=5.43,
        electricity_today_gbp=1.87,
        gas_today_kwh=12.3,
        gas_today_gbp=0.7,
        gas_last_reading_at=NOW - timedelta(minutes=45),
        last_error="InfluxDB unavailable: connection refused after a very long explanation",
        calls_last_hour=75,
    )
    later = _frame(full, width, stopped=True)
    assert len(starting) == len(early) == len(later) == 14
    labels = [line[2:18].strip() for line in starting[1:-1]]
    assert labels == [line[2:18].strip() for line in later[1:-1]]
    assert "—" in _row("\n".join(early), "price") and "—" in _row("\n".join(early), "gas")
    assert all(len(line) <= width for line in later)


def test_the_final_frame_says_stopped() -> None:
    assert "Ctrl-C to stop" in _frame(_status(), 100)[-1]
    last = _frame(_status(), 100, stopped=True)[-1]
    assert "stopped" in last and "Ctrl-C" not in last
    assert "stopped" in _frame(None, 100, stopped=True)[-1]


def test_live_panel_leaves_a_stopped_frame() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None)
    with LivePanel(console=console, clock=lambda: NOW) as panel:
        panel.update(_status())
    bottoms = [line for line in stream.getvalue().splitlines() if "╰" in line]
    assert "Ctrl-C to stop" in bottoms[0]
    assert "stopped" in bottoms[-1] and "Ctrl-C" not in bottoms[-1]  # the frame left on screen


def test_local_mode_keeps_readings_locally_without_a_warning() -> None:
    row = _row(_text(_status(mode="local", cache_backlog=120)), "cache backlog")
    assert "120 readings kept locally" in row and "waiting" not in row
    assert "waiting for InfluxDB" in _row(_text(_status(mode="cache")), "cache backlog")
