"""`octomon tariff`: the tariffs in force, today's and tomorrow's prices, the cheapest hours.

Answers from ``CACHE_DIR/tariffs.json`` when it is today's (the daemon keeps it current),
else fetches within the shared call budget. ``--since DATE`` also stores the rates from
DATE on in InfluxDB as ``energy_tariff`` (SPEC §9).
"""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from octomon.cli import dates, ui
from octomon.units import IMPORT

if TYPE_CHECKING:
    from octomon.billing.tariff_report import Rate, TariffReport

NARROW = 72  # columns below which the rates are a sparkline per day
SPARKS = "▁▂▃▄▅▆▇█"


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "tariff")(tariff)


def tariff(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Also store the rates from this UK day (YYYY-MM-DD) on in InfluxDB "
            "(energy_tariff), e.g. after a backfill.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The tariffs in force, today's and tomorrow's prices, and the cheapest hours ahead.

    Standing charges, the unit rates of today and tomorrow (UK time) and the cheapest 1 h,
    2 h and 3 h windows still ahead."""
    from octomon.billing.tariff_report import report
    from octomon.clock import command_now
    from octomon.uktime import uk_day

    groups = ["octopus", "tariff", "cache"] + (["influx"] if since else [])
    day: date | None = None
    now = command_now()
    if since is not None:
        day = dates.parse_day("--since", since)
        if day > uk_day(now):
            dates.in_future("--since", str(day), f"today is {uk_day(now)} in the UK")
    settings = ui.load_settings(ctx, env_file, groups, require=["INFLUXDB_URL"] if since else [])
    result = report(settings, now, day)
    for why in result.unpriced:
        ui.warn(f"{why}; the other meter points are priced")
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=1))
        return
    _render(result)


# --- rendering -------------------------------------------------------------------------------


def _p(gbp: Decimal) -> str:
    """GBP -> pence, two decimals (what a bill shows per kWh)."""
    return f"{gbp * 100:.2f}"


def _series(fuel: str, direction: str) -> str:
    return f"{fuel} {direction}".ljust(18)


def _uk(t: datetime, fmt: str = "%H:%M") -> str:
    from zoneinfo import ZoneInfo

    return t.astimezone(ZoneInfo("Europe/London")).strftime(fmt)


def _render(r: "TariffReport") -> None:
    from rich.console import Console

    # On a terminal, lines wrap at words (a long one is laid out for the width below);
    # piped, a line is a line.
    terminal = ui.is_terminal()
    console = ui.console if terminal else Console(highlight=False, soft_wrap=True)
    out = console.print
    if r.stored:
        out(f"stored {r.stored} energy_tariff points in InfluxDB")
    source = f"fetched {_uk(r.fetched_at, '%d %b %H:%M')} UK"
    source += f" ({r.api_calls} API calls)" if r.api_calls else " (from CACHE_DIR/tariffs.json)"
    out(f"[bold]Tariffs in force[/bold] — {source}")
    if not r.tariffs:
        out("  none found on the current property")
    for t in r.tariffs:
        line = f"  {_series(t.fuel, t.direction)}  {t.tariff_code}"
        more = f"product {t.product_code}  since {_uk(t.since, '%d %b %Y')}"
        if not terminal or len(line) + 2 + len(more) <= console.width:
            out(f"{line}  {more}", markup=False)
        else:  # narrow: the product and the date under the code, never a code cut in two
            out(line, markup=False)
            out(f"    {more}", markup=False)
    if r.standing:
        out("[bold]Standing charges today[/bold] (inc. VAT)")
        for s in r.standing:
            out(f"  {_series(s.fuel, s.direction)}  {_p(s.standing_charge)} p/day", markup=False)
    if r.current:
        out("[bold]Now[/bold] (inc. VAT)")
        for (fuel, direction), rate in r.current.items():
            out(
                f"  {_series(fuel, direction)}  {_p(rate.price.unit_rate)} p/kWh  "
                f"({_uk(rate.start)}–{_uk(rate.end)} UK)",
                markup=False,
            )
    for label, rows in (("today", r.today), ("tomorrow", r.tomorrow)):
        if not rows:
            if label == "tomorrow":
                out("[bold]Tomorrow[/bold]: not published yet (around 16:00 UK)")
            continue
        title = f"{label.capitalize()} {_uk(rows[0].start, '%a %d %b')}"
        out(f"[bold]{title}[/bold] — electricity import, p/kWh inc. VAT, UK time")
        current = r.current.get(IMPORT)
        now_start = current.start if current else None
        if console.width < NARROW:
            out("  " + _sparkline(rows, now_start), markup=False)
            low = min(rows, key=lambda x: x.price.unit_rate)
            high = max(rows, key=lambda x: x.price.unit_rate)
            out(
                f"  min {_p(low.price.unit_rate)} at {_uk(low.start)}, "
                f"max {_p(high.price.unit_rate)} at {_uk(high.start)}",
                markup=False,
            )
        else:
            for line in _grid(rows, now_start):
                out(line, markup=False)
    out("[bold]Cheapest ahead[/bold] (electricity import, average inc. VAT)")
    for hours, window in r.cheapest.items():
        if window is None:
            out(f"  {hours} h  not enough published prices ahead", markup=False)
        else:
            out(
                f"  {hours} h  {_uk(window.start, '%a %H:%M')}–{_uk(window.end)} UK  "
                f"{_p(window.average)} p/kWh",
                markup=False,
            )


def _grid(rows: "list[Rate]", now_start: datetime | None) -> list[str]:
    """Four columns of half-hours, the current one marked with ``>``."""
    cells = [
        f"{'>' if r.start == now_start else ' '}{_uk(r.start)} {_p(r.price.unit_rate):>6}"
        for r in rows
    ]
    height = (len(cells) + 3) // 4
    return [
        "  " + "   ".join(cells[i + k * height] for k in range(4) if i + k * height < len(cells))
        for i in range(height)
    ]


def _sparkline(rows: "list[Rate]", now_start: datetime | None) -> str:
    values = [r.price.unit_rate for r in rows]
    low, high = min(values), max(values)
    span = (high - low) or Decimal(1)
    marks = []
    for r in rows:
        if r.start == now_start:
            marks.append("|")
        marks.append(SPARKS[int((r.price.unit_rate - low) / span * (len(SPARKS) - 1))])
    return "".join(marks)
