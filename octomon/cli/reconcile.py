"""`octomon reconcile`: settled kWh against the Home Mini's, per UK day (SPEC §10)."""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from octomon.cli import ui

if TYPE_CHECKING:
    from octomon.billing.reconcile import DayReport
    from octomon.octopus.rest import RestClient

HELP = (
    "Per UK day: settled kWh (what the bill is made of) against the Home Mini's, coverage, "
    "and the half-hours the Home Mini missed."
)
SPANS_SHOWN = 6


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "reconcile", help=HELP)(reconcile)


def reconcile(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    since: ui.SinceDayOption = None,
    until: ui.UntilDayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Settled consumption against the Home Mini, per UK day."""
    from octomon.billing import reconcile as core
    from octomon.clock import command_now

    now = command_now()
    first, last = ui.uk_days(since, until, now)
    settings = ui.load_settings(ctx, env_file, ("octopus", "tariff", "gas", "cache"))

    from octomon.billing.settled import SettledStore, fill, known_meters
    from octomon.readings import calorific
    from octomon.store.tally import Tally
    from octomon.wiring import Wiring

    settled = SettledStore(settings.cache_dir)
    wiring = Wiring(settings)

    def rest() -> "RestClient":  # built only when a request is needed: no `requests` import
        return wiring.rest

    try:
        meters = known_meters(settings.cache_dir, rest, settings.octopus_account_number or "")
        cv = calorific(settings.gas_calorific_value)
        data, _ = fill(rest, meters, settled, first, last, now, cv)
    finally:
        wiring.close()
    calls = wiring.rest_calls
    reports = core.day_reports(data, Tally(settings.cache_dir).load(), first, last)
    if as_json:
        typer.echo(json.dumps({"days": [_obj(r) for r in reports], "api_calls": calls}))
        return
    _table(reports)


def _obj(r: "DayReport") -> dict[str, Any]:
    from octomon.readings import format_time

    def r6(x: float | None) -> float | None:
        return None if x is None else round(x, 6)

    return {
        "day": r.day.isoformat(),
        "half_hours": r.half_hours,
        "settled": r.settled,
        "settled_kwh": r6(r.settled_kwh),
        "billed_kwh": r6(r.billed_kwh),
        "home_mini_kwh": r6(r.home_mini_kwh),
        "difference_kwh": r6(r.difference_kwh),
        "difference_pct": None if r.difference_pct is None else round(r.difference_pct, 2),
        "readings": r.readings,
        "expected_readings": r.expected_readings,
        "coverage": round(r.coverage, 6),
        "tallied": r.tallied,
        "short": r.short,
        "missing": [
            {"from": format_time(a), "to": format_time(b), "readings": n} for a, b, n in r.missing
        ],
    }


HEADERS = ["UK day", "settled", "Home Mini", "difference", "coverage", "missing"]
WIDE = 100  # columns the one-line-a-day table needs (with the missing spans)
NOTE = "kWh; difference = settled − Home Mini; coverage = readings stored ÷ 180 a half-hour"


def _table(reports: "list[DayReport]") -> None:
    rows = [_row(r) for r in reports]
    if ui.is_terminal() and ui.console.width < WIDE:
        _narrow(rows)
        return
    if ui.is_terminal():  # a table for the width: "missing" wraps at its words, nothing else
        from rich.table import Table

        table = Table(box=None, pad_edge=False, padding=(0, 1))
        for i, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if i in (0, 5) else "right", no_wrap=i != 5)
        for row in rows:
            table.add_row(*row)
        ui.console.print(table)
        ui.console.print(NOTE, markup=False)
        return
    typer.echo(
        f"{'UK day':<10}  {'settled':>9}  {'Home Mini':>9}  {'difference':>16}  "
        f"{'coverage':>8}  missing"
    )
    for day, settled, home, diff, cover, missing in rows:
        typer.echo(f"{day:<10}  {settled:>9}  {home:>9}  {diff:>16}  {cover:>8}  {missing}")
    typer.echo(NOTE)


def _narrow(rows: "list[tuple[str, str, str, str, str, str]]") -> None:
    """On a narrower terminal: the figures on one line, what is missing on the next."""
    from rich.text import Text

    out = ui.console
    out.print(f"{'UK day':<10} {'settled':>7} {'Home Mini':>9} {'difference':>13} {'coverage':>8}")
    for day, settled, home, diff, cover, missing in rows:
        out.print(f"{day:<10} {settled:>7} {home:>9} {diff:>13} {cover:>8}", markup=False)
        out.print(Text(f"{'':11}missing: {missing}", style="dim"))
    out.print(NOTE, markup=False)


def _row(r: "DayReport") -> tuple[str, str, str, str, str, str]:
    from octomon.uktime import UK

    day = f"{r.day:%a} {r.day.day:>2} {r.day:%b}"
    home = f"{r.home_mini_kwh:.2f}" if r.tallied else "—"
    if r.settled_kwh is None:
        settled, diff = "—", "not yet settled"
    elif not r.tallied:
        settled, diff = f"{r.billed_kwh:.2f}", "—"
    else:
        settled = f"{r.billed_kwh:.2f}"  # the bill's kWh, as `costs` shows it
        pct = f" {r.difference_pct:5.1f}%" if r.difference_pct is not None else ""
        diff = f"{r.difference_kwh:.2f}{pct}"
    cover = f"{r.coverage * 100:.1f}%" if r.tallied else "—"
    if not r.tallied:
        missing = "before octomon's tally began"
    elif not r.missing:
        missing = "none"
    else:
        lost = sum(n for _, _, n in r.missing)
        spans = ", ".join(
            f"{a.astimezone(UK):%H:%M}–{b.astimezone(UK):%H:%M}"
            for a, b, _ in r.missing[:SPANS_SHOWN]
        )
        more = len(r.missing) - SPANS_SHOWN
        missing = f"{lost:,} readings in {spans}" + (f" and {more} more" if more > 0 else "")
    mark = "  ← Home Mini short" if r.short else ""
    return day, settled, home, diff, cover, missing + mark
