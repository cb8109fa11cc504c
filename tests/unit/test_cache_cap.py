"""CACHE_MAX_MB counts the day files and rejected/ together (SPEC §4.5, issue 24)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from octomon.readings import Reading
from octomon.store.cache import Cache

DEV = "00-11-22-33-44-55-66-77"
T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
MB = 1024 * 1024


def reading(at: datetime, i: int = 0) -> Reading:
    return Reading(at + timedelta(seconds=10 * i), DEV, demand=0.2 + i, consumption=5038.0 + i)


def records(at: datetime, n: int) -> list[str]:
    return [reading(at, i).to_json() for i in range(n)]


def size_of(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths)


def test_over_the_cap_the_oldest_files_go_first_across_day_files_and_rejected(
    tmp_path: Path,
) -> None:
    roomy = Cache(tmp_path)
    old_aside = roomy.write_rejected(
        records(T0 - timedelta(days=1), 3), "HTTP 422: conflict", T0 - timedelta(days=1)
    ).path
    roomy.append([reading(T0, i) for i in range(2)])  # cache_2026-11-27.jsonl
    day27 = tmp_path / "cache_2026-11-27.jsonl"
    new_aside = roomy.write_rejected(
        records(T0 + timedelta(days=1), 2), "HTTP 422: conflict", T0 + timedelta(days=1)
    ).path
    assert old_aside.name == "rejected_20261126T120000Z.jsonl"
    assert new_aside.name == "rejected_20261128T120000Z.jsonl"
    coming = [reading(T0 + timedelta(days=2))]
    payload = sum(len(r.to_json()) + 1 for r in coming)
    everything = size_of(
        old_aside, old_aside.with_suffix(".txt"), day27, new_aside, new_aside.with_suffix(".txt")
    )
    dropped = size_of(old_aside, old_aside.with_suffix(".txt"), day27)
    # Room for all but the two oldest files: the set-aside one of the 26th and the 27th's day.
    capped = Cache(tmp_path, max_mb=(everything + payload - dropped) / MB)

    result = capped.append(coming)

    assert result.evicted_files == (
        "rejected/rejected_20261126T120000Z.jsonl",
        "cache_2026-11-27.jsonl",
    )
    assert result.evicted_readings == 5
    assert not old_aside.exists() and not old_aside.with_suffix(".txt").exists()
    assert new_aside.exists() and new_aside.with_suffix(".txt").exists()
    assert [p.name for p in capped.files()] == ["cache_2026-11-29.jsonl"]
    status = capped.status()
    assert (status.readings, status.rejected) == (1, 2)


def test_setting_aside_over_the_cap_never_drops_the_new_file_nor_the_day_appended_to(
    tmp_path: Path,
) -> None:
    roomy = Cache(tmp_path)
    roomy.append([reading(T0)])
    stamps = [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    older = [roomy.write_rejected(records(at, 2), "HTTP 400: bad", at).path for at in stamps]
    tiny = Cache(tmp_path, max_mb=1 / MB)  # one byte: everything that may go, goes

    kept = tiny.write_rejected(records(T0, 4), "HTTP 400: bad", T0 + timedelta(minutes=4))

    assert kept.evicted.files == tuple(f"rejected/{p.name}" for p in older)
    assert kept.evicted.readings == 6
    assert kept.path.exists() and (tmp_path / "cache_2026-11-27.jsonl").exists()
    assert sorted(
        p.name for p in (tmp_path / "rejected").iterdir() if not p.name.startswith(".")
    ) == [
        kept.path.name,
        kept.path.with_suffix(".txt").name,
    ]
    assert tiny.status().rejected == 4


def test_under_the_cap_nothing_is_dropped(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    kept = cache.write_rejected(records(T0, 3), "HTTP 400: bad", T0)
    assert kept.evicted.files == () and kept.evicted.readings == 0
    assert cache.append([reading(T0)]).evicted_files == ()


def test_requeue_over_the_cap_keeps_the_file_being_requeued(tmp_path: Path) -> None:
    roomy = Cache(tmp_path)
    aside = roomy.write_rejected(records(T0, 3), "HTTP 400: bad", T0).path
    tiny = Cache(tmp_path, max_mb=1 / MB)
    result = tiny.requeue(T0)
    assert (result.readings, result.files) == (3, 1)
    assert not aside.exists()
    assert tiny.status().readings == 3  # appended, and not dropped while it was requeued


def test_reasons_of_requeued_files_count_and_go_too(tmp_path: Path) -> None:
    roomy = Cache(tmp_path)
    roomy.write_rejected(records(T0, 2), "HTTP 400: " + "x" * 2000, T0)
    roomy.requeue(T0)
    note = tmp_path / "rejected" / "requeued" / "rejected_20261127T120000Z.txt"
    assert note.exists()
    day = tmp_path / "cache_2026-11-27.jsonl"
    capped = Cache(tmp_path, max_mb=(size_of(day) + 200) / MB)
    kept = capped.write_rejected(records(T0, 1), "HTTP 400: bad", T0 + timedelta(days=1))
    assert kept.evicted.files == ("rejected/requeued/rejected_20261127T120000Z.txt",)
    assert kept.evicted.readings == 0 and not note.exists()


def test_status_counts_rejected_readings_exactly_in_many_files(tmp_path: Path) -> None:
    rdir = tmp_path / "rejected"
    rdir.mkdir(mode=0o700)
    line = reading(T0).to_json().encode() + b"\n"
    for n in range(1666):  # a refused cycle's six readings each: 9,996 readings
        (rdir / f"rejected_20261127T{n:06d}Z.jsonl").write_bytes(line * 6)
        (rdir / f"rejected_20261127T{n:06d}Z.txt").write_text("HTTP 422: conflict\n")
    (rdir / "rejected_20261128T000000Z.jsonl").write_bytes(line * 3 + line.rstrip(b"\n"))
    (rdir / "requeued").mkdir()
    (rdir / "requeued" / "rejected_20261101T000000Z.txt").write_text("HTTP 400\n")
    assert Cache(tmp_path).status().rejected == 10_000


def test_a_busy_lock_leaves_the_cap_for_next_time_and_keeps_the_refused_readings(
    tmp_path: Path,
) -> None:
    roomy = Cache(tmp_path)
    older = roomy.write_rejected(records(T0, 2), "HTTP 400: bad", T0).path
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with roomy.lock():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5)
        tiny = Cache(tmp_path, max_mb=1 / MB)
        kept = tiny.write_rejected(records(T0, 1), "HTTP 400: bad", T0 + timedelta(hours=1))
    finally:
        release.set()
        holder.join()
    assert kept.path.exists() and older.exists() and kept.evicted == ((), 0)
    again = tiny.write_rejected(records(T0, 1), "HTTP 400: bad", T0 + timedelta(hours=2))
    assert f"rejected/{older.name}" in again.evicted.files  # the next time, it is done
