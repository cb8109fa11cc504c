"""`octomon configure`: the set-up wizard. (Being built: issue 8.)"""

from __future__ import annotations

import typer

from octomon.cli import ui


def register(app: typer.Typer) -> None:
    ui.command(app, "configure")(configure)


def configure(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Interactive wizard that writes .env."""
    ui.fail("not built yet")
