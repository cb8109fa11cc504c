"""The dates of --since/--until, parsed and refused in one wording for every command.

`costs`, `reconcile` and `tariff` take UK days; `backfill` takes instants (a bare date is
midnight UTC). Whatever the command, a mistake is one line naming what the user gave:
``--since '30 Nov' is not a date (…)``, ``--until 2026-11-01 is before --since 2026-11-30``,
``--since 2026-12-09 is in the future (today is 2026-12-07 in the UK)``; exit 2.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import NoReturn

from octomon.cli import ui
from octomon.errors import ExitCode

DAY = "YYYY-MM-DD, a UK day"
INSTANT = "YYYY-MM-DD, midnight UTC, or YYYY-MM-DDTHH:MM[:SS][+HH:MM], UTC unless an offset"
DEFAULT_DAYS = 7


def not_a_date(option: str, raw: str, expected: str = DAY) -> NoReturn:
    ui.fail(f"{option} {raw!r} is not a date ({expected})", None, ExitCode.CONFIG)


def before(since: str, until: str, equal: bool = False) -> NoReturn:
    word = "is not after" if equal else "is before"
    ui.fail(f"--until {until} {word} --since {since}", None, ExitCode.CONFIG)


def in_future(option: str, given: str, today: str) -> NoReturn:
    ui.fail(f"{option} {given} is in the future ({today})", None, ExitCode.CONFIG)


def parse_day(option: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        not_a_date(option, raw)


def uk_days(since: str | None, until: str | None, now: datetime) -> tuple[date, date]:
    """``--since``/``--until`` as UK days, both included: by default the 7 days up to
    yesterday; ``--since`` alone runs to yesterday (to today when it is today), ``--until``
    alone covers the 7 days up to it."""
    from octomon.uktime import uk_day

    today = uk_day(now)
    first = parse_day("--since", since) if since is not None else None
    last = parse_day("--until", until) if until is not None else None
    for option, day in (("--since", first), ("--until", last)):
        if day is not None and day > today:
            in_future(option, str(day), f"today is {today} in the UK")
    if last is None:
        last = today - timedelta(days=1) if first is None else max(first, today - timedelta(1))
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        before(str(first), str(last))
    return first, last


def parse_instant(option: str, raw: str) -> datetime:
    """ISO 8601 -> aware UTC; a bare date is midnight UTC, no offset means UTC."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        if text[-1:] in "Zz":
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        not_a_date(option, raw, INSTANT)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
