"""`octomon run`: the monitor daemon. (Being built: issue 6/7.)"""

from __future__ import annotations

import typer

from octomon.cli import ui


def register(app: typer.Typer) -> None:
    ui.command(app, "run")(run)


def run(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Run the monitor daemon."""
    ui.fail("not built yet")
