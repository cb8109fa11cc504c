"""`verify-config` and the three connection tests: `test-octopus`, `test-influx`, `test-slack`."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from octomon import checks as probes
from octomon import redact
from octomon.cli import ui
from octomon.errors import ExitCode, OctomonError

if TYPE_CHECKING:
    from octomon.config import Settings


def register(app: typer.Typer, only: str | None = None) -> None:
    """Register the four commands (or just the one named by ``only``)."""
    commands = {
        "verify-config": verify_config,
        "test-octopus": test_octopus,
        "test-influx": test_influx,
        "test-slack": test_slack,
    }
    for name, func in commands.items():
        if only in (None, name):
            ui.command(app, name)(func)


def verify_config(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    online: Annotated[
        bool, typer.Option("--online", help="Also run the connection tests (and MQTT's, if set).")
    ] = False,
) -> None:
    """Validate every setting and list each value with its source (secrets masked)."""
    from rich.markup import escape
    from rich.table import Table

    from octomon.errors import ConfigError

    invalid: ConfigError | None = None
    try:
        settings = ui.load_settings(ctx, env_file, ["all"], show_warnings=False)
        rows = settings.rows()
    except ConfigError as exc:
        invalid = exc
        rows = list(exc.rows)
    table = Table(title="octomon settings", show_lines=False)
    table.add_column("variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", no_wrap=True)
    for name, value, source in rows:
        shown = escape(value) if value else "[dim](not set)[/dim]"
        if invalid and any(p.startswith((f"{name}=", f"{name} ")) for p in invalid.problems):
            table.add_row(f"[red]✗ {name}[/red]", shown, source)
        else:
            table.add_row(name, shown, source)
    if rows:
        ui.console.print(table)
    if invalid:
        if rows and invalid.hint and "verify-config" in invalid.hint:
            invalid.hint = "fix the settings marked ✗ above"
        raise invalid
    for message in settings.warnings:
        ui.console.print(f"[yellow]warning:[/yellow] {message}")
    ui.console.print("[green]configuration is valid[/green]")
    if not online:
        return
    failed = run_online_checks(settings)
    if failed:
        ui.fail(f"{failed} connection test(s) failed", "see the lines above")


def run_online_checks(settings: "Settings") -> int:
    """Run the connection tests that apply; print a line each; return how many failed."""
    from rich.markup import escape

    failed = 0
    checks: list[tuple[str, Callable[[], str] | str]] = [
        ("Octopus", lambda: probes.octopus_line(settings)),
        (
            "InfluxDB",
            (lambda: probes.influx_line(settings, False))
            if settings.influxdb_url
            else "not configured (local mode)",
        ),
        (
            "Slack",
            (lambda: probes.slack_line(settings))
            if settings.slack_webhook_url
            else "not configured (alerts go to the log)",
        ),
        (
            "MQTT",
            (lambda: probes.mqtt_line(settings)) if settings.mqtt_url else "not configured",
        ),
    ]
    for label, check in checks:  # in this order, a line each
        if isinstance(check, str):
            ui.console.print(f"{label}: [dim]{escape(check)}[/dim]")
            continue
        try:
            ui.console.print(f"{label}: [green]ok[/green] — {escape(check())}", soft_wrap=True)
        except OctomonError as exc:
            failed += 1
            ui.log.debug("%s check failed", label, exc_info=True)
            hint = f" — {exc.hint}" if exc.hint else ""
            ui.console.print(
                f"{label}: [red]failed[/red] — {escape(redact.scrub(exc.message + hint))}",
                soft_wrap=True,
            )
    return failed


def test_octopus(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Authenticate, find the device, fetch and print the latest reading."""
    from octomon.checks import octopus_check

    settings = ui.load_settings(ctx, env_file, ["octopus", "gas"])
    ui.quiet_info(settings)  # the device chosen, the gas meter: printed below, not logged
    result = octopus_check(settings)
    ui.console.print(f"[green]Octopus API ok[/green] — account {settings.octopus_account_number}")
    ui.console.print(f"device id: {result.device_id}")
    if result.other_devices:
        ui.console.print(f"other devices on the account: {', '.join(result.other_devices)}")
    from octomon.readings import format_time

    if result.reading is None:
        ui.console.print("latest reading: none yet (is the Home Mini connected?)")
    else:
        ui.console.print(f"latest reading: {format_time(result.reading.read_at)}")
        _print_fields(result.reading.fields())
    meter = result.gas_meter
    if meter is None:
        from octomon.octopus.gas import NOTES

        ui.console.print(NOTES.get(result.gas_status, "no gas"))
        return
    ui.console.print(
        f"gas device id: {meter.device_id} (meter {meter.serial or '?'}, MPRN {meter.mprn or '?'})"
    )
    if result.gas_reading is None:
        ui.console.print("latest gas half-hour: none yet")
        return
    ui.console.print(f"latest gas half-hour: {format_time(result.gas_reading.read_at)}")
    _print_fields(result.gas_reading.fields())


_UNITS = {
    "consumption_delta": "kWh",
    "demand": "kW",
    "cost_delta": "GBP",
    "consumption": "kWh",
    "cost_delta_with_tax": "GBP",
    "export": "kWh",
    "volume_delta": "m³",
}


def _print_fields(fields: dict[str, float]) -> None:
    for name, value in fields.items():
        ui.console.print(f"  {name}: {value:.10g} {_UNITS[name]}")


def test_influx(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    write_test_point: Annotated[
        bool,
        typer.Option("--write-test-point", help="Write one point to prove the token can write."),
    ] = False,
) -> None:
    """Check InfluxDB reachability, token, org and bucket (writes nothing by default)."""
    settings = ui.load_settings(ctx, env_file, ["influx"], require=["INFLUXDB_URL"])
    ui.console.print(
        f"[green]InfluxDB ok[/green] — {probes.influx_line(settings, write_test_point)}"
    )


def test_slack(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Send a clearly labelled test message to the Slack webhook."""
    settings = ui.load_settings(ctx, env_file, ["slack"], require=["SLACK_WEBHOOK_URL"])
    ui.console.print(f"[green]Slack ok[/green] — {probes.slack_line(settings)}")


__all__ = ["ExitCode", "register"]
