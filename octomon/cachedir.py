"""CACHE_DIR's rule: a writable directory, or one that can be created under a writable
parent — and when it is not, the real reason, in words a user can act on."""

from __future__ import annotations

import os
from pathlib import Path


def check(path: Path) -> None:
    """CACHE_DIR must be a writable directory, or creatable under a writable parent.

    Validation never creates anything. Each refusal names the real cause: a file in the
    way, a read-only or virtual filesystem (/proc, /sys), or a directory not writable.
    """
    path = path.expanduser()
    if path.is_dir():
        _check_filesystem(path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError("is not writable")
        return
    if path.is_symlink() and not path.exists():
        raise ValueError(f"is a symbolic link to {os.readlink(path)}, which does not exist")
    if path.exists():
        raise ValueError("exists and is not a directory")
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot be created: {parent} is not a directory")
    _check_filesystem(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"does not exist and cannot be created ({parent} is not writable)")


VIRTUAL_FILESYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs"}
VIRTUAL_FILESYSTEMS |= {"securityfs", "tracefs", "configfs", "pstore", "bpf", "efivarfs"}


def _check_filesystem(path: Path) -> None:
    """Refuse a directory on a read-only filesystem, or on one the kernel makes up."""
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise ValueError(f"is on a read-only filesystem ({path} cannot be written)")
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:  # not Linux
        return
    where = str(path.resolve())
    best = ("", "")
    for line in mounts:
        fields = line.split()
        if len(fields) > 2:
            point = fields[1].replace("\\040", " ")
            inside = where == point or where.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, fields[2])
    if best[1] in VIRTUAL_FILESYSTEMS:
        raise ValueError(
            f"is on {best[0]}, a {best[1]} filesystem the kernel makes up, which cannot hold "
            "files: choose a directory on a disk"
        )


def parse(raw: str) -> Path:
    """CACHE_DIR's value as a path, or ValueError(the rule it breaks)."""
    if not raw.strip():
        raise ValueError("must not be empty")
    try:
        path = Path(raw.strip()).expanduser()
    except RuntimeError:  # ~name for a user this system does not know
        raise ValueError("starts with ~ and a user this system does not have") from None
    check(path)
    return path
