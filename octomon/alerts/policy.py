"""Which events become messages, when, and how often (SPEC §4.6). Pure: no I/O, no clock.

:class:`AlertPolicy` turns what the monitor observes into a list of :class:`Alert`; every
method takes ``now``, so throttling is tested without sleeping. The monitor hands the
result to :class:`octomon.alerts.slack.Alerter`, which logs it and posts it to Slack.

The rules, in one place:

* A problem is a *condition* with a ``key`` (``influx``, ``octopus``, ``stale``,
  ``rate_limit``, ``cache_write``, ``auth``). Its first report opens an *episode* and
  sends one message. Further reports of the same kind in the same episode send nothing;
  a report of a new kind (InfluxDB unreachable → token refused) sends one more.
* An open problem is repeated by :meth:`AlertPolicy.due_repeats` at most every
  ``repeat_every`` (4 h) while it lasts.
* Debouncing: a recovery is *announced only once it has held* for ``settle`` (5 min).
  A relapse before that silently continues the same episode. So a flapping InfluxDB
  costs one warning and one "restored" however often it flaps, and the "synced N
  readings" of every sync in the episode is folded into that one "restored" message.
  If a problem comes back within an hour of an announced recovery, it is announced at
  once (bad news is never held back), and its next recovery must hold twice as long
  (10, 20, 40 min, at most 1 h): a crash-looping server settles at about one pair of
  messages an hour.
* A settled recovery is announced by the next call of any method (the monitor calls
  :meth:`AlertPolicy.due_repeats` every cycle); :meth:`AlertPolicy.stopped` announces a
  pending recovery at once.
* Octopus failures open an episode after 3 failed cycles in a row; rate limiting after
  it has lasted over 30 minutes (rate-limited cycles neither count as failures nor break
  a run of them); staleness after 15 minutes without a new ``readAt`` while the API
  answers (gas: 6 hours without a new half-hour, its own ``gas_stale`` condition).
* One-off events: write refused (the first at once, later ones within 4 h summed into
  one follow-up), cache over its cap (every eviction: readings were lost), range lost
  (once per span), a UK day the Home Mini caught < 95 % of (once per day), start and stop.

Not thread-safe: one owner (the monitor loop) calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from enum import Enum

OCTOPUS_FAILURES = 3
RATE_LIMIT_AFTER = timedelta(minutes=30)
STALE_AFTER = timedelta(minutes=15)
GAS_STALE_AFTER = timedelta(hours=6)
RELAPSE_WINDOW = timedelta(hours=1)


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


@dataclass
class _Episode:
    key: str
    opened_at: datetime
    last_sent: datetime
    current: Alert  # the latest description of the problem (what a repeat says)
    kinds: set[str] = field(default_factory=set)
    recovering_since: datetime | None = None
    flaps: int = 0  # relapses before a recovery settled
    synced: int = 0  # influx: readings synced during the episode


Factory = Callable[[bool], Alert]  # relapse -> the alert


def duration(td: timedelta) -> str:
    """``45 s``, ``12 min``, ``4 h``, ``2 h 5 min``, ``3 d 2 h``."""
    seconds = max(0, int(td.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def when(dt: datetime) -> str:
    """``2026-11-27 14:00:10 UTC``."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def day_label(day: date) -> str:
    """``30 Nov`` (a UK day, as a person says it)."""
    return f"{day.day} {day:%b}"


def _span(td: timedelta) -> str:
    """``2 days``, ``5 hours``, ``12 minutes``: how far the clock moved, in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        n = round(td.total_seconds() / size)
        if n >= 1 and td.total_seconds() >= size * 0.95:
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(td.total_seconds())} seconds"


def _hm(dt: datetime, now: datetime) -> str:
    """``14:02 UTC`` on the day of ``now``, else ``2026-11-25 14:02 UTC``."""
    dt, now = dt.astimezone(timezone.utc), now.astimezone(timezone.utc)
    return dt.strftime("%H:%M UTC" if dt.date() == now.date() else "%Y-%m-%d %H:%M UTC")


def _cause_of(error: str) -> str:
    lowered = error.lower()
    for cause in ("token", "org", "bucket"):
        if cause in lowered:
            return cause
    return "config"


class AlertPolicy:
    def __init__(
        self,
        *,
        repeat_every: timedelta = timedelta(hours=4),
        settle: timedelta = timedelta(minutes=5),
        max_settle: timedelta = timedelta(hours=1),
    ) -> None:
        self.repeat_every = repeat_every
        self.settle = settle
        self.max_settle = max_settle
        self._episodes: dict[str, _Episode] = {}
        self._settle: dict[str, timedelta] = {}
        self._recovered_at: dict[str, datetime] = {}
        self._octopus_failures = 0
        self._watching: dict[str, tuple[datetime, datetime | None]] = {}  # since, newest
        self._refused_last: datetime | None = None
        self._refused_more = 0
        self._refused_message = ""
        self._lost_spans: set[tuple[datetime, datetime]] = set()

    # --- introspection (the panel, tests) ---------------------------------------------

    def open_problems(self) -> list[Alert]:
        """The current description of every problem not yet recovered."""
        return [ep.current for ep in self._episodes.values()]

    # --- lifecycle ----------------------------------------------------------------------

    def started(self, now: datetime, *, mode: str, device_id: str | None) -> list[Alert]:
        fields = {"mode": mode, "device": device_id or "to be discovered"}
        return [
            Alert(
                level=Level.INFO,
                title="octomon started",
                text=f"Monitoring in {mode} mode.",
                component="monitor",
                fields=fields,
                at=now,
                key="lifecycle",
            )
        ]

    def stopped(self, now: datetime, *, cached: int) -> list[Alert]:
        """Info, or a warning when readings remain in the cache; pending recoveries first."""
        out = self._flush(now, force=True)
        fields: dict[str, str] = {}
        still = [ep.current.title for ep in self._episodes.values()]
        if still:
            fields["still open"] = "; ".join(still)
        if cached:
            fields["cached readings"] = f"{cached:,}"
            out.append(
                Alert(
                    level=Level.WARNING,
                    title="octomon stopped with readings in the cache",
                    text=f"{cached:,} readings are waiting in the cache. They are synced when "
                    "octomon starts again with InfluxDB reachable, or now with "
                    "`octomon sync-cache`.",
                    component="monitor",
                    fields=fields,
                    at=now,
                    key="lifecycle",
                )
            )
        else:
            out.append(
                Alert(
                    level=Level.INFO,
                    title="octomon stopped",
                    text="Stopped cleanly.",
                    component="monitor",
                    fields=fields,
                    at=now,
                    key="lifecycle",
                )
            )
        return out

    # --- Octopus API --------------------------------------------------------------------

    def octopus_ok(self, now: datetime) -> list[Alert]:
        """A cycle's API calls succeeded: ends failures, rate limiting and a refused key."""
        out = self._flush(now)
        self._octopus_failures = 0
        for key in ("octopus", "rate_limit", "auth"):
            out += self._recover(now, key)
        return out

    def octopus_failed(self, now: datetime, error: str) -> list[Alert]:
        out = self._flush(now)
        self._octopus_failures += 1
        if self._octopus_failures < OCTOPUS_FAILURES:
            return out
        n = self._octopus_failures

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.ERROR,
                title="Octopus API failing",
                text=f"Fetching from the Octopus API failed {n} cycles in a row. Readings are not "
                "lost while this lasts: the gap is fetched when the API answers again.",
                component="octopus",
                fields={"last error": _clip(error), **_relapse_field(relapse)},
                at=now,
                key="octopus",
            )

        return out + self._open(now, "octopus", "failing", make)

    def rate_limited(self, now: datetime, since: datetime) -> list[Alert]:
        """A rate-limited cycle; alerts once it has lasted over 30 minutes."""
        out = self._flush(now)
        if now - since <= RATE_LIMIT_AFTER:
            return out

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.WARNING,
                title="Octopus API rate limit",
                text=f"The Octopus API has been refusing calls as rate-limited for "
                f"{duration(now - since)}. The hourly limit is shared with the Octopus app "
                "and other integrations; octomon backs off (up to 30 min) and catches up "
                "afterwards. If it persists, lower OCTOPUS_MAX_CALLS_PER_HOUR or close other "
                "integrations.",
                component="octopus",
                fields={"since": when(since), **_relapse_field(relapse)},
                at=now,
                key="rate_limit",
            )

        return out + self._open(now, "rate_limit", "limited", make)

    def auth_failed(self, now: datetime, error: str) -> list[Alert]:
        out = self._flush(now)

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.ERROR,
                title="Octopus API key refused",
                text="The Octopus API refused the API key; octomon stops instead of retrying it. "
                "Check OCTOPUS_API_KEY (Octopus account → Personal details → API access) and "
                "start it again.",
                component="octopus",
                fields={"error": _clip(error)},
                at=now,
                key="auth",
            )

        return out + self._open(now, "auth", "refused", make)

    def range_lost(self, now: datetime, start: datetime, end: datetime) -> list[Alert]:
        """KT-GB-4051: the API no longer serves [start, end); said once per span."""
        out = self._flush(now)
        if (start, end) in self._lost_spans:
            return out
        self._lost_spans.add((start, end))
        out.append(
            Alert(
                level=Level.ERROR,
                title="Readings lost: too old for the Octopus API",
                text=f"The Octopus API no longer serves readings this old, so "
                f"{duration(end - start)} of history could not be fetched. octomon continues "
                "from the oldest time the API still serves.",
                component="octopus",
                fields={"from": when(start), "to": when(end)},
                at=now,
                key="range_lost",
            )
        )
        return out

    def home_mini_short(
        self, now: datetime, day: date, settled_kwh: float, home_mini_kwh: float, readings: str
    ) -> list[Alert]:
        """A settled UK day the Home Mini caught < 95 % of (SPEC §10). One-off: the caller
        keeps which days were said (in state.json), so a restart does not repeat it."""
        missed = (1 - home_mini_kwh / settled_kwh) * 100 if settled_kwh else 0.0
        return [
            *self._flush(now),
            Alert(
                level=Level.WARNING,
                title="Home Mini missed readings",
                text=f"the Home Mini missed {missed:.1f}% of {day_label(day)}: settled "
                f"{settled_kwh:.2f} kWh, Home Mini {home_mini_kwh:.2f} kWh; power-cycle it "
                "if this repeats",
                component="home_mini",
                fields={"day": day.isoformat(), "readings": readings},
                at=now,
                key="reconciliation",
            ),
        ]

    def telemetry(self, now: datetime, newest_read_at: datetime | None) -> list[Alert]:
        """The API answered; ``newest_read_at`` is the newest ``readAt`` in the answer."""
        out = self._flush(now)
        stale, newest = self._staleness(now, "stale", newest_read_at, STALE_AFTER)
        if not stale:
            return out + self._recover(now, "stale")

        def make(relapse: bool) -> Alert:
            seen = (
                f"The newest reading is from {when(newest)} ({duration(now - newest)} ago)"
                if newest
                else "No reading has arrived since octomon started"
            )
            return Alert(
                level=Level.WARNING,
                title="Home Mini data stale",
                text=f"{seen}, although the Octopus API answers. Power-cycle the Home Mini (unplug "
                "it for 10 seconds) and check that its light shows it is connected.",
                component="home-mini",
                fields={
                    "last reading": when(newest) if newest else "none",
                    **_relapse_field(relapse),
                },
                at=now,
                key="stale",
            )

        return out + self._open(now, "stale", "stale", make)

    def gas(self, now: datetime, newest_read_at: datetime | None) -> list[Alert]:
        """The API answered a gas poll; ``newest_read_at`` is its newest half-hour."""
        out = self._flush(now)
        stale, newest = self._staleness(now, "gas_stale", newest_read_at, GAS_STALE_AFTER)
        if not stale:
            return out + self._recover(now, "gas_stale")

        def make(relapse: bool) -> Alert:
            seen = (
                f"The newest gas half-hour is from {when(newest)} ({duration(now - newest)} ago)"
                if newest
                else "No gas half-hour has arrived since octomon started"
            )
            return Alert(
                level=Level.WARNING,
                title="Gas data stale",
                text=f"{seen}, although the Octopus API answers. The gas meter reaches the Home "
                "Mini through the smart meter hub: check the Octopus app for gas readings, and "
                "power-cycle the Home Mini if electricity is stale too.",
                component="gas",
                fields={
                    "last gas reading": when(newest) if newest else "none",
                    **_relapse_field(relapse),
                },
                at=now,
                key="gas_stale",
            )

        return out + self._open(now, "gas_stale", "gas_stale", make)

    def _staleness(
        self, now: datetime, key: str, newest_read_at: datetime | None, after: timedelta
    ) -> tuple[bool, datetime | None]:
        """(stale?, the newest ``readAt`` seen -- None: none since the start).

        Staleness is judged from the newest ``readAt`` seen, or from when watching began
        (a daemon that just started is not stale yet).
        """
        since, newest = self._watching.get(key, (now, None))
        if newest_read_at is not None and (newest is None or newest_read_at > newest):
            newest = newest_read_at
        self._watching[key] = (since, newest)
        reference = max(newest, since) if newest else since
        return now - reference >= after, newest

    # --- InfluxDB and the cache -------------------------------------------------------

    def influx_lost(self, now: datetime, error: str) -> list[Alert]:
        out = self._flush(now)

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.WARNING,
                title="InfluxDB unreachable: caching readings",
                text="Writing to InfluxDB failed, so readings are kept in the local cache and "
                "synced when it is back. Nothing is lost while the disk has room.",
                component="influxdb",
                fields={"error": _clip(error), **_relapse_field(relapse)},
                at=now,
                key="influx",
            )

        return out + self._open(now, "influx", "lost", make)

    def influx_config(self, now: datetime, error: str, cause: str | None = None) -> list[Alert]:
        """401/403/404: ``cause`` is token, org or bucket (guessed from ``error`` if absent)."""
        out = self._flush(now)
        cause = cause or _cause_of(error)
        setting = (
            f"INFLUXDB_{cause.upper()}"
            if cause in ("token", "org", "bucket")
            else "INFLUXDB_TOKEN, INFLUXDB_ORG and INFLUXDB_BUCKET"
        )
        title = f"InfluxDB refused the {cause}" if cause != "config" else "InfluxDB config problem"

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.ERROR,
                title=title,
                text=f"InfluxDB answers but refuses octomon's writes. Check {setting}, then "
                "restart octomon. Readings are kept in the local cache meanwhile.",
                component="influxdb",
                fields={"error": _clip(error), "cause": cause, **_relapse_field(relapse)},
                at=now,
                key="influx",
            )

        return out + self._open(now, "influx", f"config:{cause}", make)

    def influx_restored(self, now: datetime) -> list[Alert]:
        """A write was acknowledged again; announced once the recovery holds."""
        return self._flush(now) + self._recover(now, "influx")

    def cache_synced(self, now: datetime, count: int) -> list[Alert]:
        """A sync drained the cache. Within an InfluxDB episode it joins the "restored"."""
        ep = self._episodes.get("influx")
        if ep is not None:
            ep.synced += count
            return self._flush(now)
        out = self._flush(now)
        if count > 0:
            out.append(
                Alert(
                    level=Level.INFO,
                    title=f"Cache synced: {count:,} readings",
                    text="Readings kept in the cache are now in InfluxDB.",
                    component="cache",
                    fields={"readings": f"{count:,}"},
                    at=now,
                    key="cache_sync",
                )
            )
        return out

    def write_refused(self, now: datetime, count: int, message: str) -> list[Alert]:
        """400/413/422: the first at once, later ones summed into one message per 4 h."""
        out = self._flush(now)
        if self._refused_last is not None and now - self._refused_last < self.repeat_every:
            self._refused_more += count
            self._refused_message = message
            return out
        self._refused_last = now
        out.append(self._refused_alert(now, count, message, follow_up=False))
        return out

    def cache_failed(self, now: datetime, error: str, *, full: bool = False) -> list[Alert]:
        """An append failed; ``full``: the disk is full (ENOSPC), else another I/O error."""
        cause = "The disk holding CACHE_DIR is full." if full else "The local cache failed."
        return self._problem(
            now,
            "cache_write",
            "full" if full else "failed",
            "Caching failed: disk full" if full else "Caching failed",
            f"{cause} Readings could not be written to it. octomon keeps running and fetches "
            "the same span again next cycle, so nothing is lost once the cache is writable "
            "again.",
            error,
        )

    def state_failed(self, now: datetime, error: str) -> list[Alert]:
        """``state.json`` could not be written (a full disk): the ledger is kept in memory."""
        return self._problem(
            now,
            "state_write",
            "failed",
            "Cannot save state.json",
            "octomon keeps polling and writing to InfluxDB; the call ledger is kept in memory "
            "(still enforced) and the cursor is saved once the disk has room again.",
            error,
        )

    def _problem(
        self, now: datetime, key: str, kind: str, title: str, text: str, error: str
    ) -> list[Alert]:
        """An error episode of the cache directory (one alert per state change)."""
        out = self._flush(now)

        def make(relapse: bool) -> Alert:
            return Alert(
                level=Level.ERROR,
                title=title,
                text=text,
                component="cache",
                fields={"error": _clip(error), **_relapse_field(relapse)},
                at=now,
                key=key,
            )

        return out + self._open(now, key, kind, make)

    def state_ok(self, now: datetime) -> list[Alert]:
        return self._flush(now) + self._recover(now, "state_write")

    def clock_moved_back(
        self, now: datetime, by: timedelta, resume_from: datetime | None
    ) -> list[Alert]:
        """SPEC §4.1: ``now`` is earlier than the cursor or the last cycle."""
        again = f"; fetching again from {_hm(resume_from, now)}" if resume_from else ""
        return [
            *self._flush(now),
            Alert(
                level=Level.WARNING,
                title="System clock moved back",
                text=f"the system clock moved back by {_span(by)}{again}",
                component="octomon",
                fields={"moved back by": duration(by)},
                at=now,
                key="clock",
            ),
        ]

    def state_damaged(
        self, now: datetime, set_aside: str, resume_from: datetime, from_cache: bool
    ) -> list[Alert]:
        """SPEC §4.1: an unreadable state.json was set aside; the span that may need backfill."""
        where = "the newest reading in the cache" if from_cache else "one hour back"
        return [
            *self._flush(now),
            Alert(
                level=Level.WARNING,
                title="state.json was damaged",
                text=f"state.json could not be read and was set aside as {set_aside} (secrets "
                f"removed). Fetching resumes from {when(resume_from)} ({where}); readings "
                "before then that were never stored may need `octomon backfill --until "
                f"{resume_from.strftime('%Y-%m-%dT%H:%M:%SZ')}`.",
                component="octomon",
                fields={"resumes from": when(resume_from), "set aside as": set_aside},
                at=now,
                key="state_damaged",
            ),
        ]

    def cache_ok(self, now: datetime) -> list[Alert]:
        """An append succeeded: ends a caching failure (announced once it holds)."""
        return self._flush(now) + self._recover(now, "cache_write")

    def cache_evicted(self, now: datetime, files: int, readings: int) -> list[Alert]:
        """Over CACHE_MAX_MB the oldest day files were dropped: readings were lost."""
        out = self._flush(now)
        out.append(
            Alert(
                level=Level.ERROR,
                title=f"Cache over its cap: {readings:,} readings lost",
                text=f"The cache exceeded CACHE_MAX_MB, so its oldest {files} day file(s) were "
                "deleted. Bring InfluxDB back (or run `octomon sync-cache`) before more is "
                "dropped, or raise CACHE_MAX_MB.",
                component="cache",
                fields={"files": str(files), "readings lost": f"{readings:,}"},
                at=now,
                key="cache_cap",
            )
        )
        return out

    # --- time passing -------------------------------------------------------------------

    def due_repeats(self, now: datetime) -> list[Alert]:
        """Settled recoveries, and open problems last said ``repeat_every`` ago or more."""
        out = self._flush(now)
        for ep in self._episodes.values():
            if ep.recovering_since is None and now - ep.last_sent >= self.repeat_every:
                ep.last_sent = now
                out.append(
                    replace(
                        ep.current,
                        title=f"Still: {ep.current.title}",
                        at=now,
                        repeat=True,
                        fields={**ep.current.fields, "open for": duration(now - ep.opened_at)},
                    )
                )
        if (
            self._refused_more
            and self._refused_last is not None
            and now - self._refused_last >= self.repeat_every
        ):
            out.append(
                self._refused_alert(now, self._refused_more, self._refused_message, follow_up=True)
            )
            self._refused_last = now
            self._refused_more = 0
        return out

    # --- the machinery ------------------------------------------------------------------

    def _open(self, now: datetime, key: str, kind: str, make: Factory) -> list[Alert]:
        ep = self._episodes.get(key)
        if ep is None:
            last = self._recovered_at.get(key)
            relapse = last is not None and now - last < RELAPSE_WINDOW
            base = self._settle.get(key, self.settle)
            self._settle[key] = min(base * 2, self.max_settle) if relapse else self.settle
            alert = make(relapse)
            if relapse:
                alert = replace(
                    alert,
                    fields={
                        **alert.fields,
                        "recovery announced after": duration(self._settle[key]) + " without it",
                    },
                )
            self._episodes[key] = _Episode(key, now, now, alert, {kind})
            return [alert]
        if ep.recovering_since is not None:  # relapsed before the recovery settled
            ep.recovering_since = None
            ep.flaps += 1
        alert = make(False)
        if kind in ep.kinds:
            ep.current = replace(alert, fields={**alert.fields, **_flap_field(ep)})
            return []
        ep.kinds.add(kind)
        ep.current = alert
        ep.last_sent = now
        return [alert]

    def _recover(self, now: datetime, key: str) -> list[Alert]:
        ep = self._episodes.get(key)
        if ep is None or ep.recovering_since is not None:
            return []
        ep.recovering_since = now
        return self._flush(now)

    def _flush(self, now: datetime, *, force: bool = False) -> list[Alert]:
        out = []
        for key, ep in list(self._episodes.items()):
            since = ep.recovering_since
            if since is None:
                continue
            if force or now - since >= self._settle.get(key, self.settle):
                del self._episodes[key]
                self._recovered_at[key] = now
                out.append(self._recovery(ep, since, now))
        return out

    def _recovery(self, ep: _Episode, since: datetime, now: datetime) -> Alert:
        fields = {"problem began": when(ep.opened_at), "lasted": duration(since - ep.opened_at)}
        if ep.flaps:
            fields["relapses"] = f"{ep.flaps} (came back before it held)"
        texts = {
            "influx": ("InfluxDB restored", "Writes to InfluxDB are acknowledged again."),
            "octopus": ("Octopus API recovered", "Fetching works again; the gap is caught up."),
            "rate_limit": ("Octopus API no longer rate limited", "Fetching works again."),
            "stale": ("Home Mini data fresh again", "New readings are arriving."),
            "gas_stale": ("Gas data fresh again", "New gas half-hours are arriving."),
            "cache_write": ("Caching works again", "Readings are written to the cache again."),
            "state_write": ("state.json saved again", "The cursor and the ledger are on disk."),
            "auth": ("Octopus API key accepted", "The API key works again."),
        }
        title, text = texts.get(ep.key, (f"{ep.current.title}: recovered", ""))
        if ep.key == "influx" and ep.synced:
            title += f"; synced {ep.synced:,} readings"
            text += " The readings kept in the cache meanwhile are in InfluxDB."
            fields["synced"] = f"{ep.synced:,} readings"
        return Alert(
            level=Level.INFO,
            title=title,
            text=text,
            component=ep.current.component,
            fields=fields,
            at=now,
            key=ep.key,
            recovery=True,
        )

    def _refused_alert(self, now: datetime, count: int, message: str, *, follow_up: bool) -> Alert:
        title = (
            f"InfluxDB refused {count:,} more readings"
            if follow_up
            else f"InfluxDB refused {count:,} readings"
        )
        text = (
            "InfluxDB refused the data itself (not a connection problem). The refused "
            "readings are kept under CACHE_DIR/rejected/ with the server's message."
        )
        if follow_up:
            text = f"More refusals in the last {duration(self.repeat_every)}. " + text
        return Alert(
            level=Level.ERROR,
            title=title,
            text=text,
            component="influxdb",
            fields={"server said": _clip(message)},
            at=now,
            key="refused",
            repeat=follow_up,
        )


def _relapse_field(relapse: bool) -> dict[str, str]:
    return {"note": "came back within an hour of recovering"} if relapse else {}


def _flap_field(ep: _Episode) -> dict[str, str]:
    return {"relapses": str(ep.flaps)} if ep.flaps else {}


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Alert", "AlertPolicy", "Level", "duration", "when"]
