"""The gap-free cursor of SPEC §4.1, for one stream of readings (gas; see ``Cursor``).

The cursor is the point up to which history is settled: the ``readAt`` of the newest
reading durably stored, or -- when a fetched window's readings were *all* stored (or it had
none) and its end is older than ``settle_after`` -- that end, whichever is later. A window
is ``[cursor - overlap, min(now, start + max_window))``; the first start looks
``first_lookback`` back. Readings already stored in this process's life (remembered for the
overlap span) are not stored again. Clock rule: if ``now`` is earlier than the cursor or the
previous run (the system clock ran fast and was corrected; a Pi without a real-time clock
booted in the past), the cursor returns to the newest reading actually stored (``newest``)
and that span is fetched again. If even ``newest`` is after ``now`` (this clock is behind
real time), the cursor stays and the window is empty until the clock passes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from octomon.octopus.graphql import MAX_WINDOW

SETTLE_AFTER = timedelta(minutes=15)  # no upload is later: an old window is settled
# KT-GB-4051 (start too old): the window start jumps to now - 24 h, then now - 6 h.
RETENTION_JUMPS = (timedelta(hours=24), timedelta(hours=6))


class _Timed(Protocol):
    @property
    def read_at(self) -> datetime: ...


_R = TypeVar("_R", bound=_Timed)


class Cursor:
    def __init__(
        self,
        *,
        overlap: timedelta,
        first_lookback: timedelta,
        at: datetime | None = None,
        newest: datetime | None = None,
        max_window: timedelta = MAX_WINDOW,
        settle_after: timedelta = SETTLE_AFTER,
    ) -> None:
        self.overlap = overlap
        self.first_lookback = first_lookback
        self.max_window = max_window
        self.settle_after = settle_after
        self.at = at  # the settled point
        self.newest = newest  # the newest readAt actually stored
        self.dirty = False  # changed since the owner last saved it
        self._anchor: datetime | None = None  # first start: where the first window begins
        self.last_run: datetime | None = None  # the previous window asked for (or saved)
        self.behind = False  # the clock moved back and has not passed the cursor again
        self.seen: set[datetime] = set()  # read_ats stored in this run, within the overlap

    @property
    def anchor(self) -> datetime | None:
        """Where the windows start while there is no cursor yet (None: not chosen yet)."""
        return self._anchor if self.at is None else None

    def start_at(self, anchor: datetime) -> None:
        """Start the windows at ``anchor`` while there is no cursor: the one an earlier
        process chose (kept in ``state.json``), so that a process killed before its first
        cursor was saved does not move the start of history forward past what it stored."""
        self._anchor = anchor

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """``[cursor - overlap, min(now, start + max_window))``."""
        if self.at is not None:
            start = self.at - self.overlap
        else:
            if self._anchor is None:
                self._anchor = now - self.first_lookback
            start = self._anchor
        return start, min(now, start + self.max_window)

    def clock_went_back(self, now: datetime, slack: timedelta = timedelta(0)) -> bool:
        """Apply the clock rule; True when the clock moved back (once while it stays behind).

        ``slack``: a clock stepped back by less than this is ignored (the overlap covers it).
        """
        last, self.last_run = self.last_run, now
        marks = [t for t in (self.at, last) if t is not None]
        if not marks or now >= max(marks) - slack:
            self.behind = False
            return False
        if self.behind:  # said already; still behind the cursor
            return False
        self.behind = True
        if self.newest is not None and self.newest <= now:
            self.at = self.newest if self.at is None else min(self.at, self.newest)
        elif self.newest is None and self.at is not None and self.at > now:
            self.at = None  # nothing known stored: the first start's rule
        # (else the newest stored reading is after ``now``: the cursor stays)
        self._anchor = None
        self.seen.clear()
        self.dirty = True
        return True

    def retention_jump(self, start: datetime, now: datetime) -> datetime | None:
        """Where the window starts after KT-GB-4051 (None: no further jump); moves the cursor."""
        jump = next((now - b for b in RETENTION_JUMPS if now - b > start + self.overlap), None)
        if jump is not None:
            self.at, self._anchor, self.dirty = jump + self.overlap, None, True
        return jump

    def fresh(self, readings: Iterable[_R]) -> list[_R]:
        """The readings not stored yet in this process's life."""
        return [r for r in readings if r.read_at not in self.seen]

    def advance(
        self, stored: Sequence[_Timed], unstored: Sequence[_Timed], end: datetime, now: datetime
    ) -> bool:
        """Move the cursor after a window ``[…, end)`` was stored; True if it moved."""
        self.seen.update(r.read_at for r in stored)
        if stored:
            top = max(r.read_at for r in stored)
            if self.newest is None or top > self.newest:
                self.newest, self.dirty = top, True
        candidates: list[datetime] = []
        if unstored:
            # Never move past a reading that could not be stored: the next window must
            # still contain it.
            oldest = min(r.read_at for r in unstored)
            stored = [r for r in stored if r.read_at < oldest]
        elif end <= now - self.settle_after:
            candidates.append(end)  # an old window, all stored (or empty): settled
        if stored:
            candidates.append(max(r.read_at for r in stored))
        moved = bool(candidates) and (self.at is None or max(candidates) > self.at)
        if moved:
            self.at, self._anchor, self.dirty = max(candidates), None, True
        self._forget_old()
        return moved

    def _forget_old(self) -> None:
        """Keep only the read_ats that the next window can still contain (bounded memory)."""
        if self.at is None or not self.seen:
            return
        horizon = self.at - self.overlap
        if min(self.seen) < horizon:
            self.seen = {t for t in self.seen if t >= horizon}
