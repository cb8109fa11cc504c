"""`octomon status`: the daemon's ``status.json`` (SPEC §6); `--check` for health checks.

Cron and Docker's HEALTHCHECK run this often, so it validates only CACHE_DIR and imports
nothing heavy.
"""

import json
import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from octomon.cli import ui
from octomon.errors import ExitCode

if TYPE_CHECKING:
    from octomon.daemon.status import Status


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "status")(status)


def status(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when the last good cycle is older than 3 poll intervals + 60 s, "
            "or there is no status file (for Docker HEALTHCHECK and cron).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status as one JSON object.")
    ] = False,
) -> None:
    """Show what the running daemon last reported (CACHE_DIR/status.json)."""
    from octomon.clock import command_now
    from octomon.daemon.status import STATUS_FILE, Status

    settings = ui.load_settings(ctx, env_file, ("cache",), show_warnings=False)
    path = settings.cache_dir / STATUS_FILE
    current = Status.read(settings.cache_dir)
    now = command_now()
    if current is None:
        ui.fail(
            f"no daemon status in {path}",
            "is `octomon run` running with this CACHE_DIR? (it writes the file every cycle)",
        )
    healthy = current.healthy(now)
    if as_json:
        data = current.to_dict()
        data["healthy"] = healthy
        ui.console.print_json(json.dumps(data))
    elif check:
        limit = 3 * current.poll_interval + 60
        if current.last_good_cycle_at is None:
            ui.fail(f"unhealthy: no good cycle yet (status written {_ago(current, now)})")
        age = _age(now - current.last_good_cycle_at)
        if not healthy:
            ui.fail(
                f"unhealthy: the last good cycle was {age} ago (limit {limit} s)",
                current.last_error,
            )
        ui.console.print(f"healthy: the last good cycle was {age} ago", markup=False)
    else:
        _render(current, now, healthy, str(path))
    if check and not healthy:
        raise typer.Exit(int(ExitCode.FAILED))


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _ago(current: "Status", now: datetime) -> str:
    return f"{_age(now - (current.last_cycle_at or current.started_at))} ago"


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    return f"{at.strftime('%Y-%m-%d %H:%M:%S UTC')} ({_age(now - at)} ago)"


def _alive(pid: int) -> bool | None:
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def _render(current: "Status", now: datetime, healthy: bool, path: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from octomon.durations import words

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    health = Text("healthy", style="green") if healthy else Text("unhealthy", style="red")
    within = words(3 * current.poll_interval + 60)
    health.append(f"  (a good cycle within {within})", style="dim")
    table.add_row("health", health)
    alive = _alive(current.pid)
    process = f"pid {current.pid}"
    if alive is False:
        process += " (not running on this host)"
    elif alive:
        process += " (running)"
    table.add_row("daemon", f"{process}, started {_when(current.started_at, now)}")
    table.add_row("mode", current.mode)
    table.add_row("last cycle", _when(current.last_cycle_at, now))
    table.add_row("last good cycle", _when(current.last_good_cycle_at, now))
    table.add_row("last reading", _when(current.last_reading_at, now))
    if current.last_demand_kw is not None:
        table.add_row("demand", f"{current.last_demand_kw:.3f} kW")
    price = current.price_summary()
    if price is not None:
        table.add_row("price", f"{price} ({current.tariff_code})")
    today = current.electricity_today()
    if today is not None:
        table.add_row("today", today)
    gas = current.gas_summary(now)
    if gas is not None:
        table.add_row("gas", gas)
    backlog = f"{current.cache_backlog:,} readings"
    if current.mode == "local":  # every reading is kept in the cache by design
        backlog += " kept locally (no InfluxDB set)"
    table.add_row("cache backlog", backlog)
    table.add_row(
        "API calls", f"{current.calls_last_hour} in the last hour (budget {current.call_budget})"
    )
    table.add_row("stored", f"{current.stored_this_session:,} readings since the start")
    table.add_row("poll interval", f"{current.poll_interval} s")
    for name, state in (current.outputs or {}).items():  # SPEC §13: MQTT, /metrics
        table.add_row(name.upper(), state)
    table.add_row(
        "last error",
        Text(current.last_error or "none", style="red" if current.last_error else "dim"),
    )
    table.add_row(
        "last alert", Text(current.last_alert or "none", style="" if current.last_alert else "dim")
    )
    ui.print_unpadded(table)
    ui.console.print(Text(path, style="dim"), soft_wrap=True)  # a path is never cut
