"""The live panel of ``octomon run`` on a terminal (SPEC §4.8).

:func:`render` is a pure function of a :class:`~octomon.daemon.status.Status` and the time, so it
is tested by rendering into a recording console. :class:`LivePanel` wraps ``rich.live.Live``:
it re-renders once a second (the ages tick) and routes log lines above the panel through
the same console, so nothing writes over it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from octomon.alerts.policy import duration
from octomon.clock import Clock, utcnow
from octomon.daemon.status import Status

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_SPAN = timedelta(minutes=30)
SPARK_WIDTH = 60  # 30-second columns on a wide terminal
_MIN_SPARK = 15
_RANGE_WIDTH = 16  # "  0.20–3.12 kW"
STALE_AFTER = timedelta(minutes=15)  # SPEC §4.6: no new readAt for 15 min is "stale"
MODE_LABELS = {"influxdb": "InfluxDB", "cache": "cache", "local": "local"}
_MODE_STYLES = {"influxdb": "green", "cache": "yellow", "local": "cyan"}


def format_age(age: timedelta) -> str:
    """``35 s``, ``4 min``, ``2 h 5 min``, ``3 d 4 h``: the alerts' wording, on screen too."""
    return duration(age)


def sparkline(
    history: list[tuple[datetime, float]],
    end: datetime,
    span: timedelta = SPARK_SPAN,
    width: int = SPARK_WIDTH,
) -> tuple[str, float, float] | None:
    """Demand over ``[end - span, end)`` as block characters, one column per slice of time.

    Each column is the mean of the readings in its slice; a slice without readings is a
    space (a gap shows as a gap). The blocks scale from min(0, lowest) to the highest
    value. Returns (line, low, high), or None when there is nothing in the span.
    """
    start = end - span
    step = span / width
    sums = [0.0] * width
    counts = [0] * width
    for at, kw in history:
        if start <= at < end:
            col = min(width - 1, int((at - start) / step))
            sums[col] += kw
            counts[col] += 1
    means = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
    values = [m for m in means if m is not None]
    if not values:
        return None
    low, high = min(0.0, min(values)), max(values)
    top = len(BLOCKS) - 1
    chars = []
    for m in means:
        if m is None:
            chars.append(" ")
        elif high <= low:
            chars.append(BLOCKS[0])
        else:
            chars.append(BLOCKS[round((m - low) / (high - low) * top)])
    return "".join(chars), min(values), max(values)


class _Spark:
    """The sparkline cell: as many columns as the terminal leaves room for (up to 60)."""

    def __init__(self, history: list[tuple[datetime, float]], end: datetime) -> None:
        self.history = history
        self.end = end

    def _text(self, width: int) -> Text:
        spark = sparkline(self.history, self.end, width=width)
        if spark is None:
            return Text("no readings yet", style="dim")
        blocks, low, high = spark
        cell = Text(blocks, style="cyan", no_wrap=True, overflow="ellipsis")
        cell.append(f"  {low:.2f}–{high:.2f} kW", style="dim")
        return cell

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width - _RANGE_WIDTH
        yield self._text(max(_MIN_SPARK, min(SPARK_WIDTH, room)))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(_MIN_SPARK + _RANGE_WIDTH, SPARK_WIDTH + _RANGE_WIDTH)


def _time(dt: datetime) -> str:
    return dt.strftime("%H:%M:%S UTC")


NOT_YET = "—"  # a row whose figure is not known (yet): the rows never come and go


def _dim(text: str) -> Text:
    return Text(text, style="dim")


def render(status: Status | None, now: datetime, *, stopped: bool = False) -> RenderableType:
    """The panel for one moment: every value the monitor reports, at a glance.

    The rows are the same from the first frame to the last (``—`` where a figure is not
    known yet: the price before the tariffs are fetched, gas before its first half-hour, or
    on an account without gas), and each is one line (cut with "…" on a narrow terminal,
    never wrapped), so nothing jumps when a figure arrives. ``status`` None: starting.
    ``stopped``: the final frame, left on screen after Ctrl-C or SIGTERM.
    """
    grid = Table.grid(padding=(0, 2))
    rows = _rows(status, now)
    grid.add_column(style="bold", no_wrap=True, min_width=max(len(label) for label, _ in rows))
    grid.add_column()  # each value is one line of its own (_line)
    for label, value in rows:
        grid.add_row(label, _line(value) if isinstance(value, Text) else value)
    if status is None:
        subtitle = "stopped" if stopped else "starting…"
    else:
        uptime = format_age(now - status.started_at)
        end = "stopped" if stopped else "Ctrl-C to stop"
        subtitle = f"poll every {status.poll_interval} s · up {uptime} · {end}"
    return Panel(
        grid,
        title="[bold]octomon[/bold]",
        title_align="left",
        subtitle=subtitle,
        subtitle_align="right",
        expand=False,
    )


def _line(text: Text) -> Text:
    """One line, cut with "…" when the terminal is too narrow: never wrapped."""
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _rows(status: Status | None, now: datetime) -> list[tuple[str, RenderableType]]:
    if status is None:
        labels = [label for label, _ in _rows(Status(now, 0, 0), now)]
        return [(label, _dim(NOT_YET)) for label in labels]
    rows: list[tuple[str, RenderableType]] = []
    if status.last_demand_kw is not None:
        rows.append(("demand", Text(f"{status.last_demand_kw:.3f} kW", style="bold")))
    else:
        rows.append(("demand", _dim("no reading yet")))

    if status.last_reading_at is not None:
        age = now - status.last_reading_at
        line = Text(f"{_time(status.last_reading_at)} ({format_age(age)} ago)")
        if age >= STALE_AFTER:
            line.stylize("yellow")
            line.append("  stale: power-cycle the Home Mini if it lasts", style="yellow")
        rows.append(("last reading", line))
    else:
        rows.append(("last reading", _dim("none yet")))

    price = status.price_summary()
    rows.append(("price", Text(price) if price is not None else _dim(NOT_YET)))
    today = status.electricity_today()
    rows.append(("today", Text(today) if today is not None else _dim(NOT_YET)))
    gas = status.gas_panel(now)
    rows.append(("gas today", Text(gas) if gas is not None else _dim(NOT_YET)))

    rows.append(("stored", Text(f"{status.stored_this_session:,} readings this session")))
    mode = Text(MODE_LABELS.get(status.mode, status.mode), style=_MODE_STYLES.get(status.mode, ""))
    rows.append(("mode", mode))
    rows.append(("cache backlog", _backlog(status)))

    calls = Text(f"{status.calls_last_hour} / {status.call_budget}")
    if status.call_budget and status.calls_last_hour >= status.call_budget:
        calls.stylize("yellow")
        calls.append("  (budget used: waiting for a free slot)", style="yellow")
    rows.append(("API calls (1 h)", calls))
    rows.append(("last 30 min", _Spark(status.demand_history, now)))
    rows.append(("last alert", Text(status.last_alert) if status.last_alert else _dim("none")))
    error = status.last_error
    rows.append(("last error", Text(error, style="red") if error else _dim("none")))
    return rows


def _backlog(status: Status) -> Text:
    """Local mode keeps every reading in the cache by design: said so, not like a fault."""
    text = Text(f"{status.cache_backlog:,} readings")
    if status.mode == "local":
        text.append(" kept locally (no InfluxDB set)", style="cyan")
    elif status.cache_backlog:
        text.append("  (waiting for InfluxDB)", style="yellow")
    return text


class LivePanel:
    """``with LivePanel() as panel: ... panel.update(status)``.

    Refreshes once a second (enough for the ages; low enough not to flicker), stays on
    screen after exit (``transient=False``), and while open routes the log handler's
    output above the panel instead of letting it write across it.
    """

    def __init__(self, console: Console | None = None, clock: Clock = utcnow) -> None:
        self.console = console or Console(highlight=False)
        self.clock = clock
        self._status: Status | None = None
        self._stopped = False
        self._live = Live(
            console=self.console,
            get_renderable=self._renderable,
            refresh_per_second=1,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._logs: contextlib.AbstractContextManager[None] | None = None

    def _renderable(self) -> RenderableType:
        return render(self._status, self.clock(), stopped=self._stopped)

    def update(self, status: Status) -> None:
        self._status = status
        self._live.refresh()

    def __enter__(self) -> LivePanel:
        self._logs = logs_above(self.console)
        self._logs.__enter__()
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped = True  # the frame left on screen says so
        try:
            self._live.stop()
        finally:
            if self._logs is not None:
                self._logs.__exit__(exc_type, exc, tb)
                self._logs = None


@contextlib.contextmanager
def logs_above(console: Console) -> Iterator[None]:
    """While a live display is up, print log lines through its console (above it).

    The log handler holds the terminal's stream itself, so rich's own stdout/stderr
    redirection would not catch it and its lines would be drawn across the display.
    """
    terminal = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
            original = handler.setStream(FileProxy(console, handler.stream))
            try:
                yield
            finally:
                proxy = handler.setStream(original) if original is not None else None
                if proxy is not None:
                    proxy.flush()
            return
    yield
