"""`octomon sync-cache` and `octomon cache status|export`. (Being built: issue 4.)"""

from __future__ import annotations

import typer

from octomon.cli import ui

cache_app = typer.Typer(help="Inspect and export the local cache.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    ui.command(app, "sync-cache")(sync_cache)
    ui.command(cache_app, "status")(status)
    ui.command(cache_app, "export")(export)
    app.add_typer(cache_app, name="cache")


def sync_cache(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Push all cached readings to InfluxDB, oldest first."""
    ui.fail("not built yet")


def status(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Show what is waiting in the cache."""
    ui.fail("not built yet")


def export(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Write cached readings to stdout or a file."""
    ui.fail("not built yet")
