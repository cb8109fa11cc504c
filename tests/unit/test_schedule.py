"""The scheduler of the jobs that are not telemetry (SPEC §4.9), on an injected clock."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from octomon.daemon.schedule import (
    JobOutcome,
    Scheduler,
    installation_offset,
    next_half_hour,
    slot,
)
from octomon.errors import OctopusUnavailable
from octomon.octopus.budget import Budget, StopAwareBudget
from tests.unit.test_monitor import Kit, run_loop
from tests.unit.test_monitor import make as make

T0 = datetime(2026, 11, 27, 14, 2, 0, tzinfo=timezone.utc)
H14 = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)


@dataclass
class FakeJob:
    """Makes ``calls`` budget reservations per run; next anchor = the next half-hour."""

    budget: Budget
    name: str = "tariffs"
    max_calls: int = 2
    calls: int = 1
    runs: list[datetime] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    daily: tuple[int, int] | None = None  # next anchor: tomorrow at (hour, minute) UTC

    def run(self, now: datetime) -> datetime:
        self.runs.append(now)
        for _ in range(self.calls):
            self.budget.reserve(now)
        if self.errors:
            raise self.errors.pop(0)
        if self.daily is not None:
            hour, minute = self.daily
            return now.replace(hour=hour, minute=minute, second=0) + timedelta(days=1)
        return next_half_hour(now + timedelta(seconds=1))


def one_job(
    limit: int = 75, offset: int = 7, anchor: datetime | None = H14, **job: object
) -> tuple[Budget, Scheduler, FakeJob]:
    """A budget of ``limit`` calls an hour, a scheduler and one job first anchored at 14:00."""
    budget = Budget(None, limit)
    sched = Scheduler(budget, offset=timedelta(minutes=offset), headroom=5)
    fake = FakeJob(budget, **job)
    sched.add(fake, first_anchor=anchor)
    return budget, sched, fake


def minutes(at: datetime) -> str:
    return at.strftime("%H:%M")


def drive(sched: Scheduler, start: datetime, until: datetime, step: float = 30) -> None:
    now = start
    while now < until:
        sched.run_due(now)
        now += timedelta(seconds=step)


def test_offsets_are_3_to_25_minutes_stable_per_key_and_spread() -> None:
    keys = [f"A-{i:08X}" for i in range(500)]
    offsets = [installation_offset(k) for k in keys]
    assert all(timedelta(minutes=3) <= o <= timedelta(minutes=25) for o in offsets)
    assert [installation_offset(k) for k in keys] == offsets  # stable
    assert installation_offset("A-1234ABCD") == installation_offset("A-1234ABCD")
    assert len({o // timedelta(minutes=1) for o in offsets}) >= 20  # spread over the range


def test_slots_are_anchor_plus_offset_and_never_in_the_minute_hh00_or_hh30() -> None:
    anchor = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
    assert slot(anchor, timedelta(minutes=7)) == anchor + timedelta(minutes=7)
    # 16:05 + 25 min lands on 16:30: nudged to 16:31; 11:50 + 10 min to 12:01.
    assert minutes(slot(anchor.replace(hour=16, minute=5), timedelta(minutes=25))) == "16:31"
    assert minutes(slot(anchor.replace(hour=11, minute=50), timedelta(minutes=10))) == "12:01"
    assert minutes(slot(anchor.replace(minute=29, second=30), timedelta(minutes=3))) == "09:32"
    assert next_half_hour(anchor.replace(minute=12)) == anchor.replace(minute=30)
    assert next_half_hour(anchor) == anchor


def test_a_job_without_a_first_anchor_runs_at_the_next_half_hour_plus_offset() -> None:
    _budget, sched, job = one_job(anchor=None)
    assert sched.next_due() is None  # not resolved before the scheduler has seen a time
    drive(sched, T0, T0 + timedelta(hours=2))
    assert [minutes(r) for r in job.runs] == ["14:37", "15:07", "15:37"]
    assert sched.next_due() == datetime(2026, 11, 27, 16, 7, tzinfo=timezone.utc)


def test_daily_anchors_and_the_nudge_over_many_days() -> None:
    _budget, sched, job = one_job(offset=25, anchor=H14.replace(hour=16, minute=5), daily=(16, 5))
    drive(sched, T0, T0 + timedelta(days=3), step=60)
    assert [r.strftime("%d %H:%M") for r in job.runs] == ["27 16:31", "28 16:31", "29 16:31"]
    assert all(r.minute not in (0, 30) for r in job.runs)


def test_a_tight_budget_defers_the_job_and_telemetry_keeps_its_headroom(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    budget, sched, job = one_job(20, max_calls=3)
    for i in range(13):  # telemetry has used 13 of 20: 7 left < 3 + 5
        budget.reserve(T0 + timedelta(seconds=i))
    reports = sched.run_due(datetime(2026, 11, 27, 14, 7, tzinfo=timezone.utc))
    assert [r.outcome for r in reports] == [JobOutcome.DEFERRED]
    assert job.runs == []
    assert minutes(reports[0].next_at) == "14:37"
    assert sched.run_due(datetime(2026, 11, 27, 14, 20, tzinfo=timezone.utc)) == []
    assert caplog.text.count("deferred") == 1
    # At 15:07 the morning's calls have left the hour: it runs.
    reports = sched.run_due(datetime(2026, 11, 27, 15, 7, tzinfo=timezone.utc))
    assert [r.outcome for r in reports] == [JobOutcome.RAN]
    assert len(job.runs) == 1


def test_a_backoff_defers_the_job() -> None:
    budget, sched, job = one_job(offset=4)
    budget.rate_limited(T0)  # 5 minutes from 14:02
    reports = sched.run_due(datetime(2026, 11, 27, 14, 4, tzinfo=timezone.utc))
    assert [r.outcome for r in reports] == [JobOutcome.DEFERRED]
    assert job.runs == []


def test_an_error_is_logged_once_and_retried_at_later_slots(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    _budget, sched, job = one_job(daily=(14, 0))
    job.errors = [OctopusUnavailable("HTTP 503"), OctopusUnavailable("HTTP 503"), KeyError("x")]
    drive(sched, T0, T0 + timedelta(hours=3))
    assert [minutes(r) for r in job.runs] == ["14:07", "14:37", "15:07", "15:37"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "tariffs failed: HTTP 503" in errors[0].getMessage()
    assert "works again" in caplog.text
    assert sched.next_due() == datetime(2026, 11, 28, 14, 7, tzinfo=timezone.utc)


def test_a_stop_leaves_the_job_due_and_runs_nothing_else() -> None:
    stop = threading.Event()
    budget = StopAwareBudget(None, 75, stop)
    sched = Scheduler(budget, offset=timedelta(minutes=7), headroom=5)
    first, second = FakeJob(budget, name="a"), FakeJob(budget, name="b")
    anchor = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)
    sched.add(first, anchor)
    sched.add(second, anchor)
    stop.set()
    reports = sched.run_due(datetime(2026, 11, 27, 14, 8, tzinfo=timezone.utc))
    assert [r.outcome for r in reports] == [JobOutcome.INTERRUPTED]
    assert len(first.runs) == 1 and second.runs == []
    assert sched.next_due() == datetime(2026, 11, 27, 14, 7, tzinfo=timezone.utc)


def test_the_offset_must_be_in_range() -> None:
    with pytest.raises(ValueError):
        Scheduler(Budget(None, 75), offset=timedelta(minutes=2), headroom=5)


def test_the_loop_runs_due_jobs_between_poll_cycles_without_delaying_them(make) -> None:
    jobs: list[FakeJob] = []

    def setup(kit: Kit) -> None:
        sched = Scheduler(kit.monitor.budget, offset=timedelta(minutes=4), headroom=5)
        for name in ("tariffs", "settled"):
            job = FakeJob(kit.monitor.budget, name=name)
            jobs.append(job)
            sched.add(job)
        kit.monitor.scheduler = sched

    kit, loop, code, _stop = run_loop(make, 50 * 60, setup=setup)
    assert code == 0
    # T0 of test_monitor is 14:00:00: jobs at 14:04 and 14:34 (the loop woke for them).
    for job in jobs:
        assert [minutes(r) for r in job.runs] == ["14:04", "14:34"]
    assert loop.cycles == 50  # every poll cycle on time: t = 0, 60, ...
    windows = [w[1] for w in kit.client.windows]
    assert windows == [windows[0] + timedelta(minutes=i) for i in range(50)]
