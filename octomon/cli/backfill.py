"""`octomon backfill --since DATE [--until DATE]`: parse, wire, call the core, render."""

import contextlib
import enum
import signal
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from octomon.cli import dates, ui
from octomon.clock import command_now, utcnow
from octomon.errors import ExitCode
from octomon.readings import format_time

if TYPE_CHECKING:
    from octomon.history.backfill import BackfillPlan, BackfillProgress, BackfillResult


HELP = (
    "Fetch history at 10-second resolution and store it like live data.\n\n"
    "Windows of up to 6 hours, within the API call budget it shares with a running daemon "
    "(whose cursor it leaves alone). Re-running is harmless. Exit 0 when everything was "
    "stored; 1 when part is missing (the spans are printed). --fuel gas fetches the smart "
    "gas meter's half-hours (gas_consumption); all (the default) does electricity, then gas."
)


class Fuel(str, enum.Enum):
    electricity = "electricity"
    gas = "gas"
    all = "all"


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "backfill", help=HELP)(backfill)


def parse_date(option: str, raw: str) -> datetime:
    """ISO 8601 -> aware UTC; a bare date is midnight UTC, no offset means UTC."""
    return dates.parse_instant(option, raw)


def backfill(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Start of the history to fetch: ISO 8601; a bare date is midnight UTC.",
            show_default=False,
        ),
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="End of the history to fetch (exclusive; default: now).",
            show_default=False,
        ),
    ] = None,
    fuel: Annotated[
        Fuel,
        typer.Option(
            "--fuel",
            metavar="FUEL",
            help="electricity, gas (the smart gas meter's half-hours) or all.",
            case_sensitive=False,
        ),
    ] = Fuel.all,
    env_file: ui.EnvFileOption = None,
) -> None:
    """Fetch history at 10-second resolution and store it like live data (see HELP)."""
    now = command_now()
    start = parse_date("--since", since)
    end = parse_date("--until", until) if until is not None else now
    if end > now:
        ui.console.print(
            f"--until is in the future: fetching up to now ({format_time(now)})", soft_wrap=True
        )
        end = now
    if start >= now:
        dates.in_future("--since", format_time(start), f"now is {format_time(now)}")
    if start >= end:
        dates.before(format_time(start), format_time(end), equal=start == end)
    settings = ui.load_settings(ctx, env_file, ["all"])

    from octomon import fsutil
    from octomon.daemon.status import Status
    from octomon.history import backfill as core
    from octomon.store.tally import Tally, TallyRecorder
    from octomon.wiring import Wiring

    try:
        fsutil.ensure_private_dir(settings.cache_dir)
    except OSError as exc:
        ui.fail(f"cannot create CACHE_DIR {settings.cache_dir} ({exc.strerror})", "check CACHE_DIR")
    wiring = Wiring(settings)
    budget = wiring.budget
    known_device = settings.octopus_device_id or wiring.known.device_id
    daemon = Status.read(settings.cache_dir)
    others = 0.0
    if daemon is not None and daemon.healthy(now):
        others = 3600 / daemon.poll_interval + 1  # its polls and a token renewal an hour
    gas_off = settings.octopus_gas == "off"
    if fuel is Fuel.gas and gas_off:
        ui.fail("--fuel gas, but OCTOPUS_GAS=off", "set OCTOPUS_GAS=auto", ExitCode.CONFIG)
    fuels = [f for f in (core.ELECTRICITY, core.GAS) if fuel.value in (f, "all")]
    if gas_off and core.GAS in fuels:
        fuels.remove(core.GAS)
        ui.console.print("gas is off (OCTOPUS_GAS=off): electricity only", soft_wrap=True)

    stop = threading.Event()
    problems: list[tuple[str, str | None]] = []
    try:
        cache, sink, client = wiring.cache, wiring.sink, wiring.octopus
        for one in fuels:
            if one == core.GAS and client.gas() is None:
                from octomon.octopus.gas import NOTES

                ui.console.print(f"{NOTES.get(client.gas_status, 'no gas')}: nothing to fetch")
                if fuel is Fuel.gas:
                    problems.append(("no smart gas meter on the account", None))
                continue
            known = known_device if one == core.ELECTRICITY else client.gas_meter
            the_plan = core.plan(
                start,
                end,
                budget,
                utcnow(),
                overhead_calls=1 if known else 2,
                others_per_hour=others,
            )
            _show_plan(the_plan, budget.max_per_hour, budget.calls_last_hour(utcnow()), others, one)
            with _stop_on_signals(stop), _Display(the_plan) as display:
                result = core.run_backfill(
                    the_plan,
                    client,
                    sink,
                    cache,
                    progress=display.event,
                    wait=stop.wait,
                    tally=TallyRecorder(Tally(settings.cache_dir)),
                    fuel=one,
                )
            problem = _report(result, sink is not None, one)
            if problem is not None:
                problems.append(problem)
            if result.interrupted:
                break
        if client.device_id and not known_device:
            with contextlib.suppress(OSError):
                core.remember_device(wiring.state, client.device_id)
    finally:
        wiring.close()
    if problems:
        hint = next((h for _, h in problems if h), None)
        ui.fail("backfill incomplete: " + "; ".join(p for p, _ in problems), hint, ExitCode.FAILED)


# --- rendering ---------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    from octomon.durations import words

    return words(seconds)


def _span(span: tuple[datetime, datetime]) -> str:
    lo, hi = span
    return f"{format_time(lo)} → {format_time(hi)} ({_duration((hi - lo).total_seconds())})"


def _show_plan(plan: "BackfillPlan", budget: int, used: int, others: float, fuel: str) -> None:
    hours = (plan.until - plan.since).total_seconds() / 3600
    n = len(plan.windows)
    ui.console.print(
        f"backfill {'gas ' if fuel == 'gas' else ''}{format_time(plan.since)} → "
        f"{format_time(plan.until)} ({hours:.1f} h): "
        f"{n} window{'s' if n != 1 else ''} of up to 6 h, about {plan.calls} API calls "
        f"(budget {budget} an hour, {used} used in the last hour"
        + (f", a running daemon uses about {others:.0f}" if others else "")
        + f"); expected to take about {_duration(plan.eta_seconds)}",
        soft_wrap=True,
    )


class _Display:
    """A rich progress bar on a terminal; one plain line per event otherwise."""

    def __init__(self, plan: "BackfillPlan") -> None:
        self.total = len(plan.windows)
        self.progress: Any = None
        self.task: Any = None
        self._logs: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> "_Display":
        if ui.is_terminal():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            from octomon.cli.panel import logs_above

            self.progress = Progress(
                TextColumn("[bold]backfill[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("windows · {task.fields[stored]:,} readings"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}", style="yellow"),
                console=ui.console,
                transient=False,
            )
            self._logs = logs_above(ui.console)
            self._logs.__enter__()
            self.progress.start()
            self.task = self.progress.add_task("backfill", total=self.total, stored=0, note="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self._logs is not None:
            self._logs.__exit__(None, None, None)

    @staticmethod
    def _note(ev: "BackfillProgress") -> str:
        if ev.kind != "waiting":
            return ""
        until = utcnow() + timedelta(seconds=ev.wait_seconds)
        return f"waiting until {until:%H:%M:%S} UTC"

    def line(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, soft_wrap=True, markup=False)
        else:
            ui.console.print(text, soft_wrap=True, markup=False)

    def event(self, ev: "BackfillProgress") -> None:
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=ev.windows_done,
                total=ev.windows_total,
                stored=ev.stored,
                note=self._note(ev),
            )
        if ev.kind == "window" and ev.window is not None:
            if self.progress is None:
                self.line(
                    f"window {ev.windows_done}/{ev.windows_total} {_span(ev.window)}: "
                    f"{ev.stored:,} readings stored so far"
                )
        elif ev.kind == "waiting":
            until = utcnow() + timedelta(seconds=ev.wait_seconds)
            self.line(
                f"waiting {_duration(ev.wait_seconds)} (until {until:%H:%M:%S} UTC): {ev.message}"
            )
        elif ev.kind == "missing" and ev.window is not None:
            self.line(f"not served by the Octopus API (too old): {_span(ev.window)}")
        elif ev.kind == "cache":
            self.line(f"storing in the cache: {ev.message}")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM: finish the request in flight, then stop and report what is left."""
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _report(result: "BackfillResult", influx: bool, fuel: str) -> tuple[str, str | None] | None:
    """Print what one fuel's run did; the problem (and a hint) when it is incomplete."""
    where = "InfluxDB" if influx and not result.cached else "the cache"
    if influx and result.cached and result.cached < result.stored:
        where = f"InfluxDB ({result.cached:,} of them in the cache)"
    what = "gas half-hours" if fuel == "gas" else "readings"
    ui.console.print(f"stored {result.stored:,} {what} in {where}", soft_wrap=True)
    if result.cached:
        todo = (
            "`octomon sync-cache` sends them (a running daemon does too, when it next syncs)"
            if influx
            else "local mode: `octomon sync-cache` or `octomon cache export` when you are ready"
        )
        ui.console.print(
            f"{result.cached:,} readings wait in the cache ({result.cache_reason}); {todo}",
            soft_wrap=True,
            markup=False,
        )
    if result.evicted:
        ui.console.print(
            f"the cache went over CACHE_MAX_MB: its oldest day files were dropped "
            f"({result.evicted:,} readings lost)",
            soft_wrap=True,
        )
    if result.rejected:
        ui.console.print(
            f"{result.rejected:,} readings were refused by InfluxDB ({result.rejected_message}); "
            "they are kept under CACHE_DIR/rejected/",
            soft_wrap=True,
            markup=False,
        )
    for span in result.missing:
        ui.console.print(
            f"missing (no longer served by the Octopus API): {_span(span)}", soft_wrap=True
        )
    for span in result.not_done:
        ui.console.print(f"not fetched: {_span(span)}", soft_wrap=True)
    if result.complete:
        return None
    problems = []
    if result.missing:
        problems.append("part of the range is no longer served by the Octopus API")
    if result.rejected:
        problems.append(f"InfluxDB refused {result.rejected:,} readings")
    if result.evicted:
        problems.append(f"{result.evicted:,} cached readings dropped over CACHE_MAX_MB")
    if result.error is not None:
        problems.append(result.error)
    hint = None
    if result.not_done:
        lo, hi = result.not_done[0][0], result.not_done[-1][1]
        hint = (
            f"`octomon backfill --since {format_time(lo)} --until {format_time(hi)}` "
            "fetches what is left"
        )
    if fuel == "gas":
        problems = [f"gas: {p}" for p in problems]
        hint = hint.replace("`octomon backfill", "`octomon backfill --fuel gas") if hint else None
    return "; ".join(problems), hint
