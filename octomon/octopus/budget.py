"""The API call ledger (SPEC §4.3): every request to the Octopus API is recorded with its
time before it is sent, and none is sent while the last 60 minutes already hold
``OCTOPUS_MAX_CALLS_PER_HOUR`` of them, or while a rate-limit backoff runs.

The ledger lives in ``state.json`` so that it holds across restarts (a crash loop cannot
burn the account's shared quota) and across processes (``run`` and ``backfill`` together
never exceed it). Without a usable CACHE_DIR it is kept in memory. The clock is always
passed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from octomon.errors import BudgetExhausted, OctopusError, RateLimited
from octomon.state import LEDGER_SPAN, State, StateStore

BACKOFF_FIRST = 300.0  # 5 minutes
BACKOFF_MAX = 1800.0  # 30 minutes


def _recent(state: State, now: datetime) -> list[datetime]:
    """Calls inside the last hour (a call exactly an hour old has left it)."""
    horizon = now - LEDGER_SPAN
    return sorted(c for c in state.calls if c > horizon)


def _backoff_left(state: State, now: datetime) -> float:
    if state.backoff_until is None:
        return 0.0
    return max(0.0, (state.backoff_until - now).total_seconds())


class Budget:
    """The shared hourly call budget; ``store=None`` keeps the ledger in memory."""

    def __init__(self, store: StateStore | None, max_per_hour: int) -> None:
        if max_per_hour < 1:
            raise ValueError("max_per_hour must be at least 1")
        self.store = store
        self.max_per_hour = max_per_hour
        self._memory = State()
        self._lock = threading.Lock()

    # --- plumbing: one atomic read-modify-write, on disk or in memory -------------------

    def _update(self, mutate: Callable[[State], None]) -> State:
        if self.store is not None:
            return self.store.update(mutate)
        with self._lock:
            mutate(self._memory)
            self._memory.prune()
            return self._memory

    def _read(self) -> State:
        if self.store is not None:
            return self.store.load()
        with self._lock:
            return replace(self._memory, calls=list(self._memory.calls))

    # --- the public face ------------------------------------------------------------------

    def reserve(self, now: datetime) -> None:
        """Record a call at ``now``, or raise without recording it.

        ``RateLimited`` while a backoff runs; ``BudgetExhausted`` when the last hour is
        full (``retry_in`` = seconds until its oldest call leaves the hour).
        """

        def take(state: State) -> None:
            left = _backoff_left(state, now)
            if left > 0:
                raise RateLimited(
                    f"Octopus API rate limited; backing off for another {left:.0f} s",
                    "the limit is shared with the Octopus app and other integrations",
                    retry_in=left,
                )
            recent = _recent(state, now)
            if len(recent) >= self.max_per_hour:
                oldest = recent[len(recent) - self.max_per_hour]
                retry_in = max((oldest + LEDGER_SPAN - now).total_seconds(), 0.001)
                raise BudgetExhausted(retry_in)
            state.calls.append(now)

        self._update(take)

    def wait_time(self, now: datetime) -> float:
        """Seconds until a call may be made (0 = now); does not record anything."""
        state = self._read()
        left = _backoff_left(state, now)
        recent = _recent(state, now)
        if len(recent) >= self.max_per_hour:
            oldest = recent[len(recent) - self.max_per_hour]
            left = max(left, (oldest + LEDGER_SPAN - now).total_seconds())
        return left

    def calls_last_hour(self, now: datetime) -> int:
        return len(_recent(self._read(), now))

    def rate_limited(self, now: datetime) -> float:
        """A rate-limit answer: back off 300 s, doubling to 1800 s; returns the backoff."""
        result: list[float] = []

        def hit(state: State) -> None:
            if state.backoff_seconds <= 0:
                seconds = BACKOFF_FIRST
            else:
                seconds = min(max(state.backoff_seconds * 2, BACKOFF_FIRST), BACKOFF_MAX)
            state.backoff_seconds = seconds
            state.backoff_until = now + timedelta(seconds=seconds)
            if state.rate_limited_since is None:
                state.rate_limited_since = now
            result.append(seconds)

        self._update(hit)
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

        self._update(clear)

    def backoff_remaining(self, now: datetime) -> float:
        return _backoff_left(self._read(), now)

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

    def __init__(self, store: StateStore | None, max_per_hour: int, stop: threading.Event) -> None:
        super().__init__(store, max_per_hour)
        self.stop = stop

    def reserve(self, now: datetime) -> None:
        if self.stop.is_set():
            raise Interrupted("stopping: no further Octopus API requests")
        super().reserve(now)
