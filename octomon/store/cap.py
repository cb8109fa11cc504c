"""``CACHE_MAX_MB`` (SPEC §4.5): the day files and ``rejected/`` counted together.

Above the cap, whole files are dropped, oldest first across both: a day file by its day, a
set-aside file (``rejected/rejected_<UTC>.jsonl`` with its ``.txt``, or a reason kept in
``rejected/requeued/``) by the time it was set aside, which its name says. A file being
written to (the caller's ``keep``) is never dropped. The readings dropped are counted (the
newlines of the files, nothing parsed) for the one error alert.

Runs under the cache lock (the caller's). Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from octomon.fsutil import fsync_dir
from octomon.store.lines import count_lines, record_total

log = logging.getLogger(__name__)

REJECTED = "rejected"
REQUEUED = "requeued"  # rejected/requeued/: the reasons of readings put back in the cache

_STAMP = re.compile(r"rejected_(\d{8}T\d{6}Z)")


class Evicted(NamedTuple):
    """What was dropped: names relative to the cache directory, and the readings in them."""

    files: tuple[str, ...] = ()
    readings: int = 0


class _Item(NamedTuple):
    key: str  # "YYYYMMDDTHHMMSSZ": when its readings were cached (the day) or set aside
    name: str  # relative to the cache directory, e.g. "rejected/rejected_….jsonl"
    paths: tuple[Path, ...]  # the readings file first
    size: int
    readings: bool  # its first path holds readings (one per line)


def evict(directory: Path, max_bytes: int, days: Sequence[Path], keep: Collection[str]) -> Evicted:
    """Drop the oldest whole files while the day files (``days``) and ``rejected/`` are
    over ``max_bytes``; never one named in ``keep``."""
    items = [*_day_items(days), *_aside_items(directory / REJECTED, REJECTED)]
    total = sum(item.size for item in items)
    if total <= max_bytes:
        return Evicted()
    dropped: list[str] = []
    lost = 0
    dirs: set[Path] = set()
    for item in sorted(items):
        if total <= max_bytes:
            break
        if item.name in keep:
            continue
        try:
            if item.readings:
                with open(item.paths[0], "rb") as f:
                    lost += count_lines(f, 0, os.fstat(f.fileno()).st_size)
            item.paths[0].unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("could not drop %s: %s", item.name, exc.strerror or exc)
            continue
        for other in item.paths[1:]:
            with contextlib.suppress(OSError):
                other.unlink()
        dirs.add(item.paths[0].parent)
        dropped.append(item.name)
        total -= item.size
    for d in dirs:
        fsync_dir(d)
        if d.name == REJECTED:
            record_total(d)  # `cache status` reads the count again without listing
    return Evicted(tuple(dropped), lost)


def _day_items(days: Sequence[Path]) -> list[_Item]:
    out = []
    for path in days:
        with contextlib.suppress(FileNotFoundError):
            day = path.name[6:16].replace("-", "")  # cache_YYYY-MM-DD.jsonl
            out.append(_Item(day + "T000000Z", path.name, (path,), path.stat().st_size, True))
    return out


def _aside_items(folder: Path, prefix: str) -> list[_Item]:
    """Each set-aside file with its reason (same name, ``.txt``) as one item; the reasons of
    requeued files (``requeued/``) each on their own."""
    groups: dict[str, list[os.DirEntry[str]]] = {}
    out: list[_Item] = []
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:  # none yet (or unreadable: nothing to count)
        return out
    for e in entries:
        if e.name == REQUEUED and prefix == REJECTED:
            out.extend(_aside_items(folder / REQUEUED, f"{prefix}/{REQUEUED}"))
        elif e.is_file(follow_symlinks=False) and not e.name.startswith("."):  # .counts
            groups.setdefault(e.name.rsplit(".", 1)[0], []).append(e)
    for stem, group in groups.items():
        group.sort(key=lambda e: not e.name.endswith(".jsonl"))  # the readings first
        try:
            size = sum(e.stat(follow_symlinks=False).st_size for e in group)
            m = _STAMP.match(stem)
            key = m.group(1) if m else _stamp(group[0].stat(follow_symlinks=False).st_mtime)
        except FileNotFoundError:
            continue
        first = group[0]
        out.append(
            _Item(
                key,
                f"{prefix}/{first.name}",
                tuple(Path(e.path) for e in group),
                size,
                first.name.endswith(".jsonl"),
            )
        )
    return out


def _stamp(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
