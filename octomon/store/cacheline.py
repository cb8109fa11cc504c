"""The canonical cache line (SPEC §4.5), recognised by its bytes.

The writer (:meth:`octomon.readings.Reading.to_json`) always writes one compact JSON object
per line, keys in SPEC order, numbers as JSON floats, optional fields only when known::

    {"read_at":"2026-11-27T14:00:10Z","device_id":"00-11-…","consumption_delta":0.0005,…}

and a gas line has ``"fuel":"gas"`` right after ``device_id``. Whoever wrote a file (an older
octomon, a restored backup), a line in this layout can be taken by its bytes
(``octomon.store.transcode``); anything else is parsed in full. What is checked here is a
line's *shape* (:data:`ZEROS`).

Standard library only, and nothing of octomon's: the fast path imports it.
"""

from __future__ import annotations

import re

DIGITS = b"0123456789"
# Every digit → 0: a line's *shape*. A day of readings has about two hundred shapes (how
# many digits each number has), a whole cache a few hundred; each is judged once.
ZEROS = bytes.maketrans(DIGITS, b"0" * 10)
PREFIX = b'{"read_at":"0000-00-00T00:00:00Z","device_id":"'
DAY_RE = re.compile(rb"\d{4}-\d\d-\d\d")
TOD_RE = re.compile(rb"([01]\d|2[0-3])=([0-5]\d)=([0-5]\d)")
DEVICE_RE = re.compile(rb"[A-Za-z0-9_.\-]+")  # passes through JSON and line protocol as is
_NUMBER_SHAPE = re.compile(rb"-?0+(\.0+)?(e[-+]?0+)?")  # a JSON number, its digits zeroed
_MAX_SHAPES = 20_000  # judged shapes kept (a cache holds a few hundred)

# A canonical gas line (SPEC §4.5): ``"fuel":"gas"`` right after ``device_id``. A day file
# holds 48 of them among 8,640 electricity lines: they are taken out of the block (one C-level
# search per gas line), and each fuel's lines go through the fast path as a block of their own.
GAS_MARK = b'","fuel":"gas",'


class Shapes(dict[bytes, bool]):
    """Is the fields part of a line's shape (after the device, every digit a 0:
    ``"demand":0.0,"consumption":0000.0000}``) canonical? Known fields, quoted, each at
    most once and in SPEC order, each a JSON number, then the closing brace. A digit in a
    name shows as a 0 and makes it unknown. Which digits stand where is not checked (a
    hand-edited ``00.5`` is sent as written: InfluxDB takes it as 0.5, or refuses it and
    only it is set aside)."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.order = {name.encode(): i for i, name in enumerate(fields)}

    def __missing__(self, key: bytes) -> bool:
        if len(self) >= _MAX_SHAPES:
            self.clear()
        last = -1
        ok = key.endswith(b"}") and len(key) > 1
        for part in key[:-1].split(b",") if ok else ():
            name, colon, value = part.partition(b":")
            quoted = len(name) > 2 and name[:1] == name[-1:] == b'"'
            order = self.order.get(name[1:-1], -1) if quoted else -1
            if not colon or order <= last or _NUMBER_SHAPE.fullmatch(value) is None:
                ok = False
                break
            last = order
        self[key] = ok
        return ok
