"""`octomon costs`: what the bill will say, per UK day and fuel (SPEC §12)."""

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from octomon.cli import ui
from octomon.errors import ExitCode
from octomon.units import EXPORT

if TYPE_CHECKING:
    from datetime import date

    from octomon.billing.bill import Bill
    from octomon.billing.costs import BillLine, DayCost

HELP = (
    "Per UK day and fuel: kWh (settled where Octopus has settled the day, else the Home "
    "Mini's), energy cost, standing charge and total, inc. VAT, in GBP."
)


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "costs", help=HELP)(costs)


def costs(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    since: ui.SinceDayOption = None,
    until: ui.UntilDayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What each UK day cost, the way the bill will say it."""
    from octomon.billing.bill import bill
    from octomon.clock import command_now
    from octomon.uktime import uk_day

    now = command_now()
    today = uk_day(now)
    first, last = ui.uk_days(since, until, now)
    if last > today:
        ui.fail(f"--until {last} is in the future", None, ExitCode.CONFIG)
    settings = ui.load_settings(ctx, env_file, ("octopus", "tariff", "gas", "cache"))
    result = bill(settings, first, last, now)
    for error in result.errors:
        ui.warn(f"could not fetch the {error}; answering from what CACHE_DIR keeps")
    for why in result.unconverted:
        ui.warn(f"{why}: its gas is not in the costs")
    for why in result.unpriced:
        ui.warn(f"{why}; not in the costs, the other meter points are priced")
    if as_json:
        typer.echo(json.dumps(_obj(result), indent=1))
    else:
        _render(result)
    empty = result.empty_days()
    if empty and result.errors:  # 1 only when the API failed and left something unknown
        ui.fail(
            f"nothing known for {len(empty)} of the days asked "
            f"({', '.join(d.isoformat() for d in empty[:5])}{' …' if len(empty) > 5 else ''})",
            "run `octomon costs` again once the Octopus API answers",
        )


def _money(x: Decimal | None) -> float | None:
    return None if x is None else float(x)


def _line(x: "BillLine") -> dict[str, Any]:
    return {
        "kind": x.kind,
        "fuel": x.fuel,
        "direction": x.direction,
        "tariff_code": x.tariff_code,
        "description": x.describe(),
        "kwh" if x.kind == "energy" else "days": float(x.quantity)
        if x.kind == "energy"
        else int(x.quantity),
        "rate": _money(x.rate),
        "amount": float(x.amount),
        "amount_exc_vat": float(x.amount_exc_vat),
    }


def _row(d: "DayCost") -> dict[str, Any]:
    return {
        "day": d.day.isoformat(),
        "fuel": d.fuel,
        "direction": d.direction,
        "source": d.source,
        "kwh": None if d.kwh is None else round(float(d.kwh), 6),
        "energy_cost": _money(d.energy),
        "energy_cost_exc_vat": _money(d.energy_exc_vat),
        "standing_charge": _money(d.standing),
        "standing_charge_exc_vat": _money(d.standing_exc_vat),
        "total": _money(d.total),
        "half_hours": d.half_hours,
        "half_hours_covered": d.covered,
        "partial": d.partial,
        "tariffs": list(d.tariffs),
        "missing": list(d.missing),
    }


def _obj(b: "Bill") -> dict[str, Any]:
    from octomon.billing.costs import EXPORT, GAS, IMPORT

    r = b.report
    totals = {
        "electricity": float(r.total(IMPORT)),
        "gas": float(r.total(GAS)),
        "export": float(r.total(EXPORT)),
        "total": float(r.total()),
        "total_exc_vat": float(r.total(exc_vat=True)),
        "rows_total": float(r.rows_total()),
        "complete": r.complete(),
    }
    return {
        "since": b.since.isoformat(),
        "until": b.until.isoformat(),
        "currency": "GBP",
        "vat": "inc",
        "days": [_row(d) for d in r.days],
        "lines": [_line(x) for x in r.lines()],
        "totals": totals,
        "api_calls": b.api_calls,
        "errors": b.errors,
        "unpriced": b.unpriced,
        "unconverted": b.unconverted,
    }


def _gbp(x: Decimal | None) -> str:
    return "—" if x is None else f"£{x:,.2f}"


def _day(day: "date", year: bool) -> str:
    return f"{day:%a} {day.day:>2} {day:%b}" + (f" {day.year}" if year else "")


def _cells(d: "DayCost", year: bool = False) -> list[str]:
    label = d.fuel if d.direction == "import" else "export (earned)"
    kwh = "—" if d.kwh is None else f"{d.kwh:,.2f}"
    source = d.source
    if d.partial:
        source += f", partial: {d.covered} of {d.half_hours} half-hours"
    if d.missing and d.kwh:
        source += f" ({', '.join(d.missing)} missing)"
    standing = "" if d.direction == "export" else _gbp(d.standing)
    return [
        _day(d.day, year),
        label,
        source,
        kwh,
        _gbp(d.energy),
        standing,
        _gbp(d.total),
    ]


HEADERS = ["UK day", "fuel", "kWh from", "kWh", "energy", "standing", "total"]
RIGHT = {3, 4, 5, 6}
WIDE_TABLE = 90  # columns a boxed table of the costs needs


def _footer(b: "Bill") -> list[str]:
    """The bill's lines, then the total (their sum), and what it leaves out."""
    r = b.report
    lines = r.lines()
    out = ["Bill lines (inc. VAT):"] if lines else []
    out += [
        f"  {x.describe()}  {'−' if x.direction == 'export' else ''}£{x.amount:,.2f}" for x in lines
    ]
    total = r.total()
    note = "" if r.complete() else " (days marked missing are not in it)"
    footer = f"Total £{total:,.2f} inc. VAT{note}"
    if r.total(EXPORT):
        footer += "; export earnings are subtracted"
    out.append(footer)
    if r.rows_total() != total:
        out.append(
            f"The days' rows add up to £{r.rows_total():,.2f}: each row is rounded on its own, "
            "the bill rounds each line once."
        )
    return out


COLLAPSE = 3  # this many days (or months) in a row with nothing known become one row
MONTHLY = 62  # a range longer than this many days is shown a month per row


def _empty(costs: "list[DayCost]") -> bool:
    return all(d.source == "missing" and d.kwh is None for d in costs)


def _month(key: "date", costs: "list[DayCost]") -> list[str]:
    """One month of one fuel: sums where every day is known, else — (never a partial sum
    shown as the month's)."""
    first = costs[0]
    label = first.fuel if first.direction == "import" else "export (earned)"
    known = [d.kwh for d in costs if d.kwh is not None]

    def whole(values: "list[Decimal | None]") -> "Decimal | None":
        known = [v for v in values if v is not None]
        return sum(known, Decimal(0)) if len(known) == len(values) else None

    sources = sorted({d.source for d in costs if d.source != "missing"}) or ["missing"]
    source = "/".join(sources)
    empty_days = sum(1 for d in costs if d.kwh is None)
    if empty_days and known:
        source += f", {empty_days} of {len(costs)} days missing"
    lacking = sorted({m for d in costs if d.kwh is not None for m in d.missing})
    if lacking:
        source += f" ({', '.join(lacking)} missing)"
    standing = "" if first.direction == "export" else _gbp(whole([d.standing for d in costs]))
    return [
        f"{key:%b %Y}",
        label,
        source,
        f"{sum(known, Decimal(0)):,.2f}" if known else "—",
        _gbp(whole([d.energy for d in costs])),
        standing,
        _gbp(whole([d.total for d in costs])),
    ]


def _rows(b: "Bill") -> tuple[str, list[list[str]]]:
    """The table's first heading and rows: a day per fuel, or for a long range a month per
    fuel; a run of days (months) with nothing known for any fuel is one row, so five years
    back does not drown the answer in "missing" rows."""
    monthly = (b.until - b.since).days + 1 > MONTHLY
    year = b.since.year != b.until.year
    periods: dict[date, dict[tuple[str, str], list[DayCost]]] = {}
    for d in b.report.days:
        key = d.day.replace(day=1) if monthly else d.day
        periods.setdefault(key, {}).setdefault((d.fuel, d.direction), []).append(d)

    def label(key: "date") -> str:
        return f"{key:%b %Y}" if monthly else _day(key, year)

    rows: list[list[str]] = []
    run: list[date] = []

    def flush() -> None:
        if len(run) >= COLLAPSE:
            days = sum(len(next(iter(periods[k].values()))) for k in run)
            span = f"{label(run[0])} – {label(run[-1])}"
            rows.append([span, "all", f"missing: {days:,} days", "—", "—", "—", "—"])
        else:
            rows.extend(row for key in run for row in cells(key))
        run.clear()

    def cells(key: "date") -> list[list[str]]:
        groups = periods[key].values()
        if monthly:
            return [_month(key, costs) for costs in groups]
        return [_cells(d, year) for costs in groups for d in costs]

    for key, groups in periods.items():
        if _empty([d for costs in groups.values() for d in costs]):
            run.append(key)
            continue
        flush()
        rows.extend(cells(key))
    flush()
    return ("UK month" if monthly else "UK day"), rows


def _render(b: "Bill") -> None:
    first, rows = _rows(b)
    headers = [first, *HEADERS[1:]]
    footer = "\n".join(_footer(b))
    if ui.is_terminal():
        from rich.table import Table

        console = ui.console
        table = Table(title="What the bill will say (inc. VAT)", title_justify="left")
        if console.width < WIDE_TABLE:  # no box: the columns keep their width at 60
            table.box, table.pad_edge, table.padding = None, False, (0, 1)
            table.collapse_padding = True
        for i, h in enumerate(headers):
            # A day, a fuel and an amount are never cut; "kWh from" wraps at its words.
            table.add_column(
                h,
                justify="right" if i in RIGHT else "left",
                no_wrap=i != 2,
                overflow="ellipsis",
                min_width=7 if i == 2 else None,  # "settled"
            )
        for row in rows:
            style = "dim" if row[2].startswith("missing") else None
            table.add_row(*row, style=style)
        console.print(table)
        console.print(footer, markup=False)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in RIGHT else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    typer.echo(line(headers))
    for row in rows:
        typer.echo(line(row))
    typer.echo(footer)
