"""When the monitor writes ``state.json`` (SPEC §4.1, §4.9), and what the write holds.

One write at most per cycle, and not every cycle: the routine changes — the cursor moving
forward, the calls the hold on disk covers (:mod:`octomon.octopus.budget`) — wait until the
hold is spent, every few cycles. A kill before then loses nothing: the next life fetches
again from the saved cursor (storing twice is harmless, counting twice impossible: the
tally's part rides in this same write) and turns the hold into ledger entries. What the
hold cannot stand for is saved at once: a new device or refresh token, a backoff that began
or ended, a cursor moved back (:attr:`Stream.jumped`), a stop, and every cycle after a
failed save until one succeeds.

A failure (disk full) is logged and alerted once and retried next cycle; polling goes on,
the ledger stays in memory and is still enforced (SPEC §4.9).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from octomon.alerts.policy import AlertPolicy
from octomon.daemon.status import Announcer
from octomon.latch import Latch
from octomon.octopus.budget import Budget
from octomon.state import State, StateStore

log = logging.getLogger(__name__)


class Client(Protocol):
    @property
    def refresh_token(self) -> str | None: ...
    @property
    def refresh_expires_at(self) -> datetime | None: ...


class Stream(Protocol):
    """The part of :class:`octomon.daemon.stream.Stream` the state carries."""

    @property
    def dirty(self) -> bool: ...
    @property
    def jumped(self) -> bool: ...
    def saver(self) -> Callable[[State], None]: ...
    def saved(self) -> None: ...


class StateSaver:
    """Decides whether this cycle writes ``state.json`` and writes it (see the module)."""

    def __init__(
        self,
        *,
        store: StateStore,
        budget: Budget,
        stream: Stream,
        client: Client,
        policy: AlertPolicy,
        alerts: Announcer,
    ) -> None:
        self.store = store
        self.budget = budget
        self.stream = stream
        self.client = client
        self.policy = policy
        self.alerts = alerts
        self.dirty = False  # something only a write at once may carry (set by the monitor)
        self._saving = Latch(log)
        self._saved_refresh: str | None = None

    def loaded(self, state: State) -> None:
        """The state read at start: its refresh token needs no write."""
        self._saved_refresh = state.refresh_token

    def due(self, *, force: bool = False) -> bool:
        urgent = (
            force
            or self.dirty
            or self.stream.jumped
            or self.client.refresh_token != self._saved_refresh
            or self.budget.backoff_unsaved
            or self._saving.failing  # retried every cycle until it is written
        )
        routine = self.stream.dirty or self.budget.unsaved
        return urgent or (routine and not self.budget.covered)

    def save(
        self, now: datetime, device: str | None, *, force: bool = False, release: bool = False
    ) -> None:
        """Write the state when :meth:`due`: cursor, device, token and the call ledger, in
        one write; ``release`` (a clean stop) leaves no hold behind."""
        if not self.due(force=force):
            return
        token, expires = self.client.refresh_token, self.client.refresh_expires_at
        cursor = self.stream.saver()

        def mutate(state: State) -> None:
            cursor(state)
            if device is not None:
                state.device_id = device
            if token is not None:
                state.refresh_token = token
                state.refresh_expires_at = expires

        try:
            if self.budget.store is not None:
                self.budget.save(now, mutate, release=release)  # the ledger too: one write
            else:
                self.store.update(mutate)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self._saving.fail(
                "could not save state.json (%s); retrying next cycle", reason, level=logging.ERROR
            )
            self.alerts.emit(self.policy.state_failed(now, f"state.json: {reason}"))
            return
        if self._saving.ok("state.json saved again"):
            self.alerts.emit(self.policy.state_ok(now))
        self.dirty = False
        self.stream.saved()
        self._saved_refresh = token
