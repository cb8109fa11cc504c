"""`octomon backfill`. (Being built: issue 7.)"""

from __future__ import annotations

import typer

from octomon.cli import ui


def register(app: typer.Typer) -> None:
    ui.command(app, "backfill")(backfill)


def backfill(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Fetch history at 10-second resolution and store it like live data."""
    ui.fail("not built yet")
