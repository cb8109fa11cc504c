"""What the benchmarks share: a free loopback port and a VictoriaMetrics to write to."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_vm(
    tmp: Path, preexec_fn: Callable[[], None] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """VictoriaMetrics on a free loopback port, its data in ``tmp/vm``; (process, URL)."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        sys.exit("victoria-metrics is not installed (apt-get install victoria-metrics)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={tmp / 'vm'}",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("VictoriaMetrics did not start")
