"""What a poll cycle came to (``Monitor.cycle``): an outcome and a result, with the one log
line per cycle shown off a terminal (SPEC §4.8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from octomon.durations import words
from octomon.errors import OctomonError
from octomon.readings import format_time


class Outcome(enum.Enum):
    """What a poll cycle came to (``CycleResult.outcome``)."""

    OK = "ok"  # fetched, and stored (or nothing new)
    FAILED = "failed"  # the fetch failed (counts towards "3 failed cycles in a row")
    STORE_FAILED = "store-failed"  # fetched, but the readings could not be stored anywhere
    RATE_LIMITED = "rate-limited"  # the API said too many requests, or a backoff runs
    BUDGET = "budget"  # the hourly call budget is used up: wait for a free slot
    AUTH = "auth"  # the API key was refused: fatal (exit 2)
    STOPPED = "stopped"  # a stop was requested before the cycle's first request
    CACHE_BUSY = "cache-busy"  # another process held the cache lock: fetched again next cycle
    DISK_FULL = "disk-full"  # the readings could not be cached: the disk is full
    CLOCK_BEHIND = "clock-behind"  # now is before the cursor: nothing to fetch yet


OK = Outcome.OK
FAILED = Outcome.FAILED
STORE_FAILED = Outcome.STORE_FAILED
RATE_LIMITED = Outcome.RATE_LIMITED
BUDGET = Outcome.BUDGET
AUTH = Outcome.AUTH
STOPPED = Outcome.STOPPED
CACHE_BUSY = Outcome.CACHE_BUSY
DISK_FULL = Outcome.DISK_FULL
CLOCK_BEHIND = Outcome.CLOCK_BEHIND


@dataclass(frozen=True)
class CycleResult:
    """What one poll cycle did. ``outcome`` is one of the module's outcome constants."""

    at: datetime
    outcome: Outcome
    mode: str
    window: tuple[datetime, datetime] | None = None
    fetched: int = 0  # readings the API returned in the window
    stored: int = 0  # newly stored (InfluxDB, cache, or set aside as refused)
    skipped: int = 0  # already stored earlier in this run (the overlap)
    rejected: int = 0  # refused by InfluxDB and set aside under rejected/
    cursor: datetime | None = None
    caught_up: bool = True  # the window reached ``now`` (False while filling a gap)
    renewed: bool = False  # this cycle renewed the token instead of polling
    retry_in: float | None = None  # rate limit / budget: seconds until a call may be made
    error: OctomonError | None = None
    backlog: int = 0
    calls_last_hour: int = 0
    call_budget: int = 0
    newest_at: datetime | None = None  # the newest reading known (of this run)
    newest_kw: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def summary(self) -> str:
        """The one log line per cycle shown off a terminal (SPEC §4.8)."""
        head = {
            OK: "renewed the Kraken token (the window waits for the next poll)"
            if self.renewed
            else f"stored {self.stored} readings",
            FAILED: "fetch failed",
            STORE_FAILED: "could not store the readings (the next cycle fetches them again)",
            CACHE_BUSY: "the cache is busy (another octomon process holds its lock): the "
            "next cycle fetches the readings again",
            DISK_FULL: "disk full: the readings could not be cached (the next cycle fetches "
            "them again)",
            CLOCK_BEHIND: "the system clock is behind the cursor: nothing to fetch until it "
            "catches up",
            RATE_LIMITED: "rate limited",
            BUDGET: "API budget used up",
            AUTH: "API key refused",
            STOPPED: "stopped",
        }[self.outcome]
        parts = [head]
        if self.newest_at is not None:
            kw = f" {self.newest_kw:.3f} kW" if self.newest_kw is not None else ""
            parts.append(f"newest reading {format_time(self.newest_at)}{kw}")
        if self.window is not None:
            parts.append(f"window {format_time(self.window[0])}..{format_time(self.window[1])}")
        parts += [
            f"mode {self.mode}",
            # local mode keeps every reading by design: not a backlog waiting for anything
            f"kept locally {self.backlog}" if self.mode == "local" else f"backlog {self.backlog}",
            f"API calls {self.calls_last_hour}/{self.call_budget} in the last hour",
        ]
        if self.retry_in:
            parts.append(f"next try in {words(self.retry_in)}")
        if self.error is not None and self.outcome != OK:
            parts.append(f"error: {self.error.message}")
        return "; ".join(parts)
