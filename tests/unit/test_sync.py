"""cache → sink: the fast path against the full parse, and the sync rules on a fake sink."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octomon.errors import InfluxConfigError, InfluxRefused, InfluxUnavailable
from octomon.readings import FIELDS, Reading
from octomon.store.cache import Cache
from octomon.store.lines import parse_line
from octomon.store.sync import sync
from octomon.store.transcode import convert, fast_lines, slow_line

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"


def reading(i: int, dev: str = DEV, **kw: float) -> Reading:
    values = {
        "consumption_delta": 0.0005,
        "demand": 0.2,
        "cost_delta": 0.0001,
        "consumption": 5038.4145 + i / 10000,
    }
    values.update(kw)
    return Reading(T0 + timedelta(seconds=10 * i), dev, **values)


def same_values(line: bytes) -> bytes:
    """A line-protocol line with its numbers as Python writes them (``1530`` = ``1530.0``)."""
    series, fields, stamp = line.rsplit(b" ", 2)
    try:
        parts = [(k, _same_number(v)) for k, v in (f.split(b"=") for f in fields.split(b","))]
    except ValueError:
        return line
    return b" ".join([series, b",".join(k + b"=" + v for k, v in parts), stamp])


def _same_number(text: bytes) -> bytes:
    """``1530`` and ``1530.0`` alike; a number out of a float's range (a mangled exponent,
    ``2e1117``) as written, which is how the fast path sends it."""
    value = float(text)
    return repr(value).encode() if math.isfinite(value) else text


def slow(raw: bytes) -> bytes:
    return b"\n".join(slow_line(x) for x in raw.splitlines())


# --- the fast path is the full parse, textually -------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
devices = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='",:=\\'),
    min_size=1,
    max_size=30,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 12, 31),
    timezones=st.just(timezone.utc),
).map(lambda d: d.replace(microsecond=0))


@st.composite
def readings_(draw: st.DrawFn) -> Reading:
    present = draw(st.lists(st.sampled_from(FIELDS), min_size=1, unique=True))
    values = {name: draw(finite) for name in present}
    return Reading(draw(times), draw(devices), **values)


@settings(max_examples=300, deadline=None)
@given(st.lists(readings_(), min_size=1, max_size=20))
def test_fast_path_equals_full_parse_for_any_canonical_lines(rs: list[Reading]) -> None:
    raw = "".join(r.to_json() + "\n" for r in rs).encode()
    expected = "\n".join(r.to_line_protocol() for r in rs).encode()
    assert convert(raw, 0) == (expected, len(rs), [])
    assert slow(raw) == expected
    fast = fast_lines(raw)
    assert fast is None or fast == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(readings_(), min_size=1, max_size=20))
def test_any_canonical_block_of_one_plain_device_takes_the_fast_path(rs: list[Reading]) -> None:
    """Recognised by the bytes alone: no side file, whoever wrote them."""
    rs = [r._replace(device_id="00-11-AA-33") for r in rs]
    raw = "".join(r.to_json() + "\n" for r in rs).encode()
    assert fast_lines(raw) == "\n".join(r.to_line_protocol() for r in rs).encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(readings_(), min_size=1, max_size=5), st.data())
def test_anything_else_is_parsed_in_full(rs: list[Reading], data: st.DataObject) -> None:
    """Mangled lines come out as the full parse has them — except a number whose digits
    alone were mangled (``00.5``, ``5.``), which is sent as written for InfluxDB to judge."""
    lines = [r.to_json() for r in rs]
    i = data.draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    pos = data.draw(st.integers(0, len(line)))
    junk = data.draw(st.sampled_from(['"', "1", " ", "x", "\\", ",", "}", "e", ".", "-", ""]))
    cut = data.draw(st.integers(0, 2))
    lines[i] = line[:pos] + junk + line[pos + cut :]
    raw = "".join(x + "\n" for x in lines).encode()
    body, count, bad = convert(raw, 0)
    good = []
    for x in lines:
        try:
            good.append(parse_line(x.encode()).to_line_protocol())
        except ValueError:
            continue
    got = [same_values(x) for x in body.split(b"\n")] if body else []
    want = {same_values(g.encode()) for g in good}
    extra = sorted(set(got) - want)
    assert want <= set(got)  # every reading the full parse finds, to the same values
    for line in extra:  # … and at most the mangled one besides, its layout intact
        assert line.startswith(b"energy_consumption,device_id=")
        assert re.fullmatch(rb"[a-z_]+=[-0-9.e+]+(,[a-z_]+=[-0-9.e+]+)*", line.split(b" ")[1])
        names = [f.partition(b"=")[0].decode() for f in line.split(b" ")[1].split(b",")]
        assert names == [n for n in FIELDS if n in names], line  # known, in order, once
    assert len(extra) <= 1 and count == len(got)
    assert count + len(bad) == len(lines) - sum(not x.strip() for x in lines)


def test_fast_path_examples() -> None:
    rs = [reading(0), reading(1, cost_delta=1.5e-05), reading(2, export=-0.0)]
    raw = "".join(r.to_json() + "\n" for r in rs).encode()
    out = fast_lines(raw)
    assert out is not None
    assert out.splitlines()[0] == (
        b"energy_consumption,device_id=00-11-22-33-44-55-66-77,source=octopus_home_mini "
        b"consumption_delta=0.0005,demand=0.2,cost_delta=0.0001,consumption=5038.4145 1795788000"
    )
    assert b"cost_delta=1.5e-05" in out.splitlines()[1]
    assert out == slow(raw)
    assert fast_lines(b"") == b""
    assert fast_lines(raw[:-1]) is None  # not ending in a newline
    assert fast_lines(raw.splitlines()[0]) is None
    assert fast_lines(b"garbage\n") is None
    # Two devices in one block, or a line with more keys (gas: "fuel"), or a number JSON
    # would not have: not the fast path, and convert() still gets them all right.
    other = reading(3, dev="other").to_json().encode() + b"\n"
    gas = other.replace(b'"device_id":"other",', b'"device_id":"other","fuel":"gas",')
    for odd in (other, gas, other.replace(b'"demand":0.2', b'"demand":00.2')):
        assert fast_lines(raw + odd) is None
        assert convert(raw + odd, 0)[0].split(b"\n")[:3] == out.split(b"\n")


def test_the_fast_path_sees_every_digit_out_of_place() -> None:
    """Shapes zero the digits but keep them: a digit in a name, a seventh digit of the
    time, or another device of the same length is seen, and the full parse has the line."""
    rs = [reading(0), reading(1), reading(2)]
    lines = [r.to_json().encode() + b"\n" for r in rs]
    odd = {
        "a digit in a field name": lines[1].replace(b'"demand"', b'"dem1and"'),
        "a digit ending a field name": lines[1].replace(b'"demand"', b'"demand1"'),
        "a digit in read_at": lines[1].replace(b'"read_at"', b'"read_at2"'),
        "a digit in device_id": lines[1].replace(b'"device_id"', b'"device_id0"'),
        "a seventh digit of the time": lines[1].replace(b':10Z"', b':100Z"'),
        "another device, as long": lines[1].replace(DEV.encode(), DEV[::-1].encode()),
        "a number with no digit before its point": lines[1].replace(b":0.2,", b":.2,"),
    }
    for why, line in odd.items():
        raw = lines[0] + line + lines[2]
        assert fast_lines(raw) is None, why
        body, count, bad = convert(raw, 0)
        want = [rs[0].to_line_protocol().encode()]
        try:
            want.append(parse_line(line).to_line_protocol().encode())
        except ValueError:
            assert len(bad) == 1, why
        want.append(rs[2].to_line_protocol().encode())
        assert body.split(b"\n") == want and count == len(want), why


def test_convert_mixes_canonical_and_other_lines() -> None:
    head = "".join(reading(i).to_json() + "\n" for i in range(3)).encode()
    tail = b'\n{"read_at":"2026-11-27T14:00:30Z","device_id":"d","demand":"0.5"}\nxx\n{"read_at'
    body, count, bad = convert(head + tail, 1000)
    assert count == 4
    assert (
        body.splitlines()[-1]
        == b"energy_consumption,device_id=d,source=octopus_home_mini demand=0.5 1795788030"
    )
    assert [(o, reason.split(" ")[0]) for o, _, reason in bad] == [
        (1000 + len(head) + len(tail) - 12, "not"),
        (1000 + len(head) + len(tail) - 9, "not"),
    ]


# --- sync on a fake sink --------------------------------------------------------------------


class FakeSink:
    """Records accepted line protocol; ``answer`` decides each request's fate."""

    def __init__(self, answer: Callable[[bytes], Exception | None] | None = None) -> None:
        self.answer = answer or (lambda body: None)
        self.lines: list[bytes] = []
        self.requests = 0

    def deliver(self, body: bytes) -> None:
        self.requests += 1
        error = self.answer(body)
        if error is not None:
            raise error
        self.lines.extend(body.splitlines())

    def write_lines(self, body: bytes | str, count: int) -> None:
        self.deliver(body.encode() if isinstance(body, str) else body)

    def stamps(self) -> list[int]:
        return [int(x.rsplit(b" ", 1)[1]) for x in self.lines]


def fill(tmp: Path, n: int, start: int = 0) -> Cache:
    cache = Cache(tmp)
    cache.append([reading(i) for i in range(start, start + n)])
    return cache


def test_sync_delivers_oldest_first_and_deletes_what_was_acknowledged(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([reading(9000 + i) for i in range(3)])  # next day first, on purpose
    cache.append([reading(i) for i in range(3)])
    sink = FakeSink()
    seen: list[int] = []
    result = sync(cache, sink, batch_size=2, progress=seen.append)  # type: ignore[arg-type]
    assert result.synced == 6 and result.left == 0 and result.error is None
    assert result.files_done == 2 and cache.files() == []
    assert sink.stamps() == sorted(sink.stamps())  # oldest day first
    assert sum(seen) == 6
    assert sink.requests == 4  # batches of 2, per file


def test_unavailable_stops_and_leaves_the_file_whole(tmp_path: Path) -> None:
    cache = fill(tmp_path, 10)
    before = cache.files()[0].read_bytes()
    calls = {"n": 0}

    def answer(body: bytes) -> Exception | None:
        calls["n"] += 1
        return InfluxUnavailable("down", retry_after=7.0) if calls["n"] == 2 else None

    result = sync(cache, FakeSink(answer), batch_size=4)  # type: ignore[arg-type]
    assert isinstance(result.error, InfluxUnavailable) and result.error.retry_after == 7.0
    assert result.synced == 4 and result.left == 10  # the file stays whole
    assert cache.files()[0].read_bytes() == before
    # The next sync sends the file again from its start (harmless: one point per time).
    sink = FakeSink()
    result = sync(cache, sink, batch_size=4)  # type: ignore[arg-type]
    assert result.synced == 10 and result.left == 0 and len(set(sink.stamps())) == 10


def test_config_error_stops_too(tmp_path: Path) -> None:
    cache = fill(tmp_path, 3)
    result = sync(cache, FakeSink(lambda b: InfluxConfigError("no", cause="token", status=401)))  # type: ignore[arg-type]
    assert isinstance(result.error, InfluxConfigError) and result.synced == 0 and result.left == 3


def test_max_readings_slices_end_at_a_file_boundary(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for day in range(3):  # three day files of 6 readings
        cache.append([reading(8640 * day + i) for i in range(6)])
    sink = FakeSink()
    lefts = []
    while True:
        result = sync(cache, sink, batch_size=4, max_readings=7)  # type: ignore[arg-type]
        lefts.append(result.left)
        if result.left == 0:
            break
    assert len(sink.lines) == 18 and len(set(sink.stamps())) == 18  # nothing sent twice
    assert lefts == [6, 0]  # 12 (two files: the second was begun), then 6


def test_a_stop_request_ends_the_sync_between_batches(tmp_path: Path) -> None:
    cache = fill(tmp_path, 20)
    sink = FakeSink()
    result = sync(cache, sink, batch_size=5, stop=lambda: sink.requests >= 2)  # type: ignore[arg-type]
    # Stopped between batches (the one in flight when the request came is still answered).
    assert result.stopped and result.synced in (10, 15) and result.left == 20
    assert cache.files() != []  # the file stays whole for the next sync
    result = sync(cache, FakeSink())  # type: ignore[arg-type]
    assert result.synced == 20 and result.left == 0


def test_a_refused_batch_is_split_until_only_the_bad_reading_is_set_aside(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rs = [reading(i) for i in range(8)]
    rs[5] = reading(5, demand=666.0)
    cache.append(rs)

    def answer(body: bytes) -> Exception | None:
        if b"demand=666.0" in body:
            return InfluxRefused("refused", 400, "unable to parse: invalid boolean")
        return None

    sink = FakeSink(answer)
    result = sync(cache, sink, batch_size=8)  # type: ignore[arg-type]
    # 8 refused → 4 taken + 4 refused → 2 refused + 2 taken → 1 taken + 1 refused alone.
    assert result.synced == 7 and result.rejected == 1 and result.left == 0
    assert isinstance(result.error, InfluxRefused)
    assert sink.requests == 7
    rejected = list((tmp_path / "rejected").glob("rejected_*.jsonl"))
    assert len(rejected) == 1
    assert rejected[0].read_text().splitlines() == [rs[5].to_json()]
    assert "invalid boolean" in rejected[0].with_suffix(".txt").read_text()
    assert cache.files() == [] and cache.status().rejected == 1


def test_bad_lines_are_quarantined_and_never_block(tmp_path: Path) -> None:
    cache = fill(tmp_path, 3)
    path = cache.files()[0]
    good = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(
        good[0] + b"\x00\x00garbage\n" + good[1] + good[2] + b'{"read_at":"2026-11-27T14:0'
    )
    sink = FakeSink()
    result = sync(cache, sink)  # type: ignore[arg-type]
    assert result.synced == 3 and result.quarantined == 2 and result.left == 0
    assert cache.files() == []
    records = [
        json.loads(x) for x in (tmp_path / "quarantine" / path.name).read_text().splitlines()
    ]
    assert [r["line"] for r in records] == ["\x00\x00garbage", '{"read_at":"2026-11-27T14:0']
    assert cache.status().quarantined == 2


def test_lines_appended_during_a_sync_are_not_deleted(tmp_path: Path) -> None:
    cache = fill(tmp_path, 4)
    appended = []

    def answer(body: bytes) -> Exception | None:
        if not appended:  # another process appends while the batch is on the wire
            appended.append(cache.append([reading(100)]))
        return None

    sink = FakeSink(answer)
    result = sync(cache, sink)  # type: ignore[arg-type]
    assert result.synced == 4 and result.files_done == 0 and result.left == 1
    result = sync(cache, sink)  # type: ignore[arg-type]
    assert result.synced == 5 and result.files_done == 1 and result.left == 0  # sent again
    assert len(set(sink.stamps())) == 5


def test_nothing_to_do(tmp_path: Path) -> None:
    result = sync(Cache(tmp_path / "none"), FakeSink())  # type: ignore[arg-type]
    assert (result.synced, result.left, result.error, result.files_done) == (0, 0, None, 0)
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("value", [1e-05, 1.5e16, -0.25, 0.1 + 0.2, 5e-324, 1.7976931348623157e308])
def test_awkward_floats_round_trip(value: float) -> None:
    r = reading(0, demand=value)
    raw = (r.to_json() + "\n").encode()
    assert fast_lines(raw) == r.to_line_protocol().encode() == slow(raw)
    assert math.isfinite(value)


def test_block_reads_respect_the_batch_size_whatever_the_line_lengths(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rs = []
    for i in range(2000):  # lines of very different lengths, in runs
        if (i // 300) % 2:
            rs.append(Reading(T0 + timedelta(seconds=10 * i), "d", demand=0.5))
        else:
            rs.append(reading(i, cost_delta_with_tax=0.000131, export=1234.5678))
    cache.append(rs)
    sizes: list[int] = []

    def answer(body: bytes) -> Exception | None:
        sizes.append(len(body.splitlines()))
        return None

    sink = FakeSink(answer)
    result = sync(cache, sink, batch_size=50)  # type: ignore[arg-type]
    assert result.synced == 2000 and result.left == 0
    assert max(sizes) == 50 and sum(sizes) == 2000
    assert [x.decode() for x in sink.lines] == [r.to_line_protocol() for r in rs]


def test_a_device_id_line_protocol_cannot_carry_is_quarantined_not_sent() -> None:
    """JSON can escape a newline into the device id; line protocol cannot carry it (it
    would end the point early): the line is bad, not a broken point."""
    good = reading(0).to_json().encode() + b"\n"
    odd = reading(1).to_json().encode().replace(DEV.encode(), b"00\\n11") + b"\n"
    body, count, bad = convert(good + odd, 0)
    assert body == reading(0).to_line_protocol().encode() and count == 1
    assert [(offset, reason) for offset, _, reason in bad] == [
        (len(good), "device_id holds a control character")
    ]
