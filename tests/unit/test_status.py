"""status.json (SPEC §6, §4.9): a small view, written in place only when it changed, never
fsync'ed."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon import fsutil
from octomon.daemon.status import STATUS_FILE, Status
from octomon.state import StateStore

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def test_status_is_written_when_it_changed_and_never_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    status = Status(started_at=T0, poll_interval=60, call_budget=75, last_cycle_at=T0)
    status.record_demand(T0, 0.5)
    assert status.write(tmp_path) is True
    first = (tmp_path / STATUS_FILE).stat()
    assert status.write(tmp_path) is False  # the same content: not written again
    assert (tmp_path / STATUS_FILE).stat().st_ino == first.st_ino
    status.last_cycle_at = T0 + timedelta(minutes=1)
    assert status.write(tmp_path) is True
    assert synced == []
    text = (tmp_path / STATUS_FILE).read_text()
    assert "calls" not in text.replace("calls_last_hour", "")  # no ledger in the view
    assert "demand_history" not in text and len(text) < 1024
    assert Status.read(tmp_path) == Status(
        started_at=T0, poll_interval=60, call_budget=75, last_cycle_at=T0 + timedelta(minutes=1)
    )


def test_status_is_rewritten_in_place_and_read_again_when_torn(tmp_path: Path) -> None:
    """One inode for the daemon's life (no rename: no directory block written every minute);
    a reader that meets the file mid-write reads it again."""
    path = tmp_path / STATUS_FILE
    status = Status(started_at=T0, poll_interval=60, call_budget=75, last_error="x" * 200)
    status.write(tmp_path)
    inode = path.stat().st_ino
    assert path.stat().st_mode & 0o777 == 0o600
    status.last_error = None  # shorter: the old tail must not stay behind
    status.last_cycle_at = T0
    status.write(tmp_path)
    assert path.stat().st_ino == inode
    assert Status.read(tmp_path) == status
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # what a reader may meet for an instant
    mended = threading.Timer(0.03, path.write_bytes, (whole,))
    mended.start()
    try:
        assert Status.read(tmp_path) == status
    finally:
        mended.join()
    path.write_bytes(b"{garbled")  # after a power cut: no status, not an error
    assert Status.read(tmp_path, attempts=2) is None


def test_state_json_is_not_rewritten_when_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    store.update(lambda s: setattr(s, "cursor", T0))
    writes: list[Path] = []
    real = fsutil.append_line

    def counting(path: Path, data: bytes, **kw: int) -> os.stat_result:
        writes.append(path)
        return real(path, data, **kw)

    monkeypatch.setattr(fsutil, "append_line", counting)
    store.update(lambda s: setattr(s, "cursor", T0))
    store.update(lambda s: None)
    assert writes == []
    store.update(lambda s: setattr(s, "cursor", T0 + timedelta(seconds=10)))
    assert writes == [store.journal]
