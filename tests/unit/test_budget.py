"""The API call ledger: the hourly budget and the rate-limit backoff (SPEC §4.3)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.errors import BudgetExhausted, RateLimited
from octomon.octopus.budget import Budget
from octomon.state import StateStore

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["disk", "memory"])
def make(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    def factory(limit: int) -> Budget:
        store = StateStore(tmp_path / "cache") if request.param == "disk" else None
        return Budget(store, limit)

    return factory


def test_exactly_n_calls_in_an_hour_then_refused(make) -> None:  # type: ignore[no-untyped-def]
    budget = make(5)
    for i in range(5):
        budget.reserve(s(i * 60))  # 0, 60, ..., 240 s
    assert budget.calls_last_hour(s(240)) == 5
    with pytest.raises(BudgetExhausted) as info:
        budget.reserve(s(300))
    # The oldest call (t=0) leaves the hour at t=3600.
    assert info.value.retry_in == pytest.approx(3300)
    assert budget.calls_last_hour(s(300)) == 5  # the refused call was not recorded
    assert budget.wait_time(s(300)) == pytest.approx(3300)
    # One second before the oldest call leaves: still refused.
    with pytest.raises(BudgetExhausted) as info:
        budget.reserve(s(3599))
    assert info.value.retry_in == pytest.approx(1)
    # Exactly an hour after the oldest call, it has left the window.
    budget.reserve(s(3600))
    assert budget.calls_last_hour(s(3600)) == 5
    with pytest.raises(BudgetExhausted) as info:
        budget.reserve(s(3601))
    assert info.value.retry_in == pytest.approx(59)  # the t=60 call leaves at 3660


def test_budget_is_shared_by_two_instances_on_one_dir(tmp_path: Path) -> None:
    """Like `run` and `backfill` at once: together they never exceed the budget."""
    a = Budget(StateStore(tmp_path), 4)
    b = Budget(StateStore(tmp_path), 4)
    a.reserve(s(0))
    b.reserve(s(1))
    a.reserve(s(2))
    b.reserve(s(3))
    with pytest.raises(BudgetExhausted):
        a.reserve(s(4))
    with pytest.raises(BudgetExhausted):
        b.reserve(s(4))
    assert a.calls_last_hour(s(4)) == b.calls_last_hour(s(4)) == 4


def test_budget_survives_a_restart(tmp_path: Path) -> None:
    first = Budget(StateStore(tmp_path), 3)
    for i in range(3):
        first.reserve(s(i))
    restarted = Budget(StateStore(tmp_path), 3)  # a new process after a crash
    with pytest.raises(BudgetExhausted):
        restarted.reserve(s(10))
    restarted.reserve(s(3600))


def test_backoff_doubles_to_thirty_minutes(make) -> None:  # type: ignore[no-untyped-def]
    budget = make(75)
    now = T0
    steps = []
    for _ in range(5):
        steps.append(budget.rate_limited(now))
        now += timedelta(seconds=steps[-1])
    assert steps == [300, 600, 1200, 1800, 1800]
    assert budget.rate_limited_since() == T0


def test_reserve_refuses_during_backoff_without_recording(make) -> None:  # type: ignore[no-untyped-def]
    budget = make(75)
    assert budget.rate_limited(T0) == 300
    assert budget.backoff_remaining(s(100)) == pytest.approx(200)
    with pytest.raises(RateLimited) as info:
        budget.reserve(s(100))
    assert info.value.retry_in == pytest.approx(200)
    assert budget.calls_last_hour(s(100)) == 0
    assert budget.wait_time(s(100)) == pytest.approx(200)
    budget.reserve(s(300))  # the backoff is over
    assert budget.backoff_remaining(s(300)) == 0
    # Success clears the episode; the next rate limit starts again at 5 minutes.
    budget.clear_backoff()
    assert budget.rate_limited_since() is None
    assert budget.rate_limited(s(400)) == 300
    assert budget.rate_limited_since() == s(400)


def test_persisted_backoff_is_inherited_by_a_new_instance(tmp_path: Path) -> None:
    Budget(StateStore(tmp_path), 75).rate_limited(T0)
    Budget(StateStore(tmp_path), 75).rate_limited(s(300))  # second answer: 600 s
    heir = Budget(StateStore(tmp_path), 75)
    assert heir.backoff_remaining(s(300)) == pytest.approx(600)
    assert heir.rate_limited_since() == T0
    with pytest.raises(RateLimited):
        heir.reserve(s(400))
    assert heir.rate_limited(s(900)) == 1200


def test_clear_backoff_without_a_backoff_does_not_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "cache")
    Budget(store, 75).clear_backoff()
    assert not store.path.exists()


def test_invalid_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        Budget(None, 0)
