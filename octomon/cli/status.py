"""`octomon status`. (Being built: issue 6.)"""

from __future__ import annotations

import typer

from octomon.cli import ui


def register(app: typer.Typer) -> None:
    ui.command(app, "status")(status)


def status(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Show the daemon's status file."""
    ui.fail("not built yet")
