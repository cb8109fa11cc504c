"""What the cache sets aside (SPEC §4.4, §4.5): unreadable lines in ``quarantine/``, readings
InfluxDB refused in ``rejected/``, and ``cache requeue`` putting those back.

A part of :class:`octomon.store.cache.Cache` (its base class): it works under the cache's
one lock, in its directory, with its error wording.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from octomon.errors import CacheError
from octomon.fsutil import ensure_private_dir, fsync_dir, write_synced
from octomon.readings import AnyReading, format_time
from octomon.store.cap import REJECTED, REQUEUED, Evicted
from octomon.store.lines import note_count, parse_line, record_total, split_lines

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
CAP_LOCK_WAIT = 1.0  # seconds; the cap can wait for the next time, refused readings cannot


class RequeueResult(NamedTuple):
    readings: int = 0  # moved back into the cache
    files: int = 0  # rejected files emptied
    quarantined: int = 0  # lines of them that were no reading (moved to quarantine/)
    archive: Path | None = None  # where the .txt reasons went


class RejectedFile(NamedTuple):
    """Where refused readings were set aside, and what the cap dropped to make room."""

    path: Path
    evicted: Evicted = Evicted()


class SetAside:
    """Quarantine, rejected readings and their requeueing, for :class:`Cache`."""

    directory: Path

    if TYPE_CHECKING:  # provided by Cache

        def lock(self, timeout: float | None = None) -> AbstractContextManager[None]: ...
        def append(self, readings: Sequence[AnyReading], keep: Collection[str] = ()) -> object: ...
        def files(self) -> list[Path]: ...
        def _enforce_cap(self, keep: Collection[str]) -> Evicted: ...
        def _error(self, what: str, exc: OSError) -> CacheError: ...

    def quarantine(
        self, source: str, entries: Sequence[tuple[int, bytes, str]], now: datetime
    ) -> int:
        """Move bad lines (offset, line, reason) of ``source`` aside; returns new ones."""
        import json

        if not entries:
            return 0
        qdir = self.directory / QUARANTINE
        path = qdir / source
        with self.lock():
            try:
                ensure_private_dir(qdir)
                seen = set()
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                    for raw in f:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            obj = json.loads(raw)
                            seen.add((obj["offset"], obj["line"]))
                out = []
                for offset, line, reason in entries:
                    text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                    if (offset, text) in seen:
                        continue
                    seen.add((offset, text))
                    rec = {
                        "source": source,
                        "offset": offset,
                        "reason": reason,
                        "quarantined_at": format_time(now),
                        "line": text,
                    }
                    out.append(json.dumps(rec) + "\n")
                if out:
                    data = "".join(out).encode("utf-8", "surrogateescape")
                    write_synced(path, os.O_APPEND | os.O_CREAT, data)
                    fsync_dir(qdir)
            except OSError as exc:
                raise self._error("write to the quarantine", exc) from None
        if out:
            log.warning("moved %d unreadable line(s) of %s to %s", len(out), source, path)
        return len(out)

    def write_rejected(
        self, lines: Sequence[str | bytes], message: str, now: datetime
    ) -> RejectedFile:
        """Set refused readings aside: ``rejected/rejected_<UTC>.jsonl`` + ``.txt``.

        ``rejected/`` counts in CACHE_MAX_MB: over it, the oldest files go (never this one,
        nor the newest day file, where appends go); the result says what was dropped."""
        rdir = self.directory / REJECTED
        stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        body = b"".join(
            (x.encode("utf-8") if isinstance(x, str) else x).rstrip(b"\r\n") + b"\n" for x in lines
        )
        try:
            ensure_private_dir(rdir)
            for n in range(10_000):
                path = rdir / (
                    f"rejected_{stamp}.jsonl" if n == 0 else f"rejected_{stamp}_{n}.jsonl"
                )
                try:
                    write_synced(path, os.O_CREAT | os.O_EXCL, body)
                except FileExistsError:
                    continue
                break
            else:  # pragma: no cover
                raise OSError(errno.EEXIST, "too many rejected files in one second")
            note = (message.rstrip() + "\n").encode("utf-8", "replace")
            write_synced(path.with_suffix(".txt"), os.O_CREAT | os.O_TRUNC, note)
            fsync_dir(rdir)
            note_count(rdir, path.name, body)  # `cache status` counts it without reading it
        except OSError as exc:
            raise self._error("set refused readings aside", exc) from None
        return RejectedFile(path, self._cap_after_set_aside(path))

    def _cap_after_set_aside(self, path: Path) -> Evicted:
        """The cap, once refused readings are safe on disk (a busy lock: the next time)."""
        try:
            with self.lock(CAP_LOCK_WAIT):
                days = self.files()
                keep = {f"{REJECTED}/{path.name}", *(p.name for p in days[-1:])}
                return self._enforce_cap(keep)
        except CacheError as exc:
            log.warning("the cache's cap is checked later: %s", exc.message)
            return Evicted()

    def requeue(self, now: datetime) -> RequeueResult:
        """Move the readings under ``rejected/`` back into the day files (`cache requeue`).

        File by file: its readings are appended (under the cache lock, durable), then the
        file is deleted and its ``.txt`` reason moved to ``rejected/requeued/``. A crash in
        between only means the readings are queued twice (harmless: one point per
        timestamp). A line that is not a reading goes to ``quarantine/``.
        """
        rdir = self.directory / REJECTED
        try:
            names = sorted(e.name for e in os.scandir(rdir) if e.name.endswith(".jsonl"))
        except FileNotFoundError:
            return RequeueResult()
        except OSError as exc:
            raise self._error("list rejected/", exc) from None
        archive = rdir / REQUEUED
        moved = files = bad_count = 0
        for name in names:
            path = rdir / name
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error(
                    f"read rejected/{name} ({moved} readings requeued before it)", exc
                ) from None
            readings: list[AnyReading] = []
            bad: list[tuple[int, bytes, str]] = []
            offset = 0
            for raw in split_lines(data):
                here, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    readings.append(parse_line(raw))
                except ValueError as exc:
                    bad.append((here, raw, str(exc) or "unreadable"))
            if readings:
                self.append(readings, keep={f"{REJECTED}/{name}"})
            if bad:
                bad_count += self.quarantine(name, bad, now)
            try:
                ensure_private_dir(archive)
                note = path.with_suffix(".txt")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(note, archive / note.name)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                fsync_dir(rdir)
            except OSError as exc:
                raise self._error(f"remove rejected/{name} after requeueing it", exc) from None
            moved += len(readings)
            files += 1
        if files:
            record_total(rdir)
        return RequeueResult(moved, files, bad_count, archive if files else None)
