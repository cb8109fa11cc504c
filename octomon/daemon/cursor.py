"""The gap-free cursor of SPEC §4.1, for one stream of readings (either fuel).

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

import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from octomon.octopus.graphql import MAX_WINDOW
from octomon.readings import format_time

log = logging.getLogger("octomon.daemon.monitor")

SETTLE_AFTER = timedelta(minutes=15)  # no upload is later: an old window is settled
# KT-GB-4051 (start too old): the window start jumps to now - 24 h, then now - 6 h.
RETENTION_JUMPS = (timedelta(hours=24), timedelta(hours=6))


class _Timed(Protocol):
    @property
    def read_at(self) -> datetime: ...


_R = TypeVar("_R", bound=_Timed)


class _Files(Protocol):
    def files(self) -> list[Path]: ...


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
        # Moved otherwise than forward along what was stored (the clock went back, a
        # KT-GB-4051 jump, a damaged state.json): the owner saves it at once, not later.
        self.jumped = False
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
        self.dirty = self.jumped = True
        return True

    def retention_jump(self, start: datetime, now: datetime) -> datetime | None:
        """Where the window starts after KT-GB-4051 (None: no further jump); moves the cursor."""
        jump = next((now - b for b in RETENTION_JUMPS if now - b > start + self.overlap), None)
        if jump is not None:
            self.at, self._anchor, self.dirty = jump + self.overlap, None, True
            self.jumped = True
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


def clock_moved_back(
    cursor: Cursor, now: datetime, slack: timedelta
) -> tuple[timedelta, datetime | None] | None:
    """Apply the clock rule and log it: (how far back, where fetching resumes or None while
    the clock is behind what was stored), or None when the clock did not move back."""
    marks = [t for t in (cursor.at, cursor.last_run) if t is not None]
    latest = max(marks) if marks else now
    if not cursor.clock_went_back(now, slack):
        return None
    again = cursor.at if cursor.at is not None and cursor.at <= now else None
    log.warning(
        "the system clock moved back (%s is before %s); %s",
        format_time(now),
        format_time(latest),
        f"fetching again from {format_time(again)}" if again else "waiting for it",
    )
    return latest - now, again


class ClockAhead:
    """Is this clock ahead of the API's? The token just accepted expires at the API's
    ``exp``: if that is already past here, ``now`` runs ahead by at least the difference.

    Then the newest reading only *looks* old: no "Home Mini data stale" (and its advice to
    power-cycle it) while the clock is wrong. Logged once per episode.
    """

    def __init__(self, client: object, slack: timedelta = timedelta(minutes=1)) -> None:
        self.client = client
        self.slack = slack
        self.said = False

    def __call__(self, now: datetime) -> bool:
        expires = getattr(self.client, "token_expires_at", None)
        ahead = isinstance(expires, datetime) and expires < now - self.slack
        if ahead and not self.said:
            assert isinstance(expires, datetime)
            from octomon.alerts.policy import duration

            log.warning(
                "the system clock is at least %s ahead of the Octopus API: the data's age is "
                "not judged until it is corrected",
                duration(now - expires),
            )
        self.said = ahead
        return ahead


def resume_damaged(
    cursor: Cursor, cache: _Files, now: datetime, set_aside: str
) -> tuple[datetime, bool]:
    """An unreadable ``state.json`` (set aside as ``set_aside``): the cursor resumes from the
    newest reading in the cache, else ``first_lookback`` back. Returns (where, from the cache)."""
    newest = newest_cached(cache)
    from_cache = newest is not None and newest <= now
    cursor.at = newest if from_cache and newest is not None else now - cursor.first_lookback
    if from_cache:
        cursor.newest = newest
    cursor.dirty = cursor.jumped = True
    # Logged once already (octomon.jsonfile); the alert says where fetching resumes.
    return cursor.at, from_cache


TAIL_BYTES = 64 * 1024  # how much of the newest cache file a damaged state's recovery reads


def newest_cached(cache: _Files) -> datetime | None:
    """The newest electricity ``read_at`` in the cache, cheaply: the tail of the newest day
    file(s). Where a damaged ``state.json``'s cursor resumes (SPEC §4.1)."""
    from octomon.errors import OctomonError
    from octomon.store.lines import parse_line

    try:
        files = cache.files()
    except OctomonError:
        return None
    for path in reversed(files):
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                lines = f.read().split(b"\n")
        except OSError:
            continue
        if size > TAIL_BYTES:
            lines = lines[1:]  # the first one is cut
        times = []
        for line in lines:
            if b'"fuel":"gas"' in line:  # the cursor is the electricity telemetry's
                continue
            try:
                times.append(parse_line(line).read_at)
            except (ValueError, KeyError, TypeError):
                continue
        if times:
            return max(times)
    return None
