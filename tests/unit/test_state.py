"""state.json: persistence, atomicity, corruption recovery, cross-process merging."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon import fsutil, redact
from octomon.readings import parse_instant
from octomon.state import State, StateStore, format_instant, without_secrets

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)


def test_missing_file_gives_a_fresh_state_and_creates_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "cache")
    assert store.load() == State()
    assert not (tmp_path / "cache").exists()
    assert store.recovered_corrupt is None


def test_update_creates_private_dir_and_file_and_round_trips(tmp_path: Path) -> None:
    cache = tmp_path / "a" / "cache"
    store = StateStore(cache)

    def mutate(s: State) -> None:
        s.cursor = T0
        s.device_id = "12-34-5A-FF-FF-6B-C7-89"
        s.refresh_token = "refresh-abc"
        s.refresh_expires_at = T0 + timedelta(days=7)
        s.calls.extend([T0 - timedelta(seconds=1.5), T0])
        s.backoff_until = T0 + timedelta(minutes=5)
        s.backoff_seconds = 300
        s.rate_limited_since = T0

    new = store.update(mutate)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    again = StateStore(cache).load()
    assert again == new
    assert again.cursor == T0
    assert again.calls == [T0 - timedelta(seconds=1.5), T0]  # sub-second precision kept
    assert again.refresh_expires_at == T0 + timedelta(days=7)
    assert again.backoff_seconds == 300


def test_unknown_keys_are_preserved(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(json.dumps({"future_key": {"x": 1}, "device_id": "D"}))
    store.update(lambda s: setattr(s, "cursor", T0))
    raw = store.file.read_raw()
    assert raw is not None
    obj = json.loads(raw)
    assert obj["future_key"] == {"x": 1}
    assert obj["device_id"] == "D"
    assert obj["cursor"] == "2026-11-27T14:00:00Z"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b"\x00\xff garbage"])
def test_corrupt_file_is_moved_aside_and_logged(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="octomon.state"):
        state = store.load()
    assert state == State()
    assert store.recovered_corrupt is not None
    assert store.recovered_corrupt.name.startswith("state.json.corrupt-")
    assert store.recovered_corrupt.read_bytes() == without_secrets(content)
    assert store.recovered_corrupt.stat().st_mode & 0o777 == 0o600
    assert not store.path.exists()
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    # The next update writes a good file again.
    store.update(lambda s: setattr(s, "device_id", "D"))
    assert StateStore(tmp_path).load().device_id == "D"


def test_the_set_aside_copy_of_a_damaged_file_holds_no_secret(tmp_path: Path) -> None:
    refresh = "rt_" + "Zx9" * 20
    api_key = "sk_live_" + "0123456789abcdef" * 2
    redact.register(api_key)
    good = State(cursor=T0, device_id="00-11-22", refresh_token=refresh).to_obj()
    text = json.dumps(good, indent=1, sort_keys=True)
    cut = text.index(refresh) + 10  # torn in the middle of the token
    store = StateStore(tmp_path)
    store.path.write_text(text[:cut] + f' "note": "{api_key}" ' + "\x00 junk")
    assert store.load() == State()
    assert store.recovered_corrupt is not None
    copy = store.recovered_corrupt.read_bytes()
    assert refresh[:10].encode() not in copy and refresh[-8:].encode() not in copy
    assert api_key.encode() not in copy and api_key[8:24].encode() not in copy
    assert b'"refresh_token": "****"' in copy
    assert b"00-11-22" in copy and b"2026-11-27T14:00:00Z" in copy  # the rest is kept


def test_invalid_fields_are_reset_not_fatal(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(
        json.dumps(
            {
                "cursor": "yesterday",
                "calls": ["2026-11-27T14:00:00Z", 17, "nope"],
                "backoff_seconds": "lots",
                "device_id": 5,
                "refresh_expires_at": "2026-12-04T14:00:00+01:00",
            }
        )
    )
    state = store.load()
    assert state.cursor is None
    assert state.calls == [T0]
    assert state.backoff_seconds == 0
    assert state.device_id is None
    assert state.refresh_expires_at == datetime(2026, 12, 4, 13, 0, tzinfo=timezone.utc)
    assert store.recovered_corrupt is None


def test_a_failing_mutation_writes_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(lambda s: setattr(s, "device_id", "before"))
    before = store.path.read_bytes()

    def boom(s: State) -> None:
        s.device_id = "after"
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update(boom)
    assert store.path.read_bytes() == before


def test_disk_full_raises_oserror_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    store.update(lambda s: setattr(s, "cursor", T0))
    before = store.path.read_bytes(), store.journal.read_bytes()

    def full(path: Path, data: bytes, **_: int) -> os.stat_result:
        with open(path, "ab") as f:  # a part of the line reached the disk, then ENOSPC
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil, "append_line", full)
    with pytest.raises(OSError) as info:
        store.update(lambda s: setattr(s, "cursor", T0 + timedelta(hours=1)))
    assert info.value.errno == errno.ENOSPC
    assert store.path.read_bytes() == before[0]
    assert store.load().cursor == T0  # the torn half-line is skipped
    monkeypatch.undo()
    store.update(lambda s: setattr(s, "cursor", T0 + timedelta(hours=2)))  # on a line of its own
    assert StateStore(tmp_path).load().cursor == T0 + timedelta(hours=2)
    # The lock was released despite the failure.
    fd = os.open(store.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_ledger_is_pruned_to_the_last_hour_on_save(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    old = [T0 - timedelta(minutes=m) for m in (120, 61, 60, 30)]
    store.update(lambda s: s.calls.extend([*old, T0]))
    assert store.load().calls == [T0 - timedelta(minutes=30), T0]


def test_two_stores_on_one_dir_merge_instead_of_overwriting(tmp_path: Path) -> None:
    a, b = StateStore(tmp_path), StateStore(tmp_path)
    a.load()
    b.load()  # both hold an old view; updates re-read from disk
    a.update(lambda s: s.calls.append(T0))
    b.update(lambda s: s.calls.append(T0 + timedelta(seconds=1)))
    a.update(lambda s: setattr(s, "cursor", T0))
    state = StateStore(tmp_path).load()
    assert state.calls == [T0, T0 + timedelta(seconds=1)]
    assert state.cursor == T0


def test_concurrent_processes_lose_no_ledger_entry(tmp_path: Path) -> None:
    """Four real processes append 25 calls each at the same time: all 100 survive."""
    script = textwrap.dedent(
        """
        import sys
        from datetime import datetime, timedelta, timezone
        from pathlib import Path
        from octomon.state import StateStore
        store = StateStore(Path(sys.argv[1]))
        worker = int(sys.argv[2])
        base = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)
        for i in range(25):
            at = base + timedelta(seconds=worker * 100 + i)
            store.update(lambda s: s.calls.append(at))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(w)]) for w in range(4)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    calls = StateStore(tmp_path).load().calls
    assert len(calls) == 100
    assert len(set(calls)) == 100


def test_instant_format_round_trip() -> None:
    dt = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    assert format_instant(dt) == "2026-01-02T03:04:05.678901Z"
    assert parse_instant(format_instant(dt)) == dt
    assert parse_instant("2026-01-02T03:04:05") == dt.replace(microsecond=0)
