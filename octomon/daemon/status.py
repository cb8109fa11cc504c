"""The daemon's status snapshot: ``CACHE_DIR/status.json`` (SPEC §6) and the live panel's input.

The monitor fills a :class:`Status` every cycle through its :class:`Board`, which writes it
in place; the panel renders it, and ``octomon status`` reads it back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from octomon.fsutil import overwrite, read_bytes
from octomon.latch import Latch
from octomon.readings import Reading, format_time, parse_time
from octomon.redact import scrub

if TYPE_CHECKING:
    from octomon.alerts.policy import Alert
    from octomon.errors import OctomonError

log = logging.getLogger("octomon.daemon.monitor")

STATUS_FILE = "status.json"
SPARK_SPAN = timedelta(minutes=30)  # the panel's sparkline of demand
MODES = ("influxdb", "cache", "local")
_TIMES = (
    "started_at",
    "last_cycle_at",
    "last_good_cycle_at",
    "last_reading_at",
    "gas_last_reading_at",
)


def healthy(last_good_cycle_at: datetime, poll_interval: int, now: datetime) -> bool:
    """The rule of ``status --check`` and ``/ready``: within 3 poll intervals + 60 s."""
    return now - last_good_cycle_at <= timedelta(seconds=3 * poll_interval + 60)


@dataclass
class Status:
    started_at: datetime
    poll_interval: int
    call_budget: int
    mode: str = "influxdb"  # one of MODES
    last_cycle_at: datetime | None = None
    last_good_cycle_at: datetime | None = None
    last_reading_at: datetime | None = None
    last_demand_kw: float | None = None
    cache_backlog: int = 0  # readings waiting in the cache
    calls_last_hour: int = 0
    stored_this_session: int = 0
    last_error: str | None = None
    last_alert: str | None = None
    pid: int = 0
    # Today (UK day) from the tally (octomon.daemon.today): kWh as `costs` rounds it, and the
    # day so far with its standing charge, inc. VAT, when the tariffs are known.
    electricity_today_kwh: float | None = None
    electricity_today_gbp: float | None = None
    # Gas (SPEC §11): today's totals (UK day) and the newest half-hour stored; None: no gas.
    gas_today_kwh: float | None = None
    gas_today_m3: float | None = None
    gas_today_gbp: float | None = None
    gas_last_reading_at: datetime | None = None
    # The price now (SPEC §4.8/§9): the electricity import unit rate, GBP/kWh inc. VAT.
    unit_rate: float | None = None
    tariff_code: str | None = None
    # SPEC §13: the last cycle's outcome, and each output's state ({"mqtt": "connected …"}).
    last_outcome: str | None = None
    outputs: dict[str, str] | None = None
    # (time, kW) over the last 30 minutes for the panel's sparkline; not written to disk.
    demand_history: list[tuple[datetime, float]] = field(default_factory=list)

    def record_demand(
        self, at: datetime, kw: float, keep: timedelta = timedelta(minutes=30)
    ) -> None:
        self.demand_history.append((at, kw))
        self.demand_history.sort(key=lambda p: p[0])
        cutoff = self.demand_history[-1][0] - keep
        self.demand_history = [p for p in self.demand_history if p[0] >= cutoff]

    def note_error(self, message: str | None) -> None:
        """Keep the last error, scrubbed: it may quote a server's answer (SPEC §5)."""
        self.last_error = scrub(message) if message is not None else None

    def healthy(self, now: datetime) -> bool:
        """``status --check``: the last good cycle is within 3 poll intervals + 60 s."""
        if self.last_good_cycle_at is None:
            return False
        return healthy(self.last_good_cycle_at, self.poll_interval, now)

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(): it would deep-copy the demand history, every cycle.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "demand_history"}
        for key in _TIMES:
            value = getattr(self, key)
            data[key] = format_time(value) if value is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.pop("demand_history", None)
        for key in _TIMES:
            if known.get(key):
                known[key] = parse_time(known[key])
        return cls(**known)

    def gas_summary(self, now: datetime) -> str | None:
        """``today 12.35 kWh (1.123 m³), £0.72; last half-hour 14:00 UTC (45 min ago)``."""
        if self.gas_last_reading_at is None and self.gas_today_kwh is None:
            return None
        from octomon.alerts.policy import duration

        today = "today: none yet"
        if self.gas_today_kwh is not None:
            today = f"today {self.gas_today_kwh:.2f} kWh ({self.gas_today_m3 or 0:.3f} m³)"
            if self.gas_today_gbp is not None:
                today += f", £{self.gas_today_gbp:.2f}"
        last = self.gas_last_reading_at
        if last is None:
            return today
        age = duration(now - last)
        return f"{today}; last half-hour {last.strftime('%H:%M')} UTC ({age} ago)"

    def price_summary(self) -> str | None:
        """``24.5 p/kWh · 13.7 p/h at this demand``: the rate now and what the demand (shown
        on its own row) costs an hour."""
        if self.unit_rate is None:
            return None
        rate = f"{self.unit_rate * 100:.1f} p/kWh"
        if self.last_demand_kw is None:
            return rate
        hourly = self.last_demand_kw * self.unit_rate * 100
        return f"{rate} · {hourly:.1f} p/h at this demand"

    def electricity_today(self) -> str | None:
        """``5.43 kWh · £1.87 with standing charge``: today (UK day) from the tally."""
        if self.electricity_today_kwh is None:
            return None
        text = f"{self.electricity_today_kwh:.2f} kWh"
        if self.electricity_today_gbp is not None:
            text += f" · £{self.electricity_today_gbp:.2f} with standing charge"
        return text

    def gas_panel(self, now: datetime) -> str | None:
        """The panel's gas row, short enough for 80 columns: ``12.30 kWh · £0.72 · newest
        14:00 UTC (45 min ago)``; :meth:`gas_summary` is the long form."""
        if self.gas_last_reading_at is None and self.gas_today_kwh is None:
            return None
        from octomon.alerts.policy import duration

        parts = ["none yet" if self.gas_today_kwh is None else f"{self.gas_today_kwh:.2f} kWh"]
        if self.gas_today_gbp is not None:
            parts.append(f"£{self.gas_today_gbp:.2f}")
        last = self.gas_last_reading_at
        if last is not None:
            parts.append(f"newest {last.strftime('%H:%M')} UTC ({duration(now - last)} ago)")
        return " · ".join(parts)

    def write(self, cache_dir: Path) -> bool:
        """Rewrite (0600) when the content changed; raises OSError for the caller to log
        and retry. False: the file already said this.

        Written in place, not fsync'ed: status.json is a view rewritten every cycle, and a
        new file renamed over it would write a new inode and a directory block each minute
        on an SD card for nothing a restart needs (SPEC §4.9). :meth:`read` reads again a
        file it meets half-written; after a power cut it may be old or garbled, which reads
        as no status (``status --check`` says unhealthy until the next cycle, a minute later).
        """
        path = cache_dir / STATUS_FILE
        body = (json.dumps(self.to_dict(), indent=2) + "\n").encode()
        try:
            if read_bytes(path) == body:
                return False
        except OSError:
            pass
        overwrite(path, body)
        return True

    @classmethod
    def read(cls, cache_dir: Path, attempts: int = 5) -> Status | None:
        """The last written status, or None when there is none (or it is unreadable).

        A file that does not parse is read again a few times, 20 ms apart: the daemon may
        be rewriting it at that instant (it is written in place)."""
        for attempt in range(attempts):
            try:
                data = json.loads(read_bytes(cache_dir / STATUS_FILE))
                return cls.from_dict(data)
            except FileNotFoundError:
                return None
            except (OSError, ValueError, TypeError, KeyError):
                if attempt + 1 < attempts:
                    time.sleep(0.02)
        return None


class Board:
    """The daemon's :class:`Status`: filled from a cycle, fed to the panel, written to disk.

    ``fillers`` are the scheduled jobs' additions (gas today, the price now). A failed write
    (disk full) is logged once and retried at the next one (SPEC §4.5).
    """

    def __init__(
        self, cache_dir: Path, fillers: Sequence[Callable[[Status, datetime], None]] = ()
    ) -> None:
        self.cache_dir = cache_dir
        self.fillers = list(fillers)
        self.status: Status | None = None
        self._writing = Latch(log)

    def open(self, now: datetime, *, poll_interval: int, call_budget: int) -> Status:
        self.status = Status(
            started_at=now, poll_interval=poll_interval, call_budget=call_budget, pid=os.getpid()
        )
        return self.status

    def cycled(
        self,
        now: datetime,
        stored: int,
        good: bool,
        error: OctomonError | None,
        *,
        outcome: str | None = None,
    ) -> None:
        """A poll cycle ended: a good one clears the last error."""
        status = self.status
        if status is None:
            return
        status.last_cycle_at = now
        status.last_outcome = outcome
        status.stored_this_session += stored
        if good:
            status.last_good_cycle_at = now
            status.note_error(error.message if error is not None else None)
        elif error is not None:
            status.note_error(error.message)

    def show(self, readings: Sequence[Reading], fresh: Sequence[Reading]) -> None:
        """Feed the panel: the newest reading and the last 30 minutes of demand."""
        status = self.status
        if status is None or not readings:
            return
        newest = readings[-1]
        if status.last_reading_at is None or newest.read_at >= status.last_reading_at:
            status.last_reading_at = newest.read_at
            status.last_demand_kw = newest.demand
        cutoff = newest.read_at - SPARK_SPAN
        points = [(r.read_at, r.demand) for r in fresh if r.read_at >= cutoff]
        kept = [(at, kw) for at, kw in points if kw is not None]
        if kept:
            status.demand_history.extend(kept[:-1])
            status.record_demand(*kept[-1])  # sorts and trims to the last 30 minutes

    def refresh(
        self, now: datetime, *, mode: str, backlog: int, calls: int, last_alert: str | None
    ) -> None:
        status = self.status
        if status is None:
            return
        status.mode, status.cache_backlog, status.calls_last_hour = mode, backlog, calls
        status.last_alert = last_alert or status.last_alert
        for fill in self.fillers:
            fill(status, now)

    def write(self) -> None:
        """Rewrite ``status.json``; a failure is logged once and retried next time."""
        if self.status is None:
            return
        try:
            self.status.write(self.cache_dir)
        except OSError as exc:
            self._writing.fail(
                "could not write status.json (%s); retrying",
                exc.strerror or exc,
                level=logging.ERROR,
            )
            return
        self._writing.ok()


class Alerts(Protocol):
    def emit(self, alerts: Sequence[Alert]) -> None: ...
    def close(self, timeout: float = 3.0) -> None: ...


class Announcer:
    """The alerter, remembering the last alert's title for the status."""

    def __init__(self, alerter: Alerts) -> None:
        self.alerter = alerter
        self.last: str | None = None

    def emit(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        self.last = alerts[-1].title
        self.alerter.emit(alerts)

    def close(self, timeout: float = 3.0) -> None:
        self.alerter.close(timeout)
