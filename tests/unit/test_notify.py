"""systemd notify: datagrams to a real unix socket, path and abstract addresses."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon.daemon.notify import SystemdNotifier


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = _receiver(path)
    yield path, sock
    sock.close()


def test_no_socket_means_no_notifier() -> None:
    assert SystemdNotifier.from_env({}) is None
    assert SystemdNotifier.from_env({"NOTIFY_SOCKET": ""}) is None
    assert SystemdNotifier.from_env({"NOTIFY_SOCKET": "relative/path"}) is None
    assert SystemdNotifier.from_env({"NOTIFY_SOCKET": "@"}) is None


def test_path_socket_receives_each_message(path_socket: tuple[str, socket.socket]) -> None:
    path, sock = path_socket
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier is not None
    notifier.ready()
    notifier.watchdog()
    notifier.status("polling\nevery 60 s")
    notifier.stopping()
    got = [sock.recv(4096) for _ in range(4)]
    assert got == [b"READY=1", b"WATCHDOG=1", b"STATUS=polling every 60 s", b"STOPPING=1"]
    notifier.close()


def test_abstract_socket() -> None:
    name = f"octomon-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + name)
    try:
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        assert notifier.address == "\0" + name
        notifier.ready()
        notifier.watchdog()
        assert sock.recv(4096) == b"READY=1"
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_a_missing_socket_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier is not None
    with caplog.at_level(logging.DEBUG, logger="octomon.daemon.notify"):
        notifier.ready()
        notifier.watchdog()
        assert notifier.notify("WATCHDOG=1") is False
    assert any("systemd notify" in r.getMessage() for r in caplog.records)


def test_the_receiver_coming_back_later_gets_messages(tmp_path: Path) -> None:
    path = str(tmp_path / "late.sock")
    notifier = SystemdNotifier(path)
    assert notifier.notify("READY=1") is False
    sock = _receiver(path)
    try:
        assert notifier.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **environ})
    assert notifier is not None
    assert notifier.watchdog_interval == expected
