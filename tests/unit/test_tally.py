"""The Home Mini tally (SPEC §10): distinct readings per half-hour, counted once."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octomon.readings import Reading
from octomon.state import StateStore
from octomon.store.tally import FLUSH_READINGS, SLOTS, Tally, TallyRecorder, half_hour_of

UTC = timezone.utc
T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
DEVICE = "00-11-22-33-44-55-66-77"
STEPS = 6 * SLOTS  # three hours of 10-s steps: six half-hours


def reading(step: int) -> Reading:
    """The reading of one 10-s step; the same step always has the same value (the API's)."""
    wh = (step * 7919) % 23  # whole Wh, zeros included
    return Reading(T0 + timedelta(seconds=10 * step), DEVICE, consumption_delta=wh / 1000)


def expected(steps: set[int]) -> dict[datetime, tuple[int, int]]:
    out: dict[datetime, tuple[int, int]] = {}
    for s in steps:
        r = reading(s)
        n, wh = out.get(half_hour_of(r.read_at), (0, 0))
        out[half_hour_of(r.read_at)] = (n + 1, wh + (s * 7919) % 23)
    return out


def observed(tally: Tally) -> dict[datetime, tuple[int, int]]:
    return {hh.start: (hh.readings, hh.micro_kwh // 1000) for hh in tally.load().half_hours()}


spans = st.tuples(st.integers(0, STEPS - 1), st.integers(1, 400))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.integers(0, 1), spans),  # run or backfill, by process
        st.tuples(st.just("restart"), st.integers(0, 1), spans),
        st.tuples(st.just("gaps"), st.integers(0, 1), spans),  # a window with holes in it
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_any_sequence_of_stores_gives_the_tally_of_the_distinct_readings(
    ops: list[tuple[str, int, tuple[int, int]]],
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        cache = Path(d)
        # two processes (a daemon and a backfill), each with its own recorder on one file
        recorders = [TallyRecorder(Tally(cache)), TallyRecorder(Tally(cache))]
        stored: set[int] = set()
        for kind, who, (start, length) in ops:
            steps = list(range(start, min(STEPS, start + length)))
            if kind == "restart":
                recorders[who] = TallyRecorder(Tally(cache))  # reloads from disk
            if kind == "gaps":
                steps = [s for s in steps if s % 7 not in (2, 3)]
            recorders[who].stored([reading(s) for s in steps])
            stored.update(steps)
        assert observed(Tally(cache)) == expected(stored)


def test_a_reading_stored_twice_counts_once_and_the_file_is_private(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    batch = [reading(s) for s in range(0, 200)]
    assert tally.record(batch) == 200
    assert tally.record(batch[150:]) == 0
    hh = tally.load().half_hour(T0)
    assert hh is not None and hh.readings == SLOTS and hh.coverage == 1.0
    nxt = tally.load().half_hour(T0 + timedelta(minutes=30))
    assert nxt is not None and nxt.readings == 20
    assert nxt.missing_slots() == list(range(20, SLOTS))
    assert stat.S_IMODE(os.stat(tmp_path / "tally.json").st_mode) == 0o600


def test_35_days_are_kept(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    tally.record([reading(0)])
    later = Reading(T0 + timedelta(days=35, minutes=30), DEVICE, consumption_delta=0.001)
    tally.record([later])
    starts = [hh.start for hh in tally.load().half_hours()]
    assert starts == [T0 + timedelta(days=35, minutes=30)]
    tally.record([Reading(T0 + timedelta(days=1), DEVICE, consumption_delta=0.002)])
    assert len(list(tally.load().half_hours())) == 2


def test_a_full_disk_keeps_the_count_for_the_next_store(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    recorder = TallyRecorder(tally)
    real = tally.record
    failing = [True]

    def record(readings: list[Reading]) -> int:
        if failing[0]:
            raise OSError(28, "No space left on device")
        return real(readings)

    tally.record = record  # type: ignore[method-assign]
    recorder.stored([reading(s) for s in range(10)])
    assert not (tmp_path / "tally.json").exists()
    failing[0] = False
    recorder.stored([reading(s) for s in range(10, 15)])
    assert observed(Tally(tmp_path)) == expected(set(range(15)))


def test_a_damaged_file_starts_again(tmp_path: Path) -> None:
    (tmp_path / "tally.json").write_text("{not json")
    tally = Tally(tmp_path)
    assert list(tally.load().half_hours()) == []
    tally.record([reading(3)])
    obj = json.loads((tmp_path / "tally.json").read_text())
    assert obj["version"] == 1 and list(obj["electricity"]) == ["2026-11-30T23:00:00Z"]


def _record_steps(cache: str, steps: list[int]) -> None:
    tally = Tally(Path(cache))
    for s in steps:  # one store per reading: as many read-modify-writes as possible
        tally.record([reading(s)])


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    a = list(range(0, 300))
    b = list(range(150, 450))  # overlapping: a daemon and a backfill storing the same span
    procs = [ctx.Process(target=_record_steps, args=(str(tmp_path), s)) for s in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert observed(Tally(tmp_path)) == expected(set(a) | set(b))


# --- writes proportional to what changed (SPEC §4.9) ---------------------------------------


DAY_STEPS = 24 * 360  # 10-s steps in a day


def day_of_readings(day: int) -> list[Reading]:
    start = T0 - timedelta(days=35 - day)
    return [
        Reading(start + timedelta(seconds=10 * s), DEVICE, consumption_delta=(s % 23) / 1000)
        for s in range(DAY_STEPS)
    ]


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """Bytes written with os.write into ``tmp_path``, per file name (the real writes)."""
    counts: dict[str, int] = {}
    real = os.write

    def counting(fd: int, data: Any) -> int:
        n = real(fd, data)
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return n
        if path.startswith(str(tmp_path)):
            name = Path(path).name
            name = name.split(".", 2)[1] if name.startswith(".") else name  # .tally.json.1.tmp
            counts[name] = counts.get(name, 0) + n
        return n

    monkeypatch.setattr(os, "write", counting)
    return counts


def test_a_storing_cycle_writes_bytes_not_the_whole_35_day_tally(
    tmp_path: Path, written: dict[str, int]
) -> None:
    """The daemon's cycle: a few readings stored, the state written (with the cursor). A 35-day
    tally is about 130 KB; 60 cycles must write less than one copy of it, all files together
    (before: the whole file, fsync'ed, every cycle — 60 x 130 KB)."""
    tally = Tally(tmp_path)
    for day in range(35):
        tally.record(day_of_readings(day))
    assert (tmp_path / "tally.json").stat().st_size > 100_000
    store = StateStore(tmp_path)
    recorder = TallyRecorder(Tally(tmp_path), carry=store)
    written.clear()
    for cycle in range(60):  # an hour at 60-s polls: six new readings each
        batch = [reading(STEPS + cycle * 6 + i) for i in range(6)]
        recorder.stored(batch)
        store.update(lambda s, at=batch[-1].read_at: setattr(s, "cursor", at))
    total = sum(written.values())
    assert total < 128 * 1024, written
    assert written.get("tally.json", 0) == 0, written  # the base was not rewritten
    # and every reading is counted, once
    hour = {
        hh.start: hh.readings
        for hh in Tally(tmp_path).load().half_hours(since=T0 + timedelta(hours=3))
    }
    assert sum(hour.values()) == 360


def test_what_the_daemon_holds_rides_in_state_json_and_survives_a_kill(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    recorder = TallyRecorder(Tally(tmp_path), carry=store)
    recorder.stored([reading(s) for s in range(10)])
    assert not (tmp_path / "tally.json").exists()  # held, not yet appended
    store.update(lambda s: setattr(s, "cursor", reading(9).read_at))  # the cycle's one write
    assert observed(Tally(tmp_path)) == expected(set(range(10)))  # readers see it
    # kill -9: the next life takes the dead one's part at its first state write
    store2 = StateStore(tmp_path)
    again = TallyRecorder(Tally(tmp_path), carry=store2)
    again.stored([reading(s) for s in range(8, 12)])  # the overlap, fetched again
    store2.update(lambda s: None)
    assert observed(Tally(tmp_path)) == expected(set(range(12)))
    again.stored([reading(s) for s in range(12, 12 + FLUSH_READINGS)])  # enough: appended
    store2.update(lambda s: None)
    assert StateStore(tmp_path).load().tally_pending == {}
    assert observed(Tally(tmp_path)) == expected(set(range(12 + FLUSH_READINGS)))
    assert (tmp_path / "tally.json").exists()


def test_a_torn_journal_line_is_skipped_and_the_next_append_starts_a_new_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tally = Tally(tmp_path)
    tally.record([reading(0)])  # the base
    tally.record([reading(1), reading(2)])  # a journal line
    with open(tmp_path / "tally.journal", "ab") as f:
        f.write(b'["electricity",17649')  # a crash mid-append
    assert Tally(tmp_path).record([reading(3)]) == 1
    with caplog.at_level(logging.WARNING):
        assert observed(Tally(tmp_path)) == expected({0, 1, 2, 3})
    assert sum("tally.journal" in r.getMessage() for r in caplog.records) == 1


def test_the_journal_is_folded_into_the_base_when_it_grows(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    tally.record([reading(0)])
    step = 1
    while (tmp_path / "tally.journal").exists() or step == 1:
        tally.record([reading(step), reading(step + 2)])  # two runs: two lines
        step += 3
        assert step < 20_000
    assert os.path.getsize(tmp_path / "tally.json") > 0
    stored = {0} | {s for n in range(1, step, 3) for s in (n, n + 2)}
    assert observed(Tally(tmp_path)) == expected(stored)
    assert step > 300  # not at every store


def test_a_damaged_base_is_set_aside_and_the_journal_still_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tally = Tally(tmp_path)
    tally.record([reading(0)])
    tally.record([reading(1)])  # journal
    obj = json.loads((tmp_path / "tally.json").read_text())
    obj["electricity"]["2026-11-30T23:00:00Z"][0] = 7  # a bitmap as a number
    (tmp_path / "tally.json").write_text(json.dumps(obj))
    with caplog.at_level(logging.WARNING):
        assert observed(Tally(tmp_path)) == expected({1})
    (copy,) = tmp_path.glob("tally.json.corrupt-*")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and copy.name in said[0]
    assert "1 day of the Home Mini tally (2026-11-30)" in said[0]
