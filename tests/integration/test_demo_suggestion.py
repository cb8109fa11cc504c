"""What `octomon run --demo` suggests trying in another terminal runs as printed there, even
when that terminal does not have octomon on its PATH (`make demo` runs .venv/bin/octomon)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SUGGESTION = re.compile(r"try in another terminal: (.+?) \(and tariff")


def test_the_demo_suggestion_runs_as_printed_in_a_shell_without_the_venv(
    tmp_path: Path,
) -> None:
    script = Path(sys.executable).parent / "octomon"
    assert script.exists(), "octomon's console script is installed beside python"
    bare_path = "/usr/local/bin:/usr/bin:/bin"
    env = {**os.environ, "PATH": bare_path, "COLUMNS": "300"}
    proc = subprocess.Popen(
        [str(script), "run", "--demo"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not SUGGESTION.search(seen):
            line = proc.stderr.readline().decode()
            if not line:
                break
            seen += line
        found = SUGGESTION.search(seen)
        assert found, seen
        suggested = found.group(1)
        assert suggested.startswith(str(script.absolute())), suggested
        done = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", suggested],
            env={"PATH": bare_path, "HOME": str(tmp_path)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "total" in done.stdout.lower(), done.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
