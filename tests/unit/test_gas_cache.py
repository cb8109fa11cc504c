"""Gas lines in the cache (SPEC §4.5, §11): appended, counted, synced to gas_consumption by
the same path as electricity (whose fast path keeps its speed beside them), exported."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octomon.readings import FIELDS, GAS_FIELDS, GasReading, Reading
from octomon.store import transcode
from octomon.store.cache import Cache
from octomon.store.lines import parse_line
from octomon.store.sync import sync
from octomon.store.transcode import convert
from tests.helpers.cli import invoke
from tests.helpers.fakes import FakeSink

T0 = datetime(2026, 11, 27, 0, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"
GAS_DEV = "00-11-22-33-44-55-66-88"


def elec(i: int) -> Reading:
    return Reading(T0 + timedelta(seconds=10 * i), DEV, 0.0005, 0.2, 0.0001, 5038.4145 + i / 1e4)


def gas(i: int) -> GasReading:
    return GasReading(
        T0 + timedelta(minutes=30 * i), GAS_DEV, 1.957, 180609.829 + i, 0.11429, 0.12, 0.17438
    )


def day(n_elec: int = 8640) -> list[Reading | GasReading]:
    """A day file's readings: 10-s electricity and 48 gas half-hours, in time order."""
    rows: list[Reading | GasReading] = [elec(i) for i in range(n_elec)]
    rows += [gas(i) for i in range(48)]
    rows.sort(key=lambda r: r.read_at)
    return rows


def test_a_gas_line_is_canonical_with_fuel_after_device_id_and_reads_back(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([elec(0), gas(0)])
    lines = (tmp_path / "cache_2026-11-27.jsonl").read_bytes().splitlines()
    assert lines[1].startswith(b'{"read_at":"2026-11-27T00:00:00Z","device_id":"' + GAS_DEV.encode()
                               + b'","fuel":"gas","consumption_delta":1.957,')  # fmt: skip
    assert parse_line(lines[0]) == elec(0) and parse_line(lines[1]) == gas(0)
    assert cache.status().readings == 2


def test_a_block_with_gas_lines_keeps_the_fast_path_for_both_fuels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = day(5000)
    raw = "".join(r.to_json() + "\n" for r in rows).encode()
    slow_calls = []
    real = transcode.slow_line
    monkeypatch.setattr(transcode, "slow_line", lambda b: slow_calls.append(b) or real(b))
    body, count, bad = convert(raw, 0)
    assert (count, bad) == (len(rows), [])
    assert slow_calls == []  # the gas lines are a block of their own on the fast path
    assert sorted(body.split(b"\n")) == sorted(r.to_line_protocol().encode() for r in rows)
    assert sum(1 for x in body.split(b"\n") if x.startswith(b"gas_consumption,")) == 48


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=30), st.integers(0, 5))
def test_any_mix_converts_like_the_full_parse(elec_at: list[int], n_gas: int) -> None:
    rows = sorted(
        [elec(i) for i in elec_at] + [gas(i) for i in range(n_gas)], key=lambda r: r.read_at
    )
    raw = "".join(r.to_json() + "\n" for r in rows).encode()
    body, count, bad = convert(raw, 0)
    assert count == len(rows) and bad == []
    assert sorted(body.split(b"\n")) == sorted(r.to_line_protocol().encode() for r in rows)


def test_sync_delivers_gas_to_gas_consumption_and_removes_the_file(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rows = day(2000)
    cache.append(rows)
    sink = FakeSink()
    result = sync(cache, sink)
    assert result.synced == len(rows) and result.left == 0
    assert sorted(sink.lines) == sorted(r.to_line_protocol().encode() for r in rows)
    assert cache.is_empty()


def test_export_csv_has_the_fuel_column_and_line_protocol_gas_consumption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DIR", str(tmp_path))
    Cache(tmp_path).append([elec(0), gas(0)])
    result = invoke("cache", "export", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][-2:] == ["fuel", "volume_delta"]
    assert rows[2] == ["2026-11-27T00:00:00Z", GAS_DEV, "1.957", "", "0.11429", "180609.829",
                       "0.12", "", "gas", "0.17438"]  # fmt: skip
    assert rows[1][-2:] == ["electricity", ""]  # the file's order: the electricity line first
    result = invoke("cache", "export", "--format", "line-protocol")
    assert result.stdout.splitlines() == [elec(0).to_line_protocol(), gas(0).to_line_protocol()]
    assert result.stdout.splitlines()[1].startswith("gas_consumption,device_id=")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def gas_readings(draw: st.DrawFn) -> GasReading:
    names = ("consumption_delta", "consumption", "cost_delta", "cost_delta_with_tax")
    present = draw(st.lists(st.sampled_from([*names, "volume_delta"]), min_size=1, unique=True))
    at = T0 + timedelta(minutes=30 * draw(st.integers(0, 2000)))
    return GasReading(at, GAS_DEV, **{name: draw(finite) for name in present})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=20), st.lists(gas_readings(), min_size=1, max_size=8))
def test_any_gas_values_convert_like_the_full_parse(
    elec_at: list[int], gas_rows: list[GasReading]
) -> None:
    rows = [elec(i) for i in elec_at] + gas_rows
    raw = "".join(r.to_json() + "\n" for r in rows).encode()
    body, count, bad = convert(raw, 0)
    assert count == len(rows) and bad == []
    assert sorted(body.split(b"\n")) == sorted(r.to_line_protocol().encode() for r in rows)


SERIES = {
    f"{m},device_id={d},source=octopus_home_mini".encode()
    for m, d in (("energy_consumption", DEV), ("gas_consumption", GAS_DEV))
}


@settings(max_examples=300, deadline=None)
@given(st.lists(gas_readings(), min_size=1, max_size=5), st.data())
def test_a_mangled_gas_line_is_parsed_in_full(rows: list[GasReading], data: st.DataObject) -> None:
    """Among electricity lines, one gas line with one character changed: every reading the
    full parse finds comes out as it has it; the mangled line, if the full parse finds no
    reading in it, at most with its digits alone changed (sent as written)."""
    lines = [elec(i).to_json() for i in range(3)] + [r.to_json() for r in rows]
    i = data.draw(st.integers(3, len(lines) - 1))
    pos = data.draw(st.integers(0, len(lines[i])))
    junk = data.draw(st.sampled_from(['"', "1", " ", "x", ",", "}", "e", ".", "-", ""]))
    lines[i] = lines[i][:pos] + junk + lines[i][pos + data.draw(st.integers(0, 2)) :]
    raw = "".join(x + "\n" for x in lines).encode()
    body, count, bad = convert(raw, 0)
    want = []
    for x in lines:
        try:
            want.append(parse_line(x.encode()).to_line_protocol().encode())
        except ValueError:
            continue
    got = body.split(b"\n") if body else []
    assert count == len(got) and count + len(bad) == len(lines)
    extra = [x for x in got if x not in want]
    missing = [x for x in want if x not in got]
    assert len(extra) <= 1 and len(missing) <= len(extra)
    for x in extra:  # the mangled line, its layout intact: one known series, known fields
        series, fields, _ = x.rsplit(b" ", 2)
        names = [f.partition(b"=")[0].decode() for f in fields.split(b",")]
        order = GAS_FIELDS if series.startswith(b"gas_consumption,") else FIELDS
        assert series in SERIES and names == [n for n in order if n in names], x
