"""systemd notify end to end: `octomon run --demo` under a NOTIFY_SOCKET we listen on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.integration
@pytest.mark.slow
def test_run_demo_sends_ready_then_watchdogs(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.5)
    env = dict(os.environ)
    env.update(
        NOTIFY_SOCKET=address,
        WATCHDOG_USEC="2000000",  # systemd's WatchdogSec=2: a ping at least every second
        PYTHONUNBUFFERED="1",
    )
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "octomon", "run", "--demo"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    messages: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                messages.extend(sock.recv(4096).splitlines())
            except TimeoutError:
                continue
            if b"READY=1" in messages:
                after = messages[messages.index(b"READY=1") :]
                if after.count(b"WATCHDOG=1") >= 3:
                    break
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail("run --demo did not stop within 20 s of SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    output = out.decode(errors="replace")[-3000:]
    assert b"READY=1" in messages, f"no READY=1 (got {messages!r}); output:\n{output}"
    after = messages[messages.index(b"READY=1") :]
    assert after.count(b"WATCHDOG=1") >= 3, f"got {messages!r}; output:\n{output}"
    assert proc.returncode == 0, f"exit {proc.returncode}; output:\n{output}"
