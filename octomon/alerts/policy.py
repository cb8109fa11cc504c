"""Which events become messages, when, and how often (SPEC §4.6). Pure: no I/O, no clock.

:class:`AlertPolicy` turns what the monitor observes into a list of :class:`Alert`; every
method takes ``now``, so throttling is tested without sleeping. The monitor hands the
result to :class:`octomon.alerts.slack.Alerter`, which logs it and posts it to Slack.
What a message says is :mod:`octomon.alerts.messages`; how a problem's episode opens,
repeats and recovers is :mod:`octomon.alerts.episodes`.

The rules of this module:

* A problem is a *condition* with a ``key`` (``influx``, ``octopus``, ``stale``,
  ``rate_limit``, ``cache_write``, ``auth``); see :mod:`octomon.alerts.episodes` for the
  episode it opens (one message, repeats every ``repeat_every`` (4 h), a recovery
  announced once it has held for ``settle`` (5 min), relapses held twice as long).
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

from dataclasses import replace
from datetime import date, datetime, timedelta

from octomon.alerts.episodes import Episodes
from octomon.alerts.messages import (
    Alert,
    Level,
    cause_of,
    clip,
    day_label,
    duration,
    hm,
    message,
    relapse_field,
    span,
    when,
)

OCTOPUS_FAILURES = 3
RATE_LIMIT_AFTER = timedelta(minutes=30)
STALE_AFTER = timedelta(minutes=15)
GAS_STALE_AFTER = timedelta(hours=6)


class AlertPolicy:
    def __init__(
        self,
        *,
        repeat_every: timedelta = timedelta(hours=4),
        settle: timedelta = timedelta(minutes=5),
        max_settle: timedelta = timedelta(hours=1),
    ) -> None:
        self.repeat_every = repeat_every
        self._episodes = Episodes(repeat_every=repeat_every, settle=settle, max_settle=max_settle)
        self._octopus_failures = 0
        self._watching: dict[str, tuple[datetime, datetime | None]] = {}  # since, newest
        self._refused_last: datetime | None = None
        self._refused_more = 0
        self._refused_message = ""
        self._evicted_last: datetime | None = None
        self._evicted_more = (0, 0)  # files, readings dropped since the last alert
        self._lost_spans: set[tuple[datetime, datetime]] = set()

    def _flush(self, now: datetime, *, force: bool = False) -> list[Alert]:
        return self._episodes.flush(now, force=force)

    # --- introspection (the panel, tests) ---------------------------------------------

    def open_problems(self) -> list[Alert]:
        """The current description of every problem not yet recovered."""
        return self._episodes.current()

    # --- lifecycle ----------------------------------------------------------------------

    def started(self, now: datetime, *, mode: str, device_id: str | None) -> list[Alert]:
        fields = {"mode": mode, "device": device_id or "to be discovered"}
        return [message("started", now, fields, mode=mode)]

    def stopped(self, now: datetime, *, cached: int) -> list[Alert]:
        """Info, or a warning when readings remain in the cache; pending recoveries first."""
        out = self._flush(now, force=True)
        fields: dict[str, str] = {}
        still = [alert.title for alert in self._episodes.current()]
        if still:
            fields["still open"] = "; ".join(still)
        if cached:
            fields["cached readings"] = f"{cached:,}"
            out.append(message("stopped_cached", now, fields, cached=cached))
        else:
            out.append(message("stopped", now, fields))
        return out

    # --- Octopus API --------------------------------------------------------------------

    def octopus_ok(self, now: datetime) -> list[Alert]:
        """A cycle's API calls succeeded: ends failures, rate limiting and a refused key."""
        out = self._flush(now)
        self._octopus_failures = 0
        for key in ("octopus", "rate_limit", "auth"):
            out += self._episodes.recover(now, key)
        return out

    def octopus_failed(self, now: datetime, error: str) -> list[Alert]:
        out = self._flush(now)
        self._octopus_failures += 1
        if self._octopus_failures < OCTOPUS_FAILURES:
            return out
        n = self._octopus_failures

        def make(relapse: bool) -> Alert:
            fields = {"last error": clip(error), **relapse_field(relapse)}
            return message("octopus_failing", now, fields, n=n)

        return out + self._episodes.open(now, "octopus", "failing", make)

    def rate_limited(self, now: datetime, since: datetime) -> list[Alert]:
        """A rate-limited cycle; alerts once it has lasted over 30 minutes."""
        out = self._flush(now)
        if now - since <= RATE_LIMIT_AFTER:
            return out

        def make(relapse: bool) -> Alert:
            fields = {"since": when(since), **relapse_field(relapse)}
            return message("rate_limit", now, fields, lasted=duration(now - since))

        return out + self._episodes.open(now, "rate_limit", "limited", make)

    def auth_failed(self, now: datetime, error: str) -> list[Alert]:
        out = self._flush(now)

        def make(relapse: bool) -> Alert:
            return message("auth", now, {"error": clip(error)})

        return out + self._episodes.open(now, "auth", "refused", make)

    def range_lost(self, now: datetime, start: datetime, end: datetime) -> list[Alert]:
        """KT-GB-4051: the API no longer serves [start, end); said once per span."""
        out = self._flush(now)
        if (start, end) in self._lost_spans:
            return out
        self._lost_spans.add((start, end))
        fields = {"from": when(start), "to": when(end)}
        out.append(message("range_lost", now, fields, lost=duration(end - start)))
        return out

    def home_mini_short(
        self, now: datetime, day: date, settled_kwh: float, home_mini_kwh: float, readings: str
    ) -> list[Alert]:
        """A settled UK day the Home Mini caught < 95 % of (SPEC §10). One-off: the caller
        keeps which days were said (in state.json), so a restart does not repeat it."""
        missed = (1 - home_mini_kwh / settled_kwh) * 100 if settled_kwh else 0.0
        fields = {"day": day.isoformat(), "readings": readings}
        return [
            *self._flush(now),
            message(
                "home_mini_short",
                now,
                fields,
                missed=missed,
                day=day_label(day),
                settled_kwh=settled_kwh,
                home_mini_kwh=home_mini_kwh,
            ),
        ]

    def telemetry(self, now: datetime, newest_read_at: datetime | None) -> list[Alert]:
        """The API answered; ``newest_read_at`` is the newest ``readAt`` in the answer."""
        out = self._flush(now)
        stale, newest = self._staleness(now, "stale", newest_read_at, STALE_AFTER)
        if not stale:
            return out + self._episodes.recover(now, "stale")

        def make(relapse: bool) -> Alert:
            seen = (
                f"The newest reading is from {when(newest)} ({duration(now - newest)} ago)"
                if newest
                else "No reading has arrived since octomon started"
            )
            fields = {"last reading": when(newest) if newest else "none", **relapse_field(relapse)}
            return message("stale", now, fields, seen=seen)

        return out + self._episodes.open(now, "stale", "stale", make)

    def gas(self, now: datetime, newest_read_at: datetime | None) -> list[Alert]:
        """The API answered a gas poll; ``newest_read_at`` is its newest half-hour."""
        out = self._flush(now)
        stale, newest = self._staleness(now, "gas_stale", newest_read_at, GAS_STALE_AFTER)
        if not stale:
            return out + self._episodes.recover(now, "gas_stale")

        def make(relapse: bool) -> Alert:
            seen = (
                f"The newest gas half-hour is from {when(newest)} ({duration(now - newest)} ago)"
                if newest
                else "No gas half-hour has arrived since octomon started"
            )
            fields = {
                "last gas reading": when(newest) if newest else "none",
                **relapse_field(relapse),
            }
            return message("gas_stale", now, fields, seen=seen)

        return out + self._episodes.open(now, "gas_stale", "gas_stale", make)

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
            fields = {"error": clip(error), **relapse_field(relapse)}
            return message("influx_lost", now, fields)

        return out + self._episodes.open(now, "influx", "lost", make)

    def influx_config(self, now: datetime, error: str, cause: str | None = None) -> list[Alert]:
        """401/403/404: ``cause`` is token, org or bucket (guessed from ``error`` if absent)."""
        out = self._flush(now)
        cause = cause or cause_of(error)
        setting = (
            f"INFLUXDB_{cause.upper()}"
            if cause in ("token", "org", "bucket")
            else "INFLUXDB_TOKEN, INFLUXDB_ORG and INFLUXDB_BUCKET"
        )
        title = f"InfluxDB refused the {cause}" if cause != "config" else "InfluxDB config problem"

        def make(relapse: bool) -> Alert:
            fields = {"error": clip(error), "cause": cause, **relapse_field(relapse)}
            return message("influx_config", now, fields, title=title, setting=setting)

        return out + self._episodes.open(now, "influx", f"config:{cause}", make)

    def influx_restored(self, now: datetime) -> list[Alert]:
        """A write was acknowledged again; announced once the recovery holds."""
        return self._flush(now) + self._episodes.recover(now, "influx")

    def cache_synced(self, now: datetime, count: int) -> list[Alert]:
        """A sync drained the cache. Within an InfluxDB episode it joins the "restored"."""
        if self._episodes.add_synced("influx", count):
            return self._flush(now)
        out = self._flush(now)
        if count > 0:
            fields = {"readings": f"{count:,}"}
            out.append(message("cache_synced", now, fields, count=count))
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
        out = self._flush(now)
        cause = "The disk holding CACHE_DIR is full." if full else "The local cache failed."
        title = "Caching failed: disk full" if full else "Caching failed"

        def make(relapse: bool) -> Alert:
            fields = {"error": clip(error), **relapse_field(relapse)}
            return message("cache_failed", now, fields, title=title, cause=cause)

        return out + self._episodes.open(now, "cache_write", "full" if full else "failed", make)

    def state_failed(self, now: datetime, error: str) -> list[Alert]:
        """``state.json`` could not be written (a full disk): the ledger is kept in memory."""
        out = self._flush(now)

        def make(relapse: bool) -> Alert:
            return message("state_failed", now, {"error": clip(error), **relapse_field(relapse)})

        return out + self._episodes.open(now, "state_write", "failed", make)

    def state_ok(self, now: datetime) -> list[Alert]:
        return self._flush(now) + self._episodes.recover(now, "state_write")

    def clock_moved_back(
        self, now: datetime, by: timedelta, resume_from: datetime | None
    ) -> list[Alert]:
        """SPEC §4.1: ``now`` is earlier than the cursor or the last cycle."""
        again = f"; fetching again from {hm(resume_from, now)}" if resume_from else ""
        fields = {"moved back by": duration(by)}
        return [*self._flush(now), message("clock", now, fields, span=span(by), again=again)]

    def state_damaged(
        self, now: datetime, set_aside: str, resume_from: datetime, from_cache: bool
    ) -> list[Alert]:
        """SPEC §4.1: an unreadable state.json was set aside; the span that may need backfill."""
        where = "the newest reading in the cache" if from_cache else "one hour back"
        fields = {"resumes from": when(resume_from), "set aside as": set_aside}
        alert = message(
            "state_damaged",
            now,
            fields,
            set_aside=set_aside,
            resume=when(resume_from),
            where=where,
            until=resume_from.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return [*self._flush(now), alert]

    def cache_ok(self, now: datetime) -> list[Alert]:
        """An append succeeded: ends a caching failure (announced once it holds)."""
        return self._flush(now) + self._episodes.recover(now, "cache_write")

    def cache_evicted(self, now: datetime, files: int, readings: int) -> list[Alert]:
        """Over CACHE_MAX_MB the oldest day files were dropped: readings were lost. The first
        at once, later ones summed into one message per 4 h (a cache at its cap drops a day
        file at every append)."""
        out = self._flush(now)
        if self._evicted_last is not None and now - self._evicted_last < self.repeat_every:
            more_files, more_readings = self._evicted_more
            self._evicted_more = (more_files + files, more_readings + readings)
            return out
        self._evicted_last = now
        out.append(self._evicted_alert(now, files, readings, follow_up=False))
        return out

    # --- time passing -------------------------------------------------------------------

    def due_repeats(self, now: datetime) -> list[Alert]:
        """Settled recoveries, and open problems last said ``repeat_every`` ago or more."""
        out = self._flush(now) + self._episodes.repeats(now)
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
        files, readings = self._evicted_more
        if (
            files
            and self._evicted_last is not None
            and now - self._evicted_last >= self.repeat_every
        ):
            out.append(self._evicted_alert(now, files, readings, follow_up=True))
            self._evicted_last = now
            self._evicted_more = (0, 0)
        return out

    def _evicted_alert(self, now: datetime, files: int, readings: int, *, follow_up: bool) -> Alert:
        fields = {"files": str(files), "readings lost": f"{readings:,}"}
        if not follow_up:
            return message("cache_evicted", now, fields, files=files, readings=readings)
        every = duration(self.repeat_every)
        alert = message(
            "cache_evicted_more", now, fields, files=files, readings=readings, every=every
        )
        return replace(alert, repeat=True)

    def _refused_alert(self, now: datetime, count: int, said: str, *, follow_up: bool) -> Alert:
        fields = {"server said": clip(said)}
        if not follow_up:
            return message("refused", now, fields, count=count)
        alert = message("refused_more", now, fields, count=count, every=duration(self.repeat_every))
        return replace(alert, repeat=True)


__all__ = ["Alert", "AlertPolicy", "Level", "day_label", "duration", "when"]
