"""Reading the cache's lines (SPEC §4.5): the full parse of one line, a file in blocks that
end on a newline, counting lines, and the span of times a block holds.

Standard library only, ``json`` imported where it is used: ``cache status`` imports this.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from octomon.fsutil import atomic_write, overwrite
from octomon.readings import AnyReading, format_time, from_cache_obj, parse_time

BLOCK = 1 << 20  # bytes read at a time
_TS = slice(12, 32)  # read_at inside a canonical line: {"read_at":"2026-11-27T14:00:10Z",…
_HEAD = slice(0, 12)
_AFTER_TS = slice(31, 47)


def parse_line(raw: bytes) -> AnyReading:
    """The full parse of one cache line (any JSON object with ``read_at``; a gas line by its
    ``"fuel":"gas"``, SPEC §4.5); ValueError."""
    import json

    try:
        obj = json.loads(raw)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    try:
        return from_cache_obj(obj)
    except (TypeError, OverflowError) as exc:
        raise ValueError(str(exc)) from None


def blocks(handle: BinaryIO, start: int, end: int, size: int = BLOCK) -> Iterator[bytes]:
    """``[start, end)`` in blocks that end on a newline (the last one may not)."""
    handle.seek(start)
    left = end - start
    carry = b""
    while left > 0:
        data = handle.read(min(size, left))
        if not data:
            break
        left -= len(data)
        data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and left > 0:
            carry = data
            continue
        if left <= 0:
            cut = len(data)
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


def count_lines(handle: BinaryIO, start: int, end: int) -> int:
    """Lines in ``[start, end)`` (a last line without newline counts)."""
    count = 0
    last = b"\n"
    for block in blocks(handle, start, end):
        count += block.count(b"\n")
        last = block[-1:]
    return count + (last != b"\n")


def canonical_span(block: bytes) -> tuple[int, str, str] | None:
    """(readings, oldest, newest) of a block of canonical-looking lines, else None."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()
    if not lines:
        return 0, "", ""
    if set(map(itemgetter(_HEAD), lines)) != {b'{"read_at":"'}:
        return None
    if set(map(itemgetter(_AFTER_TS), lines)) != {b'Z","device_id":"'}:
        return None
    if set(map(itemgetter(-1), lines)) != {0x7D}:  # "}"
        return None
    lo = min(map(itemgetter(_TS), lines)).decode()
    hi = max(map(itemgetter(_TS), lines)).decode()
    try:
        parse_time(lo), parse_time(hi)
    except ValueError:
        return None
    return len(lines), lo, hi


def parsed_span(block: bytes) -> tuple[int, str | None, str | None]:
    count = 0
    lo: str | None = None
    hi: str | None = None
    for raw in split_lines(block):
        if not raw.strip():
            continue
        try:
            ts = format_time(parse_line(raw).read_at)
        except ValueError:
            continue
        count += 1
        lo = ts if lo is None or ts < lo else lo
        hi = ts if hi is None or ts > hi else hi
    return count, lo, hi


def iter_lines(
    handle: BinaryIO, start: int, end: int
) -> Iterator[tuple[int, str, AnyReading | None]]:
    """(offset, problem, reading) per line of ``[start, end)``, fully parsed.

    Blank lines yield ``(offset, "", None)``; bad lines ``(offset, reason, None)``.
    """
    offset = start
    for block in blocks(handle, start, end):
        for raw in split_lines(block):
            here = offset
            offset += len(raw)
            if not raw.strip():
                yield here, "", None
                continue
            try:
                yield here, "", parse_line(raw)
            except ValueError as exc:
                yield here, str(exc) or "unreadable", None


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their ``\\n`` (only ``\\n`` ends a line; a last one may lack it)."""
    parts = data.split(b"\n")
    last = parts.pop()
    out = [p + b"\n" for p in parts]
    if last:
        out.append(last)
    return out


COUNTS = ".counts"  # rejected/.counts: "name size lines" per file set aside (an index)


def count_dir_lines(directory: Path, suffix: str = "", index: bool = False) -> int:
    """Lines in the files of ``directory`` named ``*suffix``: newlines counted in the bytes,
    nothing parsed (``cache status`` on 10,000 refused readings answers within its start-up
    target, SPEC §7). With ``index``, a file listed in ``directory/.counts`` is not read at
    all (the listing is the truth: entries of files gone are ignored, files not listed —
    put there by hand, or by an older octomon — are read). With ``index`` too, the total
    octomon recorded after its last change to the directory (:func:`record_total`) is the
    answer while the directory and the index are as they were then: one ``stat`` and one
    small read instead of listing thousands of files."""
    if index:
        recorded = _recorded_total(directory)
        if recorded is not None:
            return recorded
    return _count(directory, suffix, index)


def _count(directory: Path, suffix: str, index: bool) -> int:
    try:
        names = [n for n in os.listdir(directory) if n.endswith(suffix)]  # (no stat each)
    except OSError:
        return 0
    known = _indexed_lines(directory) if index else {}
    count = 0
    for name in names:
        kept = known.get(name)
        if kept is not None:  # octomon writes a set-aside file whole, once, and never edits it
            count += int(kept)
        elif name not in (COUNTS, TOTAL):
            count += _count_file(os.path.join(directory, name))  # (0 for a directory)
    return count


def _count_file(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    count = 0
    try:
        last = b"\n"
        while data := os.read(fd, BLOCK):
            count += data.count(b"\n")
            last = data[-1:]
        count += last != b"\n"
    except OSError:
        return 0
    finally:
        os.close(fd)
    return count


_INDEX_LINE = re.compile(r"^(\S+) \d+ (\d+)$", re.MULTILINE)


def _indexed_lines(directory: Path) -> dict[str, str]:
    """``.counts`` as {name: lines} (the digits, matched in one pass: thousands of entries
    are read when the directory changed); a damaged line is ignored (that file is read)."""
    try:
        text = (directory / COUNTS).read_bytes().decode("utf-8", "replace")
    except OSError:
        return {}
    return dict(_INDEX_LINE.findall(text))


def _read_counts(directory: Path) -> dict[str, tuple[int, int]]:
    """``.counts`` as {name: (size, lines)}; a damaged line is ignored (that file is read)."""
    try:
        text = (directory / COUNTS).read_bytes().decode("utf-8", "replace")
    except OSError:
        return {}
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


TOTAL = ".total"  # rejected/.total: "<dir mtime_ns> <.counts size> <lines>" (see below)


def _identity(directory: Path) -> str:
    """The directory's modification time and the index's size: a file added or removed
    changes the first, each file octomon sets aside the second (even within one tick of a
    coarse filesystem clock)."""
    try:
        counts = os.stat(directory / COUNTS).st_size
    except FileNotFoundError:
        counts = 0
    return f"{os.stat(directory).st_mtime_ns} {counts}"


def _recorded_total(directory: Path) -> int | None:
    try:
        recorded = (directory / TOTAL).read_bytes().decode("ascii", "replace").split()
        if (
            len(recorded) == 3
            and recorded[2].isdigit()
            and " ".join(recorded[:2]) == _identity(directory)
        ):
            return int(recorded[2])
    except OSError:
        pass
    return None


def record_total(directory: Path, suffix: str = ".jsonl") -> None:
    """After octomon changed ``directory``: record its lines with its identity (best effort;
    a change by hand or by another process afterwards simply makes readers count again)."""
    path = directory / TOTAL
    try:
        if not path.exists():
            overwrite(path, b"")  # created first: creating it changes the directory
        before = _identity(directory)
        total = _count(directory, suffix, index=True)
        if _identity(directory) == before:
            overwrite(path, f"{before} {total}\n".encode())
    except OSError:
        pass


def note_count(directory: Path, name: str, body: bytes) -> None:
    """Add a file just written whole to ``directory/.counts`` (best effort: without it the
    file is simply read when counted). Past 64 KiB the index is rewritten with only the
    files still there."""
    lines = body.count(b"\n")
    entry = f"{name} {len(body)} {lines}\n".encode()
    path = directory / COUNTS
    try:
        if path.exists() and path.stat().st_size > 64 * 1024:
            present = {e.name for e in os.scandir(directory)}
            kept = "".join(
                f"{n} {s} {c}\n" for n, (s, c) in _read_counts(directory).items() if n in present
            )
            atomic_write(path, kept.encode(), 0o600, durable=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, entry)
        finally:
            os.close(fd)
    except OSError:
        return
    record_total(directory)
