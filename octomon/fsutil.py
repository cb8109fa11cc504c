"""Durable, atomic file writes: temp file + fsync + rename + fsync of the directory.

Used for ``state.json``, the other files in ``CACHE_DIR`` and ``.env``;
:func:`overwrite` for ``status.json``, :func:`append_line` for the journals. The temp file
is created with ``O_EXCL`` and mode 0600 from the first byte, whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_synced(path: Path, flags: int, data: bytes) -> None:
    """Open ``path`` with ``flags`` (mode 0600 if created), write ``data``, fsync, close."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flags, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, data: bytes, *, reserve: int = 0) -> os.stat_result:
    """Append ``data`` (one or more whole lines) to ``path`` (created 0600), fsync'ed; the
    directory too when the file was created. After a torn tail (a crash mid-append) the new
    text starts a line of its own. The file's ``stat`` afterwards. Raises ``OSError``.

    ``reserve``: the disk space the file will grow into is allocated ahead, once, past its
    end (:func:`_reserve`), so an append writes its page and the inode — not, each time a
    block is added, the filesystem's block bitmap and group descriptor too (SPEC §4.9)."""
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if reserve and st.st_blocks * 512 < st.st_size + len(data) + 1:
            _reserve(fd, max(reserve, st.st_size + len(data) + 1))
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            data = b"\n" + data
        write_all(fd, data)
        os.fsync(fd)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    return st


_FALLOC_FL_KEEP_SIZE = 1
_libc: Any = None


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks up to ``size`` without changing its length (Linux
    ``fallocate(FALLOC_FL_KEEP_SIZE)``); a no-op where the system or filesystem cannot."""
    global _libc
    try:
        if _libc is None:
            import ctypes  # lazy: only the daemon and backfill append

            _libc = ctypes.CDLL(None, use_errno=True)
        fallocate = _libc.fallocate
    except (OSError, AttributeError):
        return
    import ctypes

    fallocate(fd, _FALLOC_FL_KEEP_SIZE, ctypes.c_longlong(0), ctypes.c_longlong(size))


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    ``durable=False`` skips both fsyncs: readers still never see a half-written file while
    the system runs, but after a power cut the file may be empty or old (for advisory
    files only). Raises ``OSError`` (disk full, permissions) with the old file untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask cannot widen it, but may narrow it
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def overwrite(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` over ``path`` in place (created ``mode`` if missing): one inode, no
    rename, no fsync — for a view rewritten every minute (status.json), so no directory
    block or new inode is written each time. A reader may meet a torn file for an instant
    (or, after a power cut, an old or garbled one) and must read again. Raises ``OSError``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


_NOATIME = getattr(os, "O_NOATIME", 0)  # Linux


def read_bytes(path: Path) -> bytes:
    """The file's bytes, read without updating its access time where the system allows it
    (``O_NOATIME``: the file's owner, on Linux): the daemon reads ``state.json`` and
    ``status.json`` every cycle, and under ``relatime`` the first read after each write
    would otherwise write the file's inode again (SPEC §4.9: an SD card is not worn by
    bookkeeping). Raises ``OSError`` like :meth:`Path.read_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOATIME)
    except PermissionError:  # not the owner: O_NOATIME is refused, a plain read is not
        if not _NOATIME:
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        return file.read()


def identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime in ns, size): changes whenever the file is written or replaced; None
    when there is no file. One ``stat``, no read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700 for the leaf."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


@contextlib.contextmanager
def flocked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (0600; its directory made 0700)."""
    if not lock_path.parent.is_dir():
        ensure_private_dir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
