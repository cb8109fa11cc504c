"""The Typer application: global options, and the commands registered from their modules.

Command modules import only typer/rich at module level; anything heavy (requests,
questionary) is imported inside the command that needs it, so
`octomon --help` and cron-invoked commands start fast (SPEC §7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from octomon import __version__
from octomon.cli import backfill, cache, checks, configure, run, status

app = typer.Typer(
    name="octomon",
    help="Octopus Energy Home Mini → InfluxDB 2.x, with Slack alerts and a cache that "
    "never loses a reading.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"octomon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
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


for module in (run, configure, checks, cache, backfill, status):
    module.register(app)


def main() -> None:
    app(prog_name="octomon")
