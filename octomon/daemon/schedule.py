"""The jobs that are not telemetry: gas, tariffs, settled data (SPEC §4.9).

Telemetry is the only job that runs every minute (the poll cycle). Every other job runs at
``anchor + offset``, where the anchor is what the job asked for ("09:00 UK", "16:05 UK",
"the next half-hour") and the offset is fixed per installation (3..25 minutes, a hash of
the account number), so that installations spread out instead of piling onto hh:00 and
hh:30 -- a slot that still lands in the minute hh:00 or hh:30 moves one minute on.

The scheduler never reads a clock: :meth:`Scheduler.run_due` takes ``now``, and the loop
calls it between poll cycles. It keeps telemetry first: a job runs only while the hourly
call ledger leaves room for the job's ``max_calls`` plus ``headroom`` calls kept free for
telemetry (and never during a rate-limit backoff); otherwise it is deferred to the next
retry slot (the next half-hour + offset). An :class:`~octomon.errors.OctomonError` raised
by a job is logged once per state change and the job is retried at the next retry slot; so
is any other exception (with its traceback at DEBUG): a bug in a side job must not stop
telemetry. A stop request (the job's API calls go through the shared, stop-aware budget)
leaves the job due, to run after the next start.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from octomon.errors import OctomonError
from octomon.latch import Latch
from octomon.octopus.budget import Budget, Interrupted

log = logging.getLogger(__name__)

OFFSET_MIN = timedelta(minutes=3)
OFFSET_MAX = timedelta(minutes=25)
HALF_HOUR = timedelta(minutes=30)
CROWDED_MINUTES = (0, 30)  # Octopus asked integrations to keep off these minutes


def installation_offset(key: str) -> timedelta:
    """A stable offset of 3..25 minutes (whole seconds) for this installation.

    ``key`` is the account number: the same account always gets the same offset, on any
    machine and in any Python (sha256, not ``hash()``, which is salted per process).
    """
    span = int((OFFSET_MAX - OFFSET_MIN).total_seconds())
    digest = hashlib.sha256(key.encode()).digest()
    return OFFSET_MIN + timedelta(seconds=int.from_bytes(digest[:8], "big") % (span + 1))


def next_half_hour(now: datetime) -> datetime:
    """The first hh:00 or hh:30 at or after ``now`` (UTC)."""
    now = now.astimezone(timezone.utc)
    floor = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    return floor if floor == now else floor + HALF_HOUR


def slot(anchor: datetime, offset: timedelta) -> datetime:
    """``anchor + offset``, moved one minute on if it lands in the minute hh:00 or hh:30."""
    at = (anchor + offset).astimezone(timezone.utc)
    if at.minute in CROWDED_MINUTES:
        at += timedelta(minutes=1)
    return at


class Job(Protocol):
    """A scheduled job; ``run`` does the work and returns the anchor of its next run."""

    name: str
    max_calls: int  # upper bound of the Octopus API calls one run makes

    def run(self, now: datetime) -> datetime: ...


class JobOutcome(enum.Enum):
    RAN = "ran"  # the job ran; next_at is its own next slot
    DEFERRED = "deferred"  # the budget was tight (telemetry first): retried later
    FAILED = "failed"  # the job raised: retried at the next retry slot
    INTERRUPTED = "interrupted"  # a stop was requested: still due


@dataclass(frozen=True)
class JobReport:
    name: str
    outcome: JobOutcome
    at: datetime
    next_at: datetime
    error: OctomonError | None = None


@dataclass
class _Entry:
    job: Job
    anchor: datetime | None  # None: resolved to the next half-hour at the first run_due
    due: datetime | None = None
    failing: Latch = field(default_factory=lambda: Latch(log))  # the last run raised
    deferred: bool = False


class Scheduler:
    """Runs the registered jobs at their slots, telemetry first; see the module docstring."""

    def __init__(self, budget: Budget, *, offset: timedelta, headroom: int) -> None:
        if not OFFSET_MIN <= offset <= OFFSET_MAX:
            raise ValueError("offset must be 3..25 minutes")
        self.budget = budget
        self.offset = offset
        self.headroom = max(0, headroom)
        self._entries: list[_Entry] = []

    @property
    def jobs(self) -> list[str]:
        return [e.job.name for e in self._entries]

    def add(self, job: Job, first_anchor: datetime | None = None) -> None:
        """Register ``job``; it first runs at ``first_anchor + offset`` (None: next half-hour)."""
        entry = _Entry(job, first_anchor)
        if first_anchor is not None:
            entry.due = slot(first_anchor, self.offset)
        self._entries.append(entry)

    def next_due(self) -> datetime | None:
        """The earliest slot of any job (None before the first :meth:`run_due` resolves one)."""
        dues = [e.due for e in self._entries if e.due is not None]
        return min(dues) if dues else None

    def due(self, now: datetime) -> bool:
        """Whether some job's slot has come (cheap: the loop asks between poll cycles)."""
        self._resolve(now)
        at = self.next_due()
        return at is not None and at <= now

    def _resolve(self, now: datetime) -> None:
        for entry in self._entries:
            if entry.due is None:
                entry.due = slot(entry.anchor or next_half_hour(now), self.offset)

    def run_due(self, now: datetime, *, max_jobs: int | None = None) -> list[JobReport]:
        """Run every job whose slot has come (oldest slot first); at most ``max_jobs``.

        The loop passes ``max_jobs=1`` and checks whether a poll cycle is due in between, so
        a job never delays telemetry by more than its own requests.
        """
        self._resolve(now)
        due = sorted((e for e in self._entries if e.due is not None and e.due <= now), key=_key)
        reports: list[JobReport] = []
        for entry in due:
            if max_jobs is not None and len(reports) >= max_jobs:
                break
            report = self._run(entry, now)
            reports.append(report)
            if report.outcome is JobOutcome.INTERRUPTED:
                break
        return reports

    # --- one job -------------------------------------------------------------------------

    def _retry_slot(self, now: datetime) -> datetime:
        """The next half-hour slot strictly after ``now``."""
        at = slot(next_half_hour(now), self.offset)
        return at if at > now else slot(next_half_hour(now) + HALF_HOUR, self.offset)

    def _run(self, entry: _Entry, now: datetime) -> JobReport:
        job = entry.job
        left = self.budget.max_per_hour - self.budget.calls_last_hour(now)
        tight = left < job.max_calls + self.headroom or self.budget.backoff_remaining(now) > 0
        if tight:
            entry.due = self._retry_slot(now)
            if not entry.deferred:
                log.info(
                    "%s: deferred to %s (the API budget is kept for telemetry)",
                    job.name,
                    _hm(entry.due),
                )
            entry.deferred = True
            return JobReport(job.name, JobOutcome.DEFERRED, now, entry.due)
        entry.deferred = False
        try:
            anchor = job.run(now)
        except OctomonError as exc:
            if isinstance(exc, Interrupted):
                return JobReport(job.name, JobOutcome.INTERRUPTED, now, now, exc)
            return self._failed(entry, now, exc, exc.message)
        except Exception as exc:  # a bug in a side job must not stop telemetry
            log.debug("%s: unexpected error", job.name, exc_info=True)
            return self._failed(entry, now, None, f"unexpected error: {type(exc).__name__}")
        entry.failing.ok("%s: works again", job.name)
        due = slot(anchor, self.offset)
        entry.due = due if due > now else self._retry_slot(now)
        return JobReport(job.name, JobOutcome.RAN, now, entry.due)

    def _failed(
        self, entry: _Entry, now: datetime, exc: OctomonError | None, message: str
    ) -> JobReport:
        entry.due = self._retry_slot(now)
        entry.failing.fail(
            "%s failed: %s; retrying at %s",
            entry.job.name,
            message,
            _hm(entry.due),
            level=logging.ERROR,
        )
        return JobReport(entry.job.name, JobOutcome.FAILED, now, entry.due, exc)


def _key(entry: _Entry) -> datetime:
    assert entry.due is not None
    return entry.due


def _hm(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%H:%M UTC")


RENEWAL_TURN_BELOW = 300  # seconds between polls: below, a token renewal takes a poll's turn


def renewal_turn(
    client: object, poll_interval: int, device_known: bool
) -> Callable[[], object] | None:
    """Does this poll cycle renew the token instead of polling? The renewal to make, or None.

    Tokens live 60 minutes and are renewed 5 minutes early (SPEC §4.2): every 55 minutes,
    so some rolling hours would hold two renewals besides 60 polls. A renewal takes its
    cycle's turn instead (the window waits one interval; each poll fetches the whole window
    from the cursor, so nothing is lost): a cycle makes one request, and the daemon's steady
    state stays at 3600 / POLL_INTERVAL_SECONDS requests an hour, plus gas. It renews a poll
    interval ahead, so that a gas or REST job between two cycles never has to renew. Only
    for polls less than 5 minutes apart (the budget is tight there, and one poll waiting is
    a short delay; with polls further apart a renewal turn could come round again before the
    next poll), not before the device is known (the first cycle), nor once the token has
    expired (cycles far apart: the poll renews it first), nor for a client without early
    renewal (a fake).
    """
    due = getattr(client, "renewal_due", None)
    renew: Callable[[], object] | None = getattr(client, "renew", None)
    if due is None or renew is None or not device_known or poll_interval >= RENEWAL_TURN_BELOW:
        return None
    return renew if due(timedelta(seconds=poll_interval)) else None
