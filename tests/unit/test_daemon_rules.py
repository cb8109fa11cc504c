"""The monitor's rules for clocks, drains that raise, a busy or full cache, the log line,
and the call ledger kept in memory between state writes (SPEC §4.1, §4.5, §4.8, §4.9)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from octomon.daemon.outcome import CACHE_BUSY, CLOCK_BEHIND, DISK_FULL, OK
from octomon.errors import BudgetExhausted, CacheBusy, CacheFull, RateLimited
from octomon.octopus.budget import HOLD, Budget, drop_future
from octomon.readings import format_time
from octomon.state import State, StateStore
from tests.unit.test_monitor import T0, FakeCache, Kit, fake_sync, reading, run_loop
from tests.unit.test_monitor import make as make

# --- a drain step that raises -------------------------------------------------------------


def test_a_drain_step_raising_oserror_backs_off_and_ends_the_run_after_10(make) -> None:  # type: ignore[no-untyped-def]
    attempts: list[float] = []
    times: list[Any] = []

    def sync(*args: Any, **kwargs: Any) -> Any:
        attempts.append(times[0].t)
        if len(attempts) == 1:  # the health check takes a first batch: draining starts
            return fake_sync(*args, **kwargs)
        raise OSError(5, "Input/output error")

    backlog = [reading(T0 - timedelta(hours=2, seconds=10 * i)) for i in range(12_000)]
    original = make

    def factory(**kw: Any) -> Kit:
        kit = original(
            cache=FakeCache(lines=sorted(backlog, key=lambda r: r.read_at)), sync=sync, **kw
        )
        times.append(kw["clock"])
        return kit

    kit, loop, code, _stop = run_loop(factory, 3600)
    assert code == 1  # 10 in a row, as cycles do
    failures = attempts[1:]
    assert len(failures) == 10
    for a, b in itertools.pairwise(failures):
        assert b - a >= 1.0  # backed off: never a spin
    per_second = max(sum(1 for t in failures if s <= t < s + 1) for s in failures)
    assert per_second < 5
    assert loop.cycles >= 2  # polling went on meanwhile
    assert kit.sink is not None and kit.sink.points  # and the cycles' readings were stored


# --- a busy cache and a full disk ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome", "alerts", "says"),
    [
        (
            CacheBusy("the cache is busy: another process held its lock"),
            CACHE_BUSY,
            [],
            "the cache is busy",
        ),
        (
            CacheFull("no space left on device"),
            DISK_FULL,
            ["Caching failed: disk full"],
            "disk full",
        ),
    ],
)
def test_a_busy_cache_and_a_full_disk_are_told_apart(
    make,  # type: ignore[no-untyped-def]
    error: Exception,
    outcome: Any,
    alerts: list[str],
    says: str,
) -> None:
    kit = make(local=True)
    kit.cache.fail = error
    results = [kit.cycle(60) for _ in range(3)]
    assert [r.outcome for r in results] == [outcome] * 3
    assert results[0].summary().startswith(says)
    assert "fetches the readings again" in results[0].summary() or "fetches them again" in (
        results[0].summary()
    )
    titles = [a.title for a in kit.alerts.sent if a.level.value != "info"]
    assert titles == alerts
    if alerts:
        assert "is the disk full?" not in kit.alerts.sent[-1].text
        assert "The disk holding CACHE_DIR is full." in kit.alerts.sent[-1].text
    kit.cache.fail = None
    assert kit.cycle(60).outcome == OK
    assert kit.cycle(60).stored > 0


def test_a_plain_cache_error_is_neither_busy_nor_full(make) -> None:  # type: ignore[no-untyped-def]
    from octomon.daemon.outcome import STORE_FAILED
    from octomon.errors import CacheError

    kit = make(local=True)
    kit.cache.fail = CacheError("could not cache: Permission denied")
    assert kit.cycle(60).outcome == STORE_FAILED
    alert = next(a for a in kit.alerts.sent if a.key == "cache_write")
    assert alert.title == "Caching failed" and "full" not in alert.text


# --- clocks ---------------------------------------------------------------------------------


def test_a_clock_that_moved_back_returns_the_cursor_and_drops_the_future(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    for _ in range(3):
        kit.cycle(60)
    newest = kit.monitor.stream.cursor.newest
    assert newest is not None
    kit.client.frozen_at = kit.clock()  # (real time: nothing newer exists yet)
    kit.clock.advance(days=2)  # ran fast ...
    for _ in range(6):
        kit.cycle(60)
    kit.monitor.budget.rate_limited(kit.clock())  # ... long enough to be rate limited
    ahead = kit.monitor.cursor
    newest = kit.monitor.stream.cursor.newest
    assert newest is not None and newest < kit.client.frozen_at
    assert ahead is not None and ahead > newest + timedelta(days=1)
    kit.clock.advance(days=-2)  # ... and corrected
    kit.client.frozen_at = None
    result = kit.cycle(60)
    assert result.outcome == OK and result.window is not None
    assert result.window[0] == newest - timedelta(minutes=5)
    [alert] = [a for a in kit.alerts.sent if a.key == "clock"]
    assert alert.text == (
        f"the system clock moved back by 2 days; fetching again from {newest:%H:%M} UTC"
    )
    state = kit.store.load()
    assert max(state.calls) <= kit.clock()  # the fast days' calls are gone
    assert state.backoff_until is None
    assert kit.cycle(60).outcome == OK
    assert [a.key for a in kit.alerts.sent].count("clock") == 1


def test_a_clock_behind_the_cursor_fetches_nothing_and_is_not_a_good_cycle(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    kit.cycle(60)
    good = kit.monitor.status.last_good_cycle_at
    windows = len(kit.client.windows)
    kit.clock.advance(days=-365)
    results = [kit.cycle(60) for _ in range(3)]
    assert [r.outcome for r in results] == [CLOCK_BEHIND] * 3
    assert len(kit.client.windows) == windows  # not one request
    assert kit.monitor.status.last_good_cycle_at == good  # `status --check` turns red
    assert not kit.monitor.status.healthy(kit.clock() + timedelta(days=365, minutes=10))
    assert [a.key for a in kit.alerts.sent].count("clock") == 1
    assert "fetching again" not in next(a for a in kit.alerts.sent if a.key == "clock").text


# --- the log line ---------------------------------------------------------------------------


def test_the_log_line_names_the_newest_reading_and_its_demand(make) -> None:  # type: ignore[no-untyped-def]
    kit = make()
    result = kit.cycle(60)
    newest = kit.monitor.status.last_reading_at
    line = result.summary()
    assert line.startswith(f"stored {result.stored} readings; newest reading {format_time(newest)}")
    assert "0.500 kW" in line
    kit.client.frozen_at = newest + timedelta(seconds=1)
    quiet = kit.cycle(60)  # nothing new: the newest known reading is still named
    assert quiet.stored == 0
    assert quiet.summary().startswith(f"stored 0 readings; newest reading {format_time(newest)}")


# --- the ledger between state writes --------------------------------------------------------


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_the_deferred_ledger_writes_once_per_save_and_merges_another_process(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path)
    budget = 3 * HOLD + 1  # (10 with a hold of 3)
    run = Budget(store, budget, deferred=True)
    run.save(at(0))  # start-up: the hold goes on disk ahead of the first request
    for i in range(HOLD):
        run.reserve(at(0.1 * i))
    assert len(store.load().calls) == 0  # in memory until the save
    run.save(at(1))
    assert len(store.load().calls) == HOLD
    # `backfill` (write-through) sees run's calls and its hold: HOLD + 1 free.
    other = Budget(store, budget)
    assert other.calls_last_hour(at(2)) == 2 * HOLD
    for i in range(HOLD + 1):
        other.reserve(at(2 + i * 0.1))
    with pytest.raises(BudgetExhausted):
        other.reserve(at(3))
    # `run` notices the foreign write (a stat) and counts backfill's calls too.
    assert run.calls_last_hour(at(3)) == 2 * HOLD + 1
    for i in range(HOLD):
        run.reserve(at(3 + i * 0.1))
    with pytest.raises(BudgetExhausted):
        run.reserve(at(4))
    run.save(at(4), release=True)
    state = store.load()
    assert len(state.calls) == budget and state.hold_calls == 0  # nothing lost, nor doubled


def test_a_killed_runs_hold_becomes_ledger_entries_for_the_next(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    dead = Budget(store, 10, deferred=True)
    dead.save(at(0))
    dead.reserve(at(0.5))  # sent, never saved: killed
    heir = Budget(store, 10, deferred=True)
    assert heir.calls_last_hour(at(1)) == HOLD  # the dead one's hold counts
    heir.save(at(1))
    state = store.load()
    assert len(state.calls) == HOLD and state.hold_owner == heir.owner


def test_a_full_disk_keeps_the_ledger_in_memory_and_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    run = Budget(store, 5, deferred=True)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "update", full)
    for i in range(5):
        run.reserve(at(i))
    with pytest.raises(BudgetExhausted):
        run.reserve(at(6))
    with pytest.raises(OSError):
        run.save(at(6))
    monkeypatch.undo()
    run.save(at(7))
    assert len(store.load().calls) == 5


def test_entries_dated_in_the_future_are_dropped() -> None:
    state = State(
        calls=[at(0), at(1), at(3000)],
        backoff_until=at(3000),
        backoff_seconds=300,
        rate_limited_since=at(2990),
    )
    assert drop_future(state, at(2))
    assert state.calls == [at(0), at(1)]
    assert state.backoff_until is None and state.rate_limited_since is None
    ok = State(calls=[at(0)], backoff_until=at(4), backoff_seconds=300)
    assert not drop_future(ok, at(1))  # a backoff 3 minutes long from now is plausible
    budget = Budget(None, 3)
    for _ in range(3):
        budget.reserve(at(3000))  # a clock 2 days fast
    budget.rate_limited(at(3000))
    with pytest.raises(RateLimited):
        budget.reserve(at(3001))
    budget.reserve(at(5))  # corrected: the future is dropped, the budget is free again
    assert budget.calls_last_hour(at(5)) == 1
