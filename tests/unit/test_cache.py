"""The durable cache (SPEC §4.5): layout, permissions, torn tails, cap, status, failures."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.errors import CacheBusy, CacheError
from octomon.readings import Reading
from octomon.store import cache as cache_mod
from octomon.store.cache import Cache, CacheStatus

T0 = datetime(2026, 11, 27, 23, 59, 40, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"


def reading(i: int, **kw: float) -> Reading:
    values = {
        "consumption_delta": 0.0005,
        "demand": 0.2 + i / 1000,
        "cost_delta": 0.0001,
        "consumption": 5038.4145 + i / 10000,
    }
    values.update(kw)
    return Reading(T0 + timedelta(seconds=10 * i), DEV, **values)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_day_files_canonical_lines_and_private_modes(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    result = cache.append([reading(i) for i in range(4)])  # 23:59:40 … 00:00:10
    assert result.appended == 4 and result.evicted_files == () and result.evicted_readings == 0
    day1 = tmp_path / "cache" / "cache_2026-11-27.jsonl"
    day2 = tmp_path / "cache" / "cache_2026-11-28.jsonl"
    assert lines(day1) == [reading(0).to_json(), reading(1).to_json()]
    assert lines(day2) == [reading(2).to_json(), reading(3).to_json()]
    assert lines(day1)[0] == (
        '{"read_at":"2026-11-27T23:59:40Z","device_id":"00-11-22-33-44-55-66-77",'
        '"consumption_delta":0.0005,"demand":0.2,"cost_delta":0.0001,"consumption":5038.4145}'
    )
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    for p in (day1, day2, tmp_path / "cache" / "cache.lock"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_append_is_fsynced_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(cache_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    Cache(tmp_path).append([reading(0)])
    assert synced, "append returned without an fsync"


def test_torn_tail_next_append_starts_on_a_new_line(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([reading(0)])
    path = tmp_path / "cache_2026-11-27.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"read_at":"2026-11-27T23:59:5')  # a crash mid-write
    cache.append([reading(1)])
    assert lines(path) == [
        reading(0).to_json(),
        '{"read_at":"2026-11-27T23:59:5',
        reading(1).to_json(),
    ]
    st = cache.status()
    assert st.readings == 2  # the torn line is not a reading


def test_status_counts_and_range_by_streaming(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([reading(i) for i in range(5)])
    cache.append([reading(-3)])  # an older reading appended later (backfill)
    st = cache.status()
    assert st.files == 2 and st.readings == 6
    assert st.oldest == reading(-3).read_at and st.newest == reading(4).read_at
    assert st.bytes == sum(p.stat().st_size for p in cache.files())
    assert st.to_json_obj()["oldest"] == "2026-11-27T23:59:10Z"


def test_status_of_a_missing_directory_is_zero_and_creates_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "nope")
    assert cache.status() == CacheStatus()
    assert cache.is_empty()
    assert list(cache.iter_readings()) == []
    assert not (tmp_path / "nope").exists()


def test_hand_edited_lines_are_read_in_full(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([reading(0)])
    path = tmp_path / "cache_2026-11-27.jsonl"
    with open(path, "a") as f:
        f.write(' { "demand": 1, "device_id": "x y", "read_at": "2026-11-27T23:59:50+00:00" }\n')
        f.write("\n")
        f.write("not json at all\n")
    got = list(cache.iter_readings())
    assert [r.device_id for r in got] == [DEV, "x y"]
    assert got[1].demand == 1.0 and got[1].read_at == T0 + timedelta(seconds=10)
    assert cache.status().readings == 2


def test_no_side_file_is_written_and_status_reads_any_canonical_file(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.append([reading(0), reading(1)])
    names = sorted(p.name for p in cache.directory.iterdir())
    assert names == ["cache.lock", "cache_2026-11-27.jsonl"]
    # The same bytes written by hand (a restored backup): the same status.
    other = Cache(tmp_path / "copy")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "cache_2026-11-27.jsonl").write_bytes(
        (cache.directory / "cache_2026-11-27.jsonl").read_bytes()
    )
    assert other.status()._replace(bytes=0) == cache.status()._replace(bytes=0)
    assert other.status().readings == 2


def test_cap_drops_whole_oldest_days_but_never_the_one_appended_to(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_mb=0.0004)  # ~420 bytes: about two lines
    days = [reading(0), reading(10_000), reading(20_000)]  # three UTC days
    cache.append([days[0]])
    cache.append([days[1]])
    assert [p.name for p in cache.files()] == ["cache_2026-11-27.jsonl", "cache_2026-11-29.jsonl"]
    result = cache.append([days[2]])
    assert result.evicted_files == ("cache_2026-11-27.jsonl",)
    assert result.evicted_readings == 1
    assert [p.name for p in cache.files()] == ["cache_2026-11-29.jsonl", "cache_2026-11-30.jsonl"]
    # Even far over the cap, the file being appended to stays.
    big = Cache(tmp_path, max_mb=0.0000001)
    result = big.append([days[2]])
    assert "cache_2026-11-30.jsonl" in [p.name for p in big.files()]


def test_enospc_rolls_back_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path)
    cache.append([reading(0)])
    before = (tmp_path / "cache_2026-11-27.jsonl").read_bytes()
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # half a line gets through, then the disk is full
            return real_write(fd, bytes(data)[:40])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "write", full_disk)
    with pytest.raises(CacheError) as info:
        cache.append([reading(1), reading(2), reading(3)])
    monkeypatch.undo()
    assert "no space left on device" in info.value.message
    assert "nothing was cached" in info.value.message
    assert info.value.hint and "free disk space" in info.value.hint
    # Nothing half written stays behind; what was acknowledged before is intact.
    assert (tmp_path / "cache_2026-11-27.jsonl").read_bytes() == before
    assert [r.read_at for r in cache.iter_readings()] == [reading(0).read_at]
    cache.append([reading(1)])
    assert cache.status().readings == 2


def test_fsync_failure_is_a_cache_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cache_mod.os, "fsync", broken)
    with pytest.raises(CacheError, match="Input/output error"):
        Cache(tmp_path).append([reading(0)])
    monkeypatch.undo()
    assert Cache(tmp_path).status().readings == 0


def test_lock_is_exclusive_and_busy_after_the_timeout(tmp_path: Path) -> None:
    cache = Cache(tmp_path, lock_timeout=0.2)
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with Cache(tmp_path).lock():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(5)
    started = time.monotonic()
    with pytest.raises(CacheBusy, match="busy"):
        cache.append([reading(0)])
    assert 0.15 < time.monotonic() - started < 3
    release.set()
    t.join()
    assert cache.append([reading(0)]).appended == 1


def test_write_rejected_keeps_lines_and_message(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    now = datetime(2026, 11, 27, 14, 0, 10, tzinfo=timezone.utc)
    first = cache.write_rejected([reading(0).to_json()], "HTTP 400: bad", now).path
    second = cache.write_rejected([reading(1).to_json().encode()], "HTTP 422: worse", now).path
    assert first.name == "rejected_20261127T140010Z.jsonl"
    assert second != first and second.name.startswith("rejected_20261127T140010Z")
    assert lines(first) == [reading(0).to_json()]
    assert first.with_suffix(".txt").read_text() == "HTTP 400: bad\n"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert cache.status().rejected == 2


def test_quarantine_records_line_source_and_reason_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    entries = [(120, b"garbage\n", "not JSON")]
    assert cache.quarantine("cache_2026-11-27.jsonl", entries, now) == 1
    assert cache.quarantine("cache_2026-11-27.jsonl", entries, now) == 0  # again: not twice
    rec = json.loads((tmp_path / "quarantine" / "cache_2026-11-27.jsonl").read_text())
    assert rec["line"] == "garbage" and rec["offset"] == 120 and rec["reason"] == "not JSON"
    assert rec["source"] == "cache_2026-11-27.jsonl"
    assert cache.status().quarantined == 1


def test_is_empty_is_cheap_and_ignores_empty_files(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.is_empty()
    (tmp_path / "cache_2026-01-01.jsonl").touch()
    (tmp_path / "notes.txt").write_text("x")
    assert cache.is_empty()
    cache.append([reading(0)])
    assert not cache.is_empty()


def test_numbers_are_written_as_json_floats(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.append([Reading(T0, DEV, demand=1, consumption=5038)])  # type: ignore[arg-type]
    (line,) = lines(cache.files()[0])
    assert line.endswith('"demand":1.0,"consumption":5038.0}')


def test_requeue_puts_rejected_readings_back_and_archives_the_reasons(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.write_rejected([reading(0).to_json(), reading(1).to_json()], "HTTP 400: bad", T0)
    cache.write_rejected([reading(2).to_json(), "not a reading"], "HTTP 422: conflict", T0)
    assert cache.status().rejected == 4
    result = cache.requeue(T0)
    assert (result.readings, result.files, result.quarantined) == (3, 2, 1)
    assert [r.read_at for r in cache.iter_readings()] == [reading(i).read_at for i in range(3)]
    status = cache.status()
    assert status.rejected == 0 and status.readings == 3 and status.quarantined == 1
    archived = sorted(p.read_text() for p in (tmp_path / "rejected" / "requeued").iterdir())
    assert archived == ["HTTP 400: bad\n", "HTTP 422: conflict\n"]
    assert cache.requeue(T0).files == 0  # nothing left


def test_requeue_of_an_unreadable_file_says_which_and_keeps_the_rest(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    (tmp_path / "rejected").mkdir(mode=0o700)
    (tmp_path / "rejected" / "rejected_20000101T000000Z.jsonl").mkdir()  # cannot be read
    kept = cache.write_rejected([reading(0).to_json()], "HTTP 400: bad", T0).path
    with pytest.raises(CacheError, match=r"read rejected/rejected_20000101T000000Z\.jsonl"):
        cache.requeue(T0)
    assert kept.exists() and cache.status().rejected == 1  # nothing lost, nothing moved
