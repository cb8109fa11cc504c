"""`octomon run`: the monitor daemon (SPEC §4), `--once`, and `--demo` (SPEC §8)."""

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from octomon.cli import ui
from octomon.errors import ExitCode

if TYPE_CHECKING:
    from octomon.config import Settings
    from octomon.daemon.monitor import Monitor

log = logging.getLogger("octomon.run")

# The demo polls faster than a real account may, so readings move on screen; the
# simulator's limit is raised to match, and every call still goes through the ledger.
DEMO_POLL_SECONDS = 10
DEMO_CALLS_PER_HOUR = 400
DEMO_SIM_LIMIT = 500


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "run")(run)


def run(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run one poll cycle, then exit: 0 when it stored readings or there was "
            "nothing new, 1 when it failed.",
        ),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Run against the built-in simulated Home Mini, ignoring .env and every "
            "OCTOPUS_/INFLUXDB_/SLACK_ setting, into a temporary cache removed on exit.",
        ),
    ] = False,
) -> None:
    """Run the monitor daemon: poll the Home Mini, store to InfluxDB (or the cache), alert.

    Stops cleanly on SIGTERM or Ctrl-C (exit 0). Exit 2: bad configuration or key refused.
    """
    if demo:
        code = _demo(once)
    else:
        settings = ui.load_settings(ctx, env_file, ("all",))
        code = _run(settings, once=once)
    raise typer.Exit(int(code))


def _run(settings: "Settings", *, once: bool, demo: bool = False) -> ExitCode:
    from octomon.wiring import build_monitor

    stop = threading.Event()
    try:
        monitor = build_monitor(
            settings,
            stop=stop,
            max_calls_per_hour=DEMO_CALLS_PER_HOUR if demo else None,
        )
    except OSError as exc:
        ui.fail(
            f"cannot use CACHE_DIR {settings.cache_dir}: {exc.strerror or exc}",
            "check that it is a writable directory",
        )
    if once:
        return _once(monitor)
    return _daemon(monitor, stop)


def _once(monitor: "Monitor") -> ExitCode:
    """One cycle. In cache mode the backlog gets one bounded sync attempt first."""
    from octomon.clock import utcnow
    from octomon.daemon.outcome import AUTH
    from octomon.daemon.writer import DRAIN_SLICE

    monitor.start(utcnow(), announce=False)
    try:
        if monitor.writer.cache_mode:
            step = monitor.health_check(utcnow())
            if monitor.writer.draining:
                monitor.drain(utcnow(), max_readings=DRAIN_SLICE)
            if step.error is not None:
                ui.warn(f"the cache stays: {step.error.message}")
        result = monitor.cycle(utcnow())
    finally:
        monitor.close(utcnow(), announce=False)
    error = result.error
    if result.outcome == AUTH and error is not None:
        ui.fail(error.message, error.hint, ExitCode.CONFIG)
    if not result.ok:
        ui.fail(
            f"the poll cycle failed: {error.message if error else result.outcome.value}",
            error.hint if error else None,
        )
    ui.console.print(result.summary(), markup=False, soft_wrap=True)
    return ExitCode.OK


def _daemon(monitor: "Monitor", stop: threading.Event) -> ExitCode:
    from octomon.daemon.loop import Loop
    from octomon.daemon.notify import SystemdNotifier

    notifier = SystemdNotifier.from_env(os.environ)
    with ui.stop_on_signals(stop):
        if ui.is_terminal():
            from octomon.cli.panel import LivePanel

            with LivePanel() as panel:

                def show(m: "Monitor") -> None:
                    if m.status is not None:
                        panel.update(m.status)

                loop = Loop(monitor, stop=stop, notifier=notifier, on_update=show, log_cycles=False)
                code = loop.run()
        else:
            loop = Loop(monitor, stop=stop, notifier=notifier, log_cycles=True)
            code = loop.run()
    if notifier is not None:
        notifier.close()
    if code == ExitCode.CONFIG:
        error = loop.last_error
        ui.fail(
            error.message if error else "the Octopus API refused the API key",
            error.hint if error else "check OCTOPUS_API_KEY",
            ExitCode.CONFIG,
        )
    if code != ExitCode.OK:
        ui.fail("the monitor stopped after repeated unexpected errors", "see the log above")
    log.info("stopped")
    return ExitCode.OK


def _demo_env(tmp: Path, settings: "Settings") -> Path:
    """A settings file pointing the other commands at the demo's simulator and cache."""
    from octomon import fsutil

    path = tmp / "demo.env"
    lines = [
        f"OCTOPUS_API_KEY={settings.octopus_api_key}",
        f"OCTOPUS_ACCOUNT_NUMBER={settings.octopus_account_number}",
        f"OCTOPUS_API_URL={settings.octopus_api_url}",
        f"OCTOPUS_REST_URL={settings.octopus_rest_url}",
        f"CACHE_DIR={settings.cache_dir}",
    ]
    fsutil.atomic_write(path, ("\n".join(lines) + "\n").encode(), 0o600)
    return path


def _demo(once: bool) -> ExitCode:
    """The simulated Home Mini on a free loopback port, in local mode, in a temp dir."""
    from octomon import logs
    from octomon.config import Settings
    from octomon.sim import SimHomeMini, SimServer

    logs.setup(ui.early_log_level())
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="octomon-demo-"))
    sim = SimHomeMini(record=False, rate_limit_per_hour=DEMO_SIM_LIMIT)
    server = SimServer(sim).start()
    try:
        settings = Settings(
            octopus_api_key=sim.api_key,
            octopus_account_number=sim.account_number,
            octopus_api_url=server.url,
            octopus_rest_url=server.rest_url,
            poll_interval_seconds=DEMO_POLL_SECONDS,
            cache_dir=tmp / "cache",
            log_level=ui.early_log_level(),
        )
        demo_env = _demo_env(tmp, settings)
        ui.err_console.print(
            "[bold]octomon demo[/bold]: a simulated Home Mini on "
            f"{server.url} — not your account. .env and OCTOPUS_/INFLUXDB_/SLACK_ settings "
            f"are ignored; readings go to a temporary cache ({tmp}) removed on exit. "
            f"Polling every {DEMO_POLL_SECONDS} s (a real account: 60 s). Ctrl-C to stop.\n"
            "While it runs, try in another terminal: "
            f"[bold]{ui.own_command()} costs --env-file {demo_env}[/bold] "
            "(and tariff, reconcile, status).",
            soft_wrap=True,
        )
        return _run(settings, once=once, demo=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
