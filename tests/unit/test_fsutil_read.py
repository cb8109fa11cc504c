"""fsutil.read_bytes: the daemon's every-cycle reads leave the inode alone (no atime write)."""

from __future__ import annotations

import os
from pathlib import Path

from octomon.fsutil import read_bytes


def _aged(path: Path) -> float:
    """Make the access time older than the modification time: the next ordinary read
    updates it under ``relatime`` (what a read right after a write meets)."""
    st = os.stat(path)
    os.utime(path, (st.st_mtime - 3600, st.st_mtime))
    return os.stat(path).st_atime


def test_a_read_does_not_touch_the_access_time(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b'{"version": 1}\n')
    before = _aged(path)
    assert read_bytes(path) == b'{"version": 1}\n'
    assert os.stat(path).st_atime == before
    path.read_bytes()  # an ordinary read does (on this filesystem), so the check can fail
    assert os.stat(path).st_atime != before


def test_a_missing_file_raises_like_path_read_bytes(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "nothing")
