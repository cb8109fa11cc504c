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
