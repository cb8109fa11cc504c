"""The API call ledger (SPEC §4.3, §4.9): every request to the Octopus API is recorded with
its time before it is sent, and none is sent while the last 60 minutes already hold
``OCTOPUS_MAX_CALLS_PER_HOUR`` of them, or while a rate-limit backoff runs.

The ledger lives in ``state.json`` so that it holds across restarts (a crash loop cannot
burn the account's shared quota) and across processes (``run`` and ``backfill`` together
never exceed it). Without a usable CACHE_DIR it is kept in memory. The clock is always
passed in.

Two ways to keep it on disk:

* **Write-through** (``backfill``, ``test-octopus``: short-lived): every reservation is a
  read-modify-write of ``state.json`` under its lock.
* **Deferred** (``run``): the ledger is kept in memory and written with the monitor's state
  (:meth:`Budget.save`) when the hold below is spent — every ``HOLD`` calls, a few poll
  cycles — or something else in the state changed, so an SD card is not worn out by
  bookkeeping. It stays safe across processes and crashes because:

  1. before each reservation the budget looks at the state's identity (a ``stat`` of
     ``state.json`` and its journal, no read) and re-reads and merges it when another
     process wrote it;
  2. each save merges this process's unsaved calls into what is on disk (under the lock),
     never overwriting a stale copy;
  3. each save also writes a *hold*: up to ``HOLD`` calls this process may make before its
     next save. Nothing is sent beyond the hold on disk: the first request of a process,
     and one that would go beyond the hold, save first (write-ahead). Other processes count
     a hold as ``HOLD`` calls made at its time, so ``backfill`` never spends what ``run``
     is about to use, and a process that takes over from a killed one turns the dead
     one's hold into ledger entries (dated when it takes over, never earlier than the
     calls were made): a crash loop cannot spend more than the budget. The
     price: ``backfill`` sees ``HOLD`` fewer free calls while ``run`` is up, and a kill
     can over-count by up to ``HOLD`` calls for an hour (never under-count). A clean stop
     releases the hold.

  A failed save (disk full) keeps the ledger in memory, still enforced, and is retried.

Clocks (SPEC §4.1): a call dated in the future, a backoff that would end later than its own
length from now, or a hold from the future cannot be right after the clock moved back:
they are dropped whenever they are seen, so a clock that ran fast cannot block the budget.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from octomon.backoff import next_delay
from octomon.errors import BudgetExhausted, OctopusError, RateLimited
from octomon.state import LEDGER_SPAN, State, StateStore

BACKOFF_FIRST = 300.0  # 5 minutes
BACKOFF_MAX = 1800.0  # 30 minutes
HOLD = 6  # calls `run` may make between two saves (a normal cycle makes 1)
CLOCK_SLACK = timedelta(minutes=1)  # later than now + this: dated in the future

Identity = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


def _recent(state: State, now: datetime, owner: str | None = None) -> list[datetime]:
    """Calls inside the last hour (a call exactly an hour old has left it), plus another
    process's hold counted as calls made at its time."""
    horizon = now - LEDGER_SPAN
    calls = [c for c in state.calls if c > horizon]
    since = state.hold_since
    if state.hold_calls and since is not None and state.hold_owner != owner and since > horizon:
        calls += [since] * state.hold_calls
    return sorted(calls)


def _backoff_left(state: State, now: datetime) -> float:
    if state.backoff_until is None:
        return 0.0
    return max(0.0, (state.backoff_until - now).total_seconds())


def drop_future(state: State, now: datetime) -> bool:
    """Drop what the clock cannot have written yet (see the module docstring); changed?"""
    limit = now + CLOCK_SLACK
    changed = False
    if state.calls and state.calls[-1] > limit:
        state.calls = [c for c in state.calls if c <= limit]
        changed = True
    if state.backoff_until is not None:
        longest = timedelta(seconds=max(state.backoff_seconds, BACKOFF_FIRST)) + CLOCK_SLACK
        if state.backoff_until > now + longest or (
            state.rate_limited_since is not None and state.rate_limited_since > limit
        ):
            state.backoff_until, state.backoff_seconds, state.rate_limited_since = None, 0, None
            changed = True
    if state.hold_since is not None and state.hold_since > limit:
        state.hold_since, state.hold_calls, state.hold_owner = None, 0, None
        changed = True
    return changed


def _identity(store: StateStore) -> Identity:
    return store.identity()


class Budget:
    """The shared hourly call budget; ``store=None`` keeps the ledger in memory.

    ``deferred`` (the daemon): the ledger is written by :meth:`save`, once per cycle.
    """

    def __init__(
        self, store: StateStore | None, max_per_hour: int, *, deferred: bool = False
    ) -> None:
        if max_per_hour < 1:
            raise ValueError("max_per_hour must be at least 1")
        self.store = store
        self.max_per_hour = max_per_hour
        self.deferred = deferred and store is not None
        self.owner = uuid.uuid4().hex[:12]  # names this process's hold
        self._memory = State()
        self._pending: list[datetime] = []  # calls not yet in state.json (deferred)
        self._backoff_dirty = False  # the backoff changed here since the last save
        self._seen: Identity | None = None  # state.json as last read or written here
        self._hold_left = 0  # calls the hold on disk still covers (deferred)
        self._loaded = False
        self._lock = threading.RLock()

    # --- plumbing: one atomic read-modify-write, on disk or in memory -------------------

    def _update(self, mutate: Callable[[State], None], now: datetime | None = None) -> State:
        if self.store is not None and not self.deferred:

            def apply(state: State) -> None:
                if now is not None:
                    drop_future(state, now)
                mutate(state)

            return self.store.update(apply)
        with self._lock:
            self._refresh()
            if now is not None:
                drop_future(self._memory, now)
            mutate(self._memory)
            self._memory.prune()
            return self._memory

    def _read(self) -> State:
        if self.store is not None and not self.deferred:
            return self.store.load()
        with self._lock:
            self._refresh()
            return replace(self._memory, calls=list(self._memory.calls))

    def _refresh(self) -> None:
        """Deferred: re-read ``state.json`` if another process wrote it (one stat)."""
        if not self.deferred or self.store is None:
            return
        seen = _identity(self.store)
        if self._loaded and seen == self._seen:
            return
        disk = self.store.load()
        self._merge(disk)
        self._seen, self._loaded = seen, True

    def _merge(self, disk: State) -> None:
        """What is on disk plus this process's unsaved calls and backoff."""
        mine = self._memory
        mine.calls = sorted(disk.calls + self._pending)
        mine.hold_owner, mine.hold_calls, mine.hold_since = (
            disk.hold_owner,
            disk.hold_calls,
            disk.hold_since,
        )
        if not self._backoff_dirty:
            mine.backoff_until = disk.backoff_until
            mine.backoff_seconds = disk.backoff_seconds
            mine.rate_limited_since = disk.rate_limited_since

    # --- saving (deferred) ----------------------------------------------------------------

    @property
    def unsaved(self) -> bool:
        return bool(self._pending) or self._backoff_dirty

    @property
    def backoff_unsaved(self) -> bool:
        """A backoff began or ended here since the last save (other processes must see it)."""
        return self._backoff_dirty

    @property
    def covered(self) -> bool:
        """Deferred: the hold on disk still covers this process's next call, so the calls
        made since the last save can wait for a later one (a kill turns the hold into
        ledger entries). False once the hold is spent: the owner saves then."""
        return self.deferred and self._hold_left > 0

    def save(
        self,
        now: datetime,
        mutate: Callable[[State], None] | None = None,
        *,
        release: bool = False,
    ) -> None:
        """Write the ledger (merged) and the hold, with ``mutate``'s changes, in one write.

        ``release`` (a clean stop): no hold is left behind. Raises ``OSError`` when
        ``state.json`` cannot be written: the ledger stays in memory (still enforced) and
        the next save tries again.
        """
        if self.store is None:
            return
        with self._lock:
            pending = list(self._pending)
            mine = self._memory
            backoff = (mine.backoff_until, mine.backoff_seconds, mine.rate_limited_since)
            backoff_dirty = self._backoff_dirty

            def apply(state: State) -> None:
                drop_future(state, now)
                state.calls = sorted(state.calls + pending)
                if backoff_dirty:
                    state.backoff_until, state.backoff_seconds, state.rate_limited_since = backoff
                if self.deferred:
                    since = state.hold_since
                    if (
                        state.hold_owner not in (None, self.owner)
                        and since is not None
                        and since > now - LEDGER_SPAN
                    ):
                        # A hold of another `run` (killed, or it would have released it):
                        # the calls it may have made become ledger entries, dated now (they
                        # were made between its time and now: never later, so the hour
                        # cannot free their slots early).
                        state.calls = sorted(state.calls + [now] * state.hold_calls)
                    if release:
                        state.hold_owner, state.hold_calls, state.hold_since = None, 0, None
                    else:
                        state.hold_owner, state.hold_calls, state.hold_since = self.owner, HOLD, now
                if mutate is not None:
                    mutate(state)

            disk = self.store.update(apply)
            del self._pending[: len(pending)]
            self._hold_left = 0 if release or not self.deferred else HOLD
            self._backoff_dirty = False
            self._merge(disk)
            self._seen, self._loaded = _identity(self.store), True

    # --- the public face ------------------------------------------------------------------

    def reserve(self, now: datetime) -> None:
        """Record a call at ``now``, or raise without recording it.

        ``RateLimited`` while a backoff runs; ``BudgetExhausted`` when the last hour is
        full (``retry_in`` = seconds until its oldest call leaves the hour).
        """

        def take(state: State) -> None:
            self._refuse(state, now)
            state.calls.append(now)
            if self.deferred:
                self._pending.append(now)
                self._hold_left -= 1

        with self._lock:
            if self.deferred and self._hold_left <= 0:
                # No hold on disk covers this call: write ahead. On a full disk the ledger
                # stays in memory, still enforced.
                with contextlib.suppress(OSError):
                    self._refuse(self._read(), now)  # (a refused call needs no write)
                    self.save(now)
            self._update(take, now)
            horizon = now - LEDGER_SPAN
            if self._pending and self._pending[0] <= horizon:
                self._pending = [c for c in self._pending if c > horizon]

    def _waits(self, state: State, now: datetime) -> tuple[float, float | None]:
        """(seconds of backoff left, seconds until the full hour frees a slot or None)."""
        drop_future(state, now)
        recent = _recent(state, now, self.owner)
        if len(recent) < self.max_per_hour:
            return _backoff_left(state, now), None
        oldest = recent[len(recent) - self.max_per_hour]
        return _backoff_left(state, now), (oldest + LEDGER_SPAN - now).total_seconds()

    def _refuse(self, state: State, now: datetime) -> None:
        """Raise if no call may be made at ``now``; see :meth:`reserve`."""
        backoff, full = self._waits(state, now)
        if backoff > 0:
            raise RateLimited(
                f"Octopus API rate limited; backing off for another {backoff:.0f} s",
                "the limit is shared with the Octopus app and other integrations",
                retry_in=backoff,
            )
        if full is not None:
            raise BudgetExhausted(max(full, 0.001))

    def wait_time(self, now: datetime) -> float:
        """Seconds until a call may be made (0 = now); does not record anything."""
        backoff, full = self._waits(self._read(), now)
        return max(backoff, full or 0.0)

    def calls_last_hour(self, now: datetime) -> int:
        """This process's view: the calls in the last hour (another's hold included)."""
        state = self._read()
        drop_future(state, now)
        return len(_recent(state, now, self.owner))

    def clock_moved_back(self, now: datetime) -> None:
        """Drop ledger entries and backoffs dated in the future (also on disk at the save)."""
        with self._lock:
            if drop_future(self._memory, now):
                self._pending = [c for c in self._pending if c <= now + CLOCK_SLACK]
                self._backoff_dirty = self._backoff_dirty or self._memory.backoff_until is None

    def rate_limited(self, now: datetime) -> float:
        """A rate-limit answer: back off 300 s, doubling to 1800 s; returns the backoff."""
        result: list[float] = []

        def hit(state: State) -> None:
            seconds = next_delay(state.backoff_seconds, BACKOFF_FIRST, BACKOFF_MAX)
            state.backoff_seconds = seconds
            state.backoff_until = now + timedelta(seconds=seconds)
            if state.rate_limited_since is None:
                state.rate_limited_since = now
            result.append(seconds)

        with self._lock:
            self._update(hit, now)
            self._backoff_dirty = self.deferred
        return result[0]

    def clear_backoff(self) -> None:
        """After a successful call: the rate-limited episode is over."""
        state = self._read()
        if (
            state.backoff_until is None
            and state.backoff_seconds == 0
            and state.rate_limited_since is None
        ):
            return  # nothing to clear: spare the write

        def clear(state: State) -> None:
            state.backoff_until = None
            state.backoff_seconds = 0
            state.rate_limited_since = None

        with self._lock:
            self._update(clear)
            self._backoff_dirty = self.deferred

    def backoff_remaining(self, now: datetime) -> float:
        state = self._read()
        drop_future(state, now)
        return _backoff_left(state, now)

    def rate_limited_since(self) -> datetime | None:
        """When the current rate-limited episode began (for the over-30-minutes alert)."""
        return self._read().rate_limited_since


class Interrupted(OctopusError):
    """A stop was requested: no further request is sent in this cycle."""


class StopAwareBudget(Budget):
    """The call ledger, refusing new requests once ``stop`` is set (SPEC §4.7).

    The client takes a budget slot before every request, so this is exactly "the cycle in
    flight ends after its current request" without reaching into the client.
    """

    def __init__(
        self,
        store: StateStore | None,
        max_per_hour: int,
        stop: threading.Event,
        *,
        deferred: bool = False,
    ) -> None:
        super().__init__(store, max_per_hour, deferred=deferred)
        self.stop = stop

    def reserve(self, now: datetime) -> None:
        if self.stop.is_set():
            raise Interrupted("stopping: no further Octopus API requests")
        super().reserve(now)
