"""What each alert says (SPEC §4.6): the :class:`Alert` type and the catalogue as a table.

Every message octomon can send is one row of :data:`CATALOGUE` (level, title, text,
component, condition key); the ``{placeholders}`` are filled by :func:`message` from the
values the policy passes. Recoveries are :data:`RECOVERIES`. Wording lives here only; when
a message is sent lives in :mod:`octomon.alerts.policy` and :mod:`octomon.alerts.episodes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum


class Level(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Alert:
    level: Level
    title: str
    text: str
    component: str
    fields: dict[str, str]
    at: datetime
    key: str  # the condition: influx, octopus, stale, rate_limit, cache_write, cache_cap, …
    repeat: bool = False  # a still-open problem, said again
    recovery: bool = False  # the announcement that a problem ended

    def summary(self) -> str:
        """One line for the log and the live panel."""
        line = f"{self.title}: {self.text}" if self.text else self.title
        if self.fields:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in self.fields.items()) + ")"
        return line


@dataclass(frozen=True)
class Message:
    """One row of the catalogue; ``title`` and ``text`` are ``str.format`` templates."""

    level: Level
    title: str
    text: str
    component: str
    key: str


_W, _E, _I = Level.WARNING, Level.ERROR, Level.INFO

CATALOGUE: dict[str, Message] = {
    "started": Message(_I, "octomon started", "Monitoring in {mode} mode.", "monitor", "lifecycle"),
    "stopped": Message(_I, "octomon stopped", "Stopped cleanly.", "monitor", "lifecycle"),
    "stopped_cached": Message(
        _W,
        "octomon stopped with readings in the cache",
        "{cached:,} readings are waiting in the cache. They are synced when octomon starts "
        "again with InfluxDB reachable, or now with `octomon sync-cache`.",
        "monitor",
        "lifecycle",
    ),
    "octopus_failing": Message(
        _E,
        "Octopus API failing",
        "Fetching from the Octopus API failed {n} cycles in a row. Readings are not lost while "
        "this lasts: the gap is fetched when the API answers again.",
        "octopus",
        "octopus",
    ),
    "rate_limit": Message(
        _W,
        "Octopus API rate limit",
        "The Octopus API has been refusing calls as rate-limited for {lasted}. The hourly "
        "limit is shared with the Octopus app and other integrations; octomon backs off (up "
        "to 30 min) and catches up afterwards. If it persists, lower "
        "OCTOPUS_MAX_CALLS_PER_HOUR or close other integrations.",
        "octopus",
        "rate_limit",
    ),
    "auth": Message(
        _E,
        "Octopus API key refused",
        "The Octopus API refused the API key; octomon stops instead of retrying it. Check "
        "OCTOPUS_API_KEY (Octopus account → Personal details → API access) and start it again.",
        "octopus",
        "auth",
    ),
    "range_lost": Message(
        _E,
        "Readings lost: too old for the Octopus API",
        "The Octopus API no longer serves readings this old, so {lost} of history could not "
        "be fetched. octomon continues from the oldest time the API still serves.",
        "octopus",
        "range_lost",
    ),
    "home_mini_short": Message(
        _W,
        "Home Mini missed readings",
        "the Home Mini missed {missed:.1f}% of {day}: settled {settled_kwh:.2f} kWh, Home Mini "
        "{home_mini_kwh:.2f} kWh; power-cycle it if this repeats",
        "home_mini",
        "reconciliation",
    ),
    "stale": Message(
        _W,
        "Home Mini data stale",
        "{seen}, although the Octopus API answers. Power-cycle the Home Mini (unplug it for "
        "10 seconds) and check that its light shows it is connected.",
        "home-mini",
        "stale",
    ),
    "gas_stale": Message(
        _W,
        "Gas data stale",
        "{seen}, although the Octopus API answers. The gas meter reaches the Home Mini through "
        "the smart meter hub: check the Octopus app for gas readings, and power-cycle the Home "
        "Mini if electricity is stale too.",
        "gas",
        "gas_stale",
    ),
    "influx_lost": Message(
        _W,
        "InfluxDB unreachable: caching readings",
        "Writing to InfluxDB failed, so readings are kept in the local cache and synced when "
        "it is back. Nothing is lost while the disk has room.",
        "influxdb",
        "influx",
    ),
    "influx_config": Message(
        _E,
        "{title}",
        "InfluxDB answers but refuses octomon's writes. Check {setting}, then restart octomon. "
        "Readings are kept in the local cache meanwhile.",
        "influxdb",
        "influx",
    ),
    "cache_synced": Message(
        _I,
        "Cache synced: {count:,} readings",
        "Readings kept in the cache are now in InfluxDB.",
        "cache",
        "cache_sync",
    ),
    "cache_failed": Message(
        _E,
        "{title}",
        "{cause} Readings could not be written to it. octomon keeps running and fetches the "
        "same span again next cycle, so nothing is lost once the cache is writable again.",
        "cache",
        "cache_write",
    ),
    "state_failed": Message(
        _E,
        "Cannot save state.json",
        "octomon keeps polling and writing to InfluxDB; the call ledger is kept in memory "
        "(still enforced) and the cursor is saved once the disk has room again.",
        "cache",
        "state_write",
    ),
    "clock": Message(
        _W,
        "System clock moved back",
        "the system clock moved back by {span}{again}",
        "octomon",
        "clock",
    ),
    "state_damaged": Message(
        _W,
        "state.json was damaged",
        "state.json could not be read and was set aside as {set_aside} (secrets removed). "
        "Fetching resumes from {resume} ({where}); readings before then that were never "
        "stored may need `octomon backfill --until {until}`.",
        "octomon",
        "state_damaged",
    ),
    "cache_evicted": Message(
        _E,
        "Cache over its cap: {readings:,} readings lost",
        "The cache exceeded CACHE_MAX_MB, so its oldest {files} day file(s) were deleted. Bring "
        "InfluxDB back (or run `octomon sync-cache`) before more is dropped, or raise "
        "CACHE_MAX_MB.",
        "cache",
        "cache_cap",
    ),
    "cache_evicted_more": Message(
        _E,
        "Cache over its cap: {readings:,} more readings lost",
        "In the last {every} the cache stayed over CACHE_MAX_MB and {files} more day file(s) "
        "were deleted. Bring InfluxDB back (or run `octomon sync-cache`), or raise "
        "CACHE_MAX_MB.",
        "cache",
        "cache_cap",
    ),
    "refused": Message(
        _E,
        "InfluxDB refused {count:,} readings",
        "InfluxDB refused the data itself (not a connection problem). The refused readings are "
        "kept under CACHE_DIR/rejected/ with the server's message.",
        "influxdb",
        "refused",
    ),
    "refused_more": Message(
        _E,
        "InfluxDB refused {count:,} more readings",
        "More refusals in the last {every}. InfluxDB refused the data itself (not a connection "
        "problem). The refused readings are kept under CACHE_DIR/rejected/ with the server's "
        "message.",
        "influxdb",
        "refused",
    ),
}

RECOVERIES: dict[str, tuple[str, str]] = {  # condition key -> (title, text)
    "influx": ("InfluxDB restored", "Writes to InfluxDB are acknowledged again."),
    "octopus": ("Octopus API recovered", "Fetching works again; the gap is caught up."),
    "rate_limit": ("Octopus API no longer rate limited", "Fetching works again."),
    "stale": ("Home Mini data fresh again", "New readings are arriving."),
    "gas_stale": ("Gas data fresh again", "New gas half-hours are arriving."),
    "cache_write": ("Caching works again", "Readings are written to the cache again."),
    "state_write": ("state.json saved again", "The cursor and the ledger are on disk."),
    "auth": ("Octopus API key accepted", "The API key works again."),
}


def message(
    name: str, now: datetime, fields: dict[str, str], *, key: str | None = None, **values: object
) -> Alert:
    """The catalogue's ``name`` row filled with ``values``; ``key`` overrides the row's."""
    row = CATALOGUE[name]
    return Alert(
        level=row.level,
        title=row.title.format(**values),
        text=row.text.format(**values),
        component=row.component,
        fields=fields,
        at=now,
        key=key or row.key,
    )


# --- how times, spans and errors are written --------------------------------------------


def duration(td: timedelta) -> str:
    """``45 s``, ``12 min``, ``4 h``, ``2 h 5 min``, ``3 d 2 h`` (:mod:`octomon.durations`)."""
    from octomon.durations import words

    return words(
        int(td.total_seconds()) // 60 * 60 if td.total_seconds() >= 60 else td.total_seconds()
    )


def when(dt: datetime) -> str:
    """``2026-11-27 14:00:10 UTC``."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def day_label(day: date) -> str:
    """``30 Nov`` (a UK day, as a person says it)."""
    return f"{day.day} {day:%b}"


def span(td: timedelta) -> str:
    """``2 days``, ``5 hours``, ``12 minutes``: how far the clock moved, in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        n = round(td.total_seconds() / size)
        if n >= 1 and td.total_seconds() >= size * 0.95:
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(td.total_seconds())} seconds"


def hm(dt: datetime, now: datetime) -> str:
    """``14:02 UTC`` on the day of ``now``, else ``2026-11-25 14:02 UTC``."""
    dt, now = dt.astimezone(timezone.utc), now.astimezone(timezone.utc)
    return dt.strftime("%H:%M UTC" if dt.date() == now.date() else "%Y-%m-%d %H:%M UTC")


def cause_of(error: str) -> str:
    lowered = error.lower()
    for cause in ("token", "org", "bucket"):
        if cause in lowered:
            return cause
    return "config"


def relapse_field(relapse: bool) -> dict[str, str]:
    return {"note": "came back within an hour of recovering"} if relapse else {}


def clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
