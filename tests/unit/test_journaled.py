"""octomon.journaled: state.json's new values appended to state.journal, folded in about
hourly; a torn or damaged line never loses more than the save it belonged to."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octomon.journaled import COMPACT_BYTES, JournaledFile
from octomon.state import KIND, LOCK_FILE, State, StateStore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


def _file(cache: Path, compact_bytes: int = COMPACT_BYTES) -> JournaledFile[State]:
    return JournaledFile(cache, KIND, LOCK_FILE, compact_bytes=compact_bytes)


def _set_cursor(minutes: int):  # type: ignore[no-untyped-def]
    def mutate(state: State) -> None:
        state.cursor = T0 + timedelta(minutes=minutes)
        state.calls.append(T0 + timedelta(minutes=minutes))

    return mutate


def test_the_first_write_makes_the_base_then_writes_append_to_the_same_inodes(
    tmp_path: Path,
) -> None:
    f = _file(tmp_path)
    f.update(_set_cursor(0))
    base = f.path.stat()
    assert f.path.exists() and f.journal.exists()
    assert f.journal.stat().st_size == 0  # folded at once: no base before
    journal_inode = f.journal.stat().st_ino
    for minute in range(1, 6):
        f.update(_set_cursor(minute))
    after = f.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (base.st_ino, base.st_mtime_ns)  # untouched
    assert f.journal.stat().st_ino == journal_inode
    assert len(f.journal.read_bytes().splitlines()) == 5
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=5)
    assert os.stat(f.journal).st_mode & 0o777 == 0o600  # it holds the refresh token too


def test_the_journal_is_folded_into_the_base_when_it_passes_the_limit(tmp_path: Path) -> None:
    f = _file(tmp_path, compact_bytes=1000)
    f.update(_set_cursor(0))
    inode = f.journal.stat().st_ino
    folds = 0
    for minute in range(1, 40):
        f.update(_set_cursor(minute))
        assert f.journal.stat().st_size <= 1000 + 2000  # never more than a line past it
        folds += f.journal.stat().st_size == 0
        assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=minute)
    assert folds >= 3
    assert f.journal.stat().st_ino == inode  # emptied in place, not replaced
    assert f.decode(f.path.read_bytes()).cursor is not None


def test_a_torn_last_line_gives_the_value_before_it_and_the_next_write_a_line_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = _file(tmp_path)
    for minute in range(3):
        f.update(_set_cursor(minute))
    whole = f.journal.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    f.journal.write_bytes(whole[: len(whole) - len(last) // 2])  # a crash mid-append
    with caplog.at_level(logging.WARNING, logger="octomon.journaled"):
        assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=1)
        assert not caplog.text  # a reader without the lock may meet a line mid-append
        assert _file(tmp_path).read(locked=True)[0].cursor == T0 + timedelta(minutes=1)
    assert "skipped 1 damaged line" in caplog.text
    f.update(_set_cursor(7))
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=7)
    assert f.journal.read_bytes().endswith(b"\n")


def test_a_damaged_base_under_a_good_journal_loses_nothing(tmp_path: Path) -> None:
    f = _file(tmp_path)
    for minute in range(3):
        f.update(_set_cursor(minute))
    f.path.write_bytes(b"{garbage")
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=2)


def test_a_journal_without_a_good_line_falls_back_to_the_base(tmp_path: Path) -> None:
    f = _file(tmp_path)
    f.update(_set_cursor(0))
    f.journal.write_bytes(b'{"version": 1, "cursor": "not a time"\n\x00\xff\n')
    assert _file(tmp_path).load().cursor == T0


def test_a_crash_between_the_fold_and_emptying_the_journal_reads_the_same_value(
    tmp_path: Path,
) -> None:
    f = _file(tmp_path)
    for minute in range(3):
        f.update(_set_cursor(minute))
    journal = f.journal.read_bytes()
    f.update(_set_cursor(3))
    line = f.journal.read_bytes()[len(journal) :]
    # The fold: the line appended, the base replaced with it, the journal not yet emptied.
    f.path.write_bytes(line)
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=3)
    # Or the fold cut short before the base was replaced: the journal's line holds.
    f.path.write_bytes(f.encode(f.decode(journal.splitlines()[0])))
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=3)


def test_identity_changes_with_every_write_and_not_without(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_set_cursor(0))
    seen = store.identity()
    store.update(lambda s: None)
    assert store.identity() == seen
    store.update(_set_cursor(1))
    assert store.identity() != seen


def test_tally_pending_is_read_from_the_journal(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_set_cursor(0))
    store.update(lambda s: setattr(s, "tally_pending", {"electricity": [[1764583200, 5, 6]]}))
    assert store.tally_pending() == {"electricity": [[1764583200, 5, 6]]}


@settings(max_examples=60, deadline=None)
@given(
    writes=st.integers(min_value=1, max_value=25),
    compact=st.integers(min_value=300, max_value=4000),
    cut=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_crash_at_any_byte_of_any_write_loses_at_most_that_write(
    tmp_path_factory: pytest.TempPathFactory, writes: int, compact: int, cut: float
) -> None:
    """Whatever the fold size, a journal cut at any byte of its last append reads as the
    last value written or the one before it — never an older one, never nothing."""
    cache = tmp_path_factory.mktemp("j")
    f = _file(cache, compact_bytes=compact)
    for minute in range(writes):
        f.update(_set_cursor(minute))
    text = f.journal.read_bytes()
    lines = text.splitlines(keepends=True)
    if lines:
        kept = len(text) - len(lines[-1]) + int(len(lines[-1]) * cut)
        f.journal.write_bytes(text[:kept])
    cursor = _file(cache, compact_bytes=compact).load().cursor
    assert cursor is not None
    assert cursor >= T0 + timedelta(minutes=writes - 2)


def test_the_journal_space_is_allocated_ahead_without_growing_the_file(tmp_path: Path) -> None:
    """An append writes its page and the inode, not the block bitmap each time the file
    gains a block: the blocks up to the fold are allocated at the first append."""
    f = _file(tmp_path)
    f.update(_set_cursor(0))  # the base (the journal folded at once, emptied)
    f.update(_set_cursor(1))
    st = f.journal.stat()
    assert st.st_blocks * 512 >= COMPACT_BYTES
    assert st.st_size == len(f.journal.read_bytes().splitlines()[0]) + 1  # one line, no more
    assert _file(tmp_path).load().cursor == T0 + timedelta(minutes=1)
