"""`cache status` counts refused readings without reading the files it has counted before
(``rejected/.counts``), and never trusts the index over the directory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.store import lines
from octomon.store.cache import Cache

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)
LINE = '{"read_at":"2026-11-27T14:00:10Z","device_id":"00-11","consumption_delta":0.0005}'


def test_files_set_aside_are_counted_from_the_index_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path, 100, lambda: NOW)
    for i in range(5):
        cache.write_rejected([LINE] * (i + 1), "400: refused", NOW + timedelta(seconds=i))
    assert (tmp_path / "rejected" / lines.COUNTS).exists()
    opened: list[str] = []
    real = lines._count_file

    def counting(path: str) -> int:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(lines, "_count_file", counting)
    assert cache.status().rejected == 15
    assert opened == []  # every file was in the index at its size


def test_the_directory_wins_over_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path, 100, lambda: NOW)
    first = cache.write_rejected([LINE] * 3, "400", NOW).path
    second = cache.write_rejected([LINE] * 4, "400", NOW + timedelta(seconds=1)).path
    first.unlink()  # gone: its entry is ignored
    (tmp_path / "rejected" / "rejected_20261127T150000Z.jsonl").write_text(LINE + "\n")  # unindexed
    assert second.exists()
    assert cache.status().rejected == 4 + 1
    (tmp_path / "rejected" / lines.COUNTS).write_text("garbage\nrejected_x 1\n")  # damaged
    assert cache.status().rejected == 5  # every file read


def test_the_total_octomon_recorded_is_read_without_listing_while_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path, 100, lambda: NOW)
    for i in range(4):
        cache.write_rejected([LINE] * (i + 1), "400: refused", NOW + timedelta(seconds=i))
    listed: list[object] = []
    real = lines.os.listdir

    def listing(path: object) -> list[str]:
        listed.append(path)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(lines.os, "listdir", listing)
    assert cache.status().rejected == 10
    assert not any(str(p).endswith("rejected") for p in listed)  # one stat, one small read
    monkeypatch.undo()
    # Any change octomon did not record — a file removed or added by hand — is counted again.
    rdir = tmp_path / "rejected"
    sorted(rdir.glob("*.jsonl"))[0].unlink()
    assert cache.status().rejected == 9
    (rdir / "rejected_20261127T150000Z.jsonl").write_text(LINE + "\n" + LINE + "\n")
    assert cache.status().rejected == 11
    (rdir / lines.TOTAL).write_text("garbage")
    assert cache.status().rejected == 11
    cache.write_rejected([LINE] * 5, "400: refused", NOW + timedelta(seconds=9))  # recorded
    assert cache.status().rejected == 16
    assert (rdir / lines.TOTAL).read_text().split()[-1] == "16"


def test_requeue_and_the_cap_record_the_total_they_leave(tmp_path: Path) -> None:
    cache = Cache(tmp_path, 100, lambda: NOW)
    for i in range(3):
        cache.write_rejected([LINE] * 2, "400: refused", NOW + timedelta(seconds=i))
    cache.requeue(NOW)
    assert cache.status().rejected == 0
    assert (tmp_path / "rejected" / lines.TOTAL).read_text().split()[-1] == "0"
