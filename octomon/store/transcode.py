"""The byte fast path of a sync: cache lines → line protocol.

The fast path (:func:`_fast`) recognises the canonical layout of SPEC §4.5 by its
bytes, whoever wrote the file, and turns a block of such lines into line protocol with a
few whole-block byte operations and C-level maps (no Python code runs per line): the
numbers are copied as written, which for the writer's ``json.dumps(float)`` is Python's
``repr`` of the float, exactly what ``Reading.to_line_protocol`` writes. A block that
does not pass every check is taken line by line, and any line that is not canonical
(another key order, a hand edit, a line with more keys such as ``fuel``) is parsed in
full (``Reading.from_obj``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from operator import add, itemgetter

from octomon.readings import FIELDS, GAS_FIELDS, GAS_MEASUREMENT, MEASUREMENT, SOURCE
from octomon.store.cacheline import (
    DAY_RE,
    DEVICE_RE,
    GAS_MARK,
    PREFIX,
    TOD_RE,
    ZEROS,
    Shapes,
)
from octomon.store.lines import parse_line, split_lines

# After ``translate`` (quotes dropped, ':' → '='), a canonical line reads
#   {read_at=2026-11-27T14=00=10Z,device_id=DEV,consumption_delta=0.0005,…,consumption=5038.4}
# [9:19] is the day, [20:28] the time of day, and after ``device_id=DEV,`` come the fields
# exactly as line protocol wants them. Everything below runs in C (map, set, join,
# translate, count): a Python loop per line would cost more than the whole of it.
_TABLE = bytes.maketrans(b":", b"=")
_SOURCE = b",source=" + SOURCE.encode() + b" "
_DAY = itemgetter(slice(9, 19))
_TOD = itemgetter(slice(20, 28))
_EPOCH = date(1970, 1, 1)


class _Days(dict[bytes, int]):
    def __missing__(self, key: bytes) -> int:
        if DAY_RE.fullmatch(key) is None:
            raise ValueError("not a canonical line")
        value = self[key] = (date.fromisoformat(key.decode()) - _EPOCH).days * 86400
        return value


class _Times(dict[bytes, int]):
    def __missing__(self, key: bytes) -> int:
        m = TOD_RE.fullmatch(key)
        if m is None:
            raise ValueError("not a canonical line")
        h, mi, s = (int(x) for x in m.groups())
        value = self[key] = h * 3600 + mi * 60 + s
        return value


@dataclass(frozen=True)
class _Kind:
    """What a fuel's canonical line has after the device id, and its measurement."""

    after_device: bytes  # from the device id's closing quote to the first field's name
    head: bytes  # the measurement and the comma before the tags
    shapes: Shapes


_DAYS = _Days()
_TIMES = _Times()
_ELECTRICITY = _Kind(b'",', MEASUREMENT.encode() + b",", Shapes(FIELDS))
_GAS = _Kind(b'","fuel":"gas",', GAS_MEASUREMENT.encode() + b",", Shapes(GAS_FIELDS))


def fast_lines(raw: bytes) -> bytes | None:
    """Canonical lines (each ending in a newline) → line protocol; None if not canonical."""
    done = _fast(raw)
    return None if done is None else done[0]


def _fast(raw: bytes, kind: _Kind = _ELECTRICITY) -> tuple[bytes, int] | None:
    """(line protocol, lines) of a block of canonical lines of one device and one fuel,
    else None."""
    if not raw:
        return b"", 0
    if not raw.endswith(b"\n"):
        return None  # the last line has no newline
    t = raw.translate(_TABLE, b'"')
    lines = t.split(b"\n")
    lines.pop()
    n = len(lines)
    first = lines[0]
    comma = first.find(b",", 40)
    if comma < 0 or first[28:40] != b"Z,device_id=" or DEVICE_RE.fullmatch(first[40:comma]) is None:
        return None
    # Every line's shape starts with the read_at and device_id of the first line's shape:
    # the day, the time and the device stand at the same places in every line, and what
    # follows is a canonical fields part.
    prefix = PREFIX + first[40:comma].translate(ZEROS) + kind.after_device
    cut = len(prefix)
    shapes = raw.translate(ZEROS).split(b"\n")
    shapes.pop()
    for shape in set(shapes):
        if shape[:cut] != prefix or not kind.shapes[shape[cut:]]:
            return None
    # … and the one device: ``Z,device_id=DEV,`` stands once in each line (at 28), or the
    # count falls short.
    if t.count(first[28 : comma + 1]) != n:
        return None
    try:
        seconds = map(_TIMES.__getitem__, map(_TOD, lines))
        if t.count(first[:20]) == n:  # one day (a day file's lines are)
            epochs = map(_DAYS[first[9:19]].__add__, seconds)
        else:
            epochs = map(add, map(_DAYS.__getitem__, map(_DAY, lines)), seconds)
        head = (kind.head + first[30:comma] + _SOURCE).replace(b"%", b"%%")
        fields = comma + len(kind.after_device.translate(_TABLE, b'"'))
        # One C-level format for the whole batch: fields and epochs interleaved by slice
        # assignment (zip would make a tuple per line, and the garbage collector would
        # then walk the heap every few batches).
        values: list[bytes | int] = [b""] * (2 * n)
        values[0::2] = map(itemgetter(slice(fields, -1)), lines)
        values[1::2] = epochs
        template = (head + b"%b %d\n") * (n - 1) + head + b"%b %d"
        return template % tuple(values), n
    except (ValueError, KeyError):
        return None


def slow_line(raw: bytes) -> bytes:
    """One line of any layout → line protocol (ValueError if it is not a reading)."""
    return parse_line(raw).to_line_protocol().encode()


def convert(raw: bytes, start: int) -> tuple[bytes, int, list[tuple[int, bytes, str]]]:
    """Source bytes → (line protocol, readings, bad lines as (offset, line, reason))."""
    at = raw.find(GAS_MARK)
    done = _fast(raw) if at < 0 else _fast_with_gas(raw, at)
    if done is not None:
        return done[0], done[1], []
    parts: list[bytes] = []
    bad: list[tuple[int, bytes, str]] = []
    offset = start
    for line in split_lines(raw):
        here = offset
        offset += len(line)
        if not line.strip():
            continue
        one = _fast(line) if line.endswith(b"\n") else None
        if one is not None:
            parts.append(one[0])
            continue
        try:
            parts.append(slow_line(line))
        except ValueError as exc:
            bad.append((here, line, str(exc) or "unreadable"))
    return b"\n".join(parts), len(parts), bad


def _fast_with_gas(raw: bytes, at: int) -> tuple[bytes, int] | None:
    """:func:`_fast` for a block that also holds gas lines (the first mark ``at``); None if
    not all of them are canonical.

    The gas lines are found by a C-level search for their mark (no Python code per
    electricity line) and cut out: what is left is one block of electricity again, the gas
    lines another."""
    if not raw.endswith(b"\n"):
        return None  # the last line has no newline
    pieces: list[bytes] = []
    gas: list[bytes] = []
    pos = 0
    while at >= 0:
        start = raw.rfind(b"\n", 0, at) + 1
        end = raw.index(b"\n", at) + 1
        pieces.append(raw[pos:start])
        gas.append(raw[start:end])
        pos = end
        at = raw.find(GAS_MARK, end)
    pieces.append(raw[pos:])
    parts: list[bytes] = []
    count = 0
    for block, kind in ((b"".join(pieces), _ELECTRICITY), (b"".join(gas), _GAS)):
        if block:
            done = _fast(block, kind)
            if done is None:
                return None  # the whole block is taken line by line
            parts.append(done[0])
            count += done[1]
    return b"\n".join(parts), count


__all__ = ["convert", "fast_lines", "slow_line"]
