"""Episodes of a problem: open, repeat, recover (SPEC §4.6). Pure: no I/O, no clock.

A problem is a *condition* with a ``key``. Its first report opens an *episode* and sends
one message; further reports of the same kind send nothing, a new kind sends one more.
An open problem is repeated every ``repeat_every``. A recovery is announced only once it
has held for ``settle``; a relapse before that silently continues the episode. A problem
back within an hour of an announced recovery is said at once, and its next recovery must
hold twice as long (the one backoff rule, up to ``max_settle``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from octomon.alerts.messages import RECOVERIES, Alert, Level, duration, when
from octomon.backoff import next_delay

RELAPSE_WINDOW = timedelta(hours=1)

Factory = Callable[[bool], Alert]  # relapse -> the alert


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


class Episodes:
    """The open problems, each with its own settle time. One owner: not thread-safe."""

    def __init__(self, *, repeat_every: timedelta, settle: timedelta, max_settle: timedelta):
        self.repeat_every = repeat_every
        self.settle = settle
        self.max_settle = max_settle
        self._open: dict[str, _Episode] = {}
        self._settle: dict[str, timedelta] = {}
        self._recovered_at: dict[str, datetime] = {}

    def current(self) -> list[Alert]:
        """The current description of every problem not yet recovered."""
        return [ep.current for ep in self._open.values()]

    def add_synced(self, key: str, count: int) -> bool:
        """Fold ``count`` synced readings into an open ``key`` episode; False: none open."""
        ep = self._open.get(key)
        if ep is None:
            return False
        ep.synced += count
        return True

    def open(self, now: datetime, key: str, kind: str, make: Factory) -> list[Alert]:
        ep = self._open.get(key)
        if ep is None:
            last = self._recovered_at.get(key)
            relapse = last is not None and now - last < RELAPSE_WINDOW
            base = self._settle.get(key, self.settle)
            self._settle[key] = self._next_settle(base) if relapse else self.settle
            alert = make(relapse)
            if relapse:
                alert = replace(
                    alert,
                    fields={
                        **alert.fields,
                        "recovery announced after": duration(self._settle[key]) + " without it",
                    },
                )
            self._open[key] = _Episode(key, now, now, alert, {kind})
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

    def recover(self, now: datetime, key: str) -> list[Alert]:
        ep = self._open.get(key)
        if ep is None or ep.recovering_since is not None:
            return []
        ep.recovering_since = now
        return self.flush(now)

    def flush(self, now: datetime, *, force: bool = False) -> list[Alert]:
        """The recoveries that have held (all pending ones with ``force``)."""
        out = []
        for key, ep in list(self._open.items()):
            since = ep.recovering_since
            if since is None:
                continue
            if force or now - since >= self._settle.get(key, self.settle):
                del self._open[key]
                self._recovered_at[key] = now
                out.append(_recovery(ep, since, now))
        return out

    def repeats(self, now: datetime) -> list[Alert]:
        """Open problems last said ``repeat_every`` ago or more, said again."""
        out = []
        for ep in self._open.values():
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
        return out

    def _next_settle(self, previous: timedelta) -> timedelta:
        seconds = next_delay(
            previous.total_seconds(), self.settle.total_seconds(), self.max_settle.total_seconds()
        )
        return timedelta(seconds=seconds)


def _recovery(ep: _Episode, since: datetime, now: datetime) -> Alert:
    fields = {"problem began": when(ep.opened_at), "lasted": duration(since - ep.opened_at)}
    if ep.flaps:
        fields["relapses"] = f"{ep.flaps} (came back before it held)"
    title, text = RECOVERIES.get(ep.key, (f"{ep.current.title}: recovered", ""))
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


def _flap_field(ep: _Episode) -> dict[str, str]:
    return {"relapses": str(ep.flaps)} if ep.flaps else {}
