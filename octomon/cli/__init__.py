"""The Typer application: global options, and the commands registered from their modules.

Command modules import only typer at module level; anything heavy (requests, questionary,
rich's console) is imported inside the command that needs it. And `main()` registers only
the module of the command being run (all of them for `--help`, completion or anything it
does not recognise): Typer inspects every parameter of every registered command on each
start, which would otherwise double the start-up of `cache status` or `status --check`
run from cron or a Docker HEALTHCHECK (SPEC §7).
"""

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from octomon import __version__

# command name -> the module in octomon.cli that registers it
COMMANDS: dict[str, str] = {
    "run": "run",
    "configure": "configure",
    "verify-config": "checks",
    "test-octopus": "checks",
    "test-influx": "checks",
    "test-slack": "checks",
    "sync-cache": "cache",
    "cache": "cache",
    "backfill": "backfill",
    "status": "status",
    "tariff": "tariff",
    "reconcile": "reconcile",
    "costs": "costs",
}
MODULES = (  # --help order: the panels appear in the order of their first command
    "configure",
    "checks",
    "run",
    "status",
    "tariff",
    "reconcile",
    "costs",
    "cache",
    "backfill",
)
SET_UP, CHECKS, RUNNING, REPORTS, CACHE = "Set-up", "Checks", "Running", "Reports", "Cache"
PANELS: dict[str, str] = {  # command name -> its group in --help
    "configure": SET_UP,
    "verify-config": SET_UP,
    "test-octopus": CHECKS,
    "test-influx": CHECKS,
    "test-slack": CHECKS,
    "run": RUNNING,
    "status": RUNNING,
    "tariff": REPORTS,
    "reconcile": REPORTS,
    "costs": REPORTS,
    "sync-cache": CACHE,
    "cache": CACHE,
    "backfill": CACHE,
}
HELP = (
    "Octopus Energy Home Mini → InfluxDB 2.x, with Slack alerts and a cache that never "
    "loses a reading.\n\n"
    "No account yet? Try it against a simulated Home Mini: octomon run --demo. "
    "Then octomon configure writes ./.env for your own."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"octomon {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            metavar="PATH",
            help="Settings file to read (default ./.env). The environment wins over it.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = {"env_file": env_file}


def make_app(modules: Sequence[str] = MODULES, only: str | None = None) -> typer.Typer:
    """The application with the commands of ``modules`` (or only the command ``only``)."""
    application = typer.Typer(
        name="octomon",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback()(_root)
    for name in modules:
        importlib.import_module(f"octomon.cli.{name}").register(application, only)
    for command in application.registered_commands:
        command.rich_help_panel = PANELS.get(command.name or "")
    for group in application.registered_groups:
        group.rich_help_panel = PANELS.get(group.name or "")
    return application


def command_for(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The command a command line runs, or None when every command is needed."""
    if any(key.endswith("_COMPLETE") for key in environ):  # shell completion
        return None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--env-file":
            i += 2
        elif arg.startswith("--env-file="):
            i += 1
        elif arg in COMMANDS:
            return arg
        else:  # --help, --version, a typo: Typer shows every command
            return None
    return None


def modules_for(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> tuple[str, ...]:
    """The modules a command line needs: its command's, or all of them."""
    command = command_for(argv, environ)
    return MODULES if command is None else (COMMANDS[command],)


def __getattr__(name: str) -> Any:
    """``octomon.cli.app``: the full application (tests, docs), built on first use."""
    if name == "app":
        application = make_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)


def main() -> None:
    command = command_for(sys.argv[1:], os.environ)
    modules = MODULES if command is None else (COMMANDS[command],)
    make_app(modules, command)(prog_name="octomon")
