"""`octomon run --demo` on a terminal shows the price now (SPEC §8: the demo shows prices)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

PRICE = re.compile(r"price +-?\d+\.\d p/kWh · -?\d+\.\d p/h at this demand")
TODAY = re.compile(r"today +\d+\.\d\d kWh · £\d+\.\d\d with standing charge")


def test_run_demo_shows_the_price_now_and_what_the_demand_costs() -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "octomon", "run", "--demo"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    # The tariffs job runs at start (a minute later if that is hh:00 or hh:30).
    deadline = time.monotonic() + 80
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                plain = re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", seen).decode(errors="replace")
                if PRICE.search(plain):
                    break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
            while select.select([master], [], [], 0.5)[0]:  # the frame left on screen
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(master)
    plain = re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", seen).decode(errors="replace")
    assert PRICE.search(plain), plain[-2000:]
    assert TODAY.search(plain), plain[-2000:]  # today's electricity, from the tally, in £
    assert "· stopped ─╯" in plain, plain[-2000:]
    assert code == 0
