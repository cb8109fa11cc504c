"""What a backfill will cost (SPEC §1, §4.3) -- its windows, its API calls and its time, given
the call budget it shares with a running daemon (an estimate, not a promise) -- and what it
reports as it runs and at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octomon.octopus.budget import Budget

WINDOW = timedelta(hours=6)
CALL_SECONDS = 1.5  # a typical telemetry request (6 h at 10 s), for the estimate
OVERHEAD_CALLS = 2  # a token, and device discovery unless the device is known
TOKEN_RENEWAL = 55 * 60  # seconds: tokens live 60 min and are renewed 5 min early

Span = tuple[datetime, datetime]


@dataclass
class BackfillPlan:
    windows: list[Span]
    calls: int  # expected API calls: one per window, plus the token (and discovery)
    eta_seconds: float  # expected duration, budget waits included

    @property
    def since(self) -> datetime:
        return self.windows[0][0]

    @property
    def until(self) -> datetime:
        return self.windows[-1][1]


def windows(since: datetime, until: datetime, size: timedelta = WINDOW) -> list[Span]:
    """``[since, until)`` cut into consecutive windows of at most ``size``, oldest first."""
    out: list[Span] = []
    lo = since
    while lo < until:
        hi = min(lo + size, until)
        out.append((lo, hi))
        lo = hi
    return out


def plan(
    since: datetime,
    until: datetime,
    budget: Budget,
    now: datetime,
    *,
    overhead_calls: int = OVERHEAD_CALLS,
    others_per_hour: float = 0.0,
) -> BackfillPlan:
    """What fetching ``[since, until)`` costs, in calls and in time, given the budget now.

    The calls that fit in the budget's free slots go at once; the rest at the rate the
    budget leaves per hour once ``others_per_hour`` (a running daemon's polling) is taken
    out of it. A running rate-limit backoff is waited out first. An estimate, not a promise.
    """
    if until <= since:
        raise ValueError("until must be after since")
    spans = windows(since, until)
    calls = len(spans) + overhead_calls
    free = max(0, budget.max_per_hour - budget.calls_last_hour(now))
    eta = budget.backoff_remaining(now) + calls * CALL_SECONDS
    if calls > free:
        rate = max(1.0, budget.max_per_hour - others_per_hour)
        eta += (calls - free) / rate * 3600
        renewals = int(eta // TOKEN_RENEWAL)  # a run over an hour renews its token
        calls += renewals
        eta += renewals / rate * 3600
    return BackfillPlan(spans, calls, eta)


@dataclass(frozen=True)
class BackfillProgress:
    """One event of a run, for the progress display.

    ``kind``: ``"window"`` (a window was fetched and stored), ``"waiting"`` (for the budget,
    a rate-limit backoff, or a retry), ``"missing"`` (the API no longer serves a span),
    ``"cache"`` (from here on readings go to the cache; ``message`` says why).
    """

    kind: str
    windows_done: int
    windows_total: int
    stored: int
    window: Span | None = None
    wait_seconds: float = 0.0
    message: str = ""


@dataclass
class BackfillResult:
    stored: int = 0  # readings stored (InfluxDB or cache)
    windows_done: int = 0
    missing: list[Span] = field(default_factory=list)  # spans the API no longer serves
    cached: int = 0  # of ``stored``, readings that went to the cache
    error: str | None = None  # why the run stopped early (None: it ran to the end)
    not_done: list[Span] = field(default_factory=list)  # not fetched: error or interrupted
    cache_reason: str | None = None  # why readings went to the cache
    interrupted: bool = False
    rejected: int = 0  # refused by InfluxDB (400/413/422), set aside under rejected/
    rejected_message: str | None = None  # the first refusal's status and server message
    evicted: int = 0  # cached readings dropped because the cache went over CACHE_MAX_MB

    @property
    def complete(self) -> bool:
        """Exit 0: everything asked for was fetched and stored."""
        return not (self.error or self.missing or self.not_done or self.rejected or self.evicted)
