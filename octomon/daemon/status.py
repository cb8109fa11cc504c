"""The daemon's status snapshot: ``CACHE_DIR/status.json`` (SPEC §6) and the live panel's input.

The monitor fills a :class:`Status` every cycle; ``run`` writes it atomically, the panel
renders it, and ``octomon status`` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from octomon.fsutil import atomic_write
from octomon.readings import format_time, parse_time
from octomon.redact import scrub

STATUS_FILE = "status.json"
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
        """``today 12.345 kWh (1.123 m³), £0.72; last half-hour 14:00 UTC (45 min ago)``."""
        if self.gas_last_reading_at is None and self.gas_today_kwh is None:
            return None
        from octomon.alerts.policy import duration

        today = "today: none yet"
        if self.gas_today_kwh is not None:
            today = f"today {self.gas_today_kwh:.3f} kWh ({self.gas_today_m3 or 0:.3f} m³)"
            if self.gas_today_gbp is not None:
                today += f", £{self.gas_today_gbp:.2f}"
        last = self.gas_last_reading_at
        if last is None:
            return today
        age = duration(now - last)
        return f"{today}; last half-hour {last.strftime('%H:%M')} UTC ({age} ago)"

    def price_summary(self) -> str | None:
        """``0.56 kW · 24.5 p/kWh · 13.7 p/h``: the rate now and what the demand costs an hour."""
        if self.unit_rate is None:
            return None
        rate = f"{self.unit_rate * 100:.1f} p/kWh"
        if self.last_demand_kw is None:
            return rate
        hourly = self.last_demand_kw * self.unit_rate * 100
        return f"{self.last_demand_kw:.2f} kW · {rate} · {hourly:.1f} p/h"

    def write(self, cache_dir: Path) -> None:
        """Atomic rewrite (0600); raises OSError for the caller to log and retry.

        Not fsync'ed: status.json is advisory and rewritten every cycle. The rename keeps it
        whole while the system runs; after a power cut it may be old or empty, which
        :meth:`read` treats as no status (``status --check`` says unhealthy until the next
        cycle rewrites it, a minute later). Syncing it would cost two flushes per cycle
        on an SD card for nothing a restart needs (SPEC §4.9).
        """
        body = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(cache_dir / STATUS_FILE, body.encode(), durable=False)

    @classmethod
    def read(cls, cache_dir: Path) -> Status | None:
        """The last written status, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads((cache_dir / STATUS_FILE).read_text())
            return cls.from_dict(data)
        except (OSError, ValueError, TypeError, KeyError):
            return None
