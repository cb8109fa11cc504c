"""Memory of a long accelerated run stays flat (SPEC §7: under 80 MB, no growth per cycle).

5,000 poll cycles -- three and a half days at 60 s -- with an injected clock, the real
client over real HTTP, the real ledger, cache and status file, in a fresh Python process
of its own (so the resident memory is the monitor's, not the test runner's); the simulator
is a third process. The injected clock runs four days behind real time, so every reading
it asks for is already served. Measured at cycle 500 and at cycle 5,000: resident memory
and the number of live Python objects.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon import sim
from octomon.alerts.policy import Alert
from octomon.config import Settings
from octomon.daemon.outcome import OK
from octomon.wiring import build_monitor

CYCLES = 5000
EARLY = 500


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """VmHWM: this image's peak (ru_maxrss would include the forked parent's pages)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Quiet:
    def emit(self, alerts: list[Alert]) -> None:
        pass

    def close(self, timeout: float = 3.0) -> None:
        pass


@pytest.fixture
def sim_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "octomon.sim", "--port", "0", "--rate-limit-per-hour", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert " at http://127.0.0.1:" in first, first
        yield first.rsplit(" at ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """The cache on tmpfs where there is one: this test is about memory, not fsync."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm) as d:
            yield Path(d)
    else:
        yield tmp_path


def run_cycles(sim_url: str, cache_dir: Path, cycles: int = CYCLES) -> dict[str, object]:
    """The measured run (in the child process)."""
    now = [datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=4)]
    settings = Settings(
        octopus_api_key=sim.DEFAULT_API_KEY,
        octopus_account_number=sim.DEFAULT_ACCOUNT,
        octopus_api_url=sim_url,
        octopus_rest_url=sim_url.rsplit("graphql/", 1)[0],
        cache_dir=cache_dir,
    )
    monitor = build_monitor(settings, stop=threading.Event(), clock=lambda: now[0], alerter=Quiet())
    monitor.start(now[0])
    outcomes: dict[str, int] = {}
    marks: dict[int, tuple[float, int]] = {}
    stored = 0
    began = time.perf_counter()
    for i in range(1, cycles + 1):
        now[0] += timedelta(seconds=60)
        result = monitor.cycle(now[0])
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
        stored += result.stored
        if i in (EARLY, cycles):
            gc.collect()
            marks[i] = (rss_mb(), len(gc.get_objects()))
    elapsed = time.perf_counter() - began
    monitor.close(now[0], announce=False)
    return {
        "outcomes": outcomes,
        "stored": stored,
        "elapsed": elapsed,
        "rss": [marks[EARLY][0], marks[cycles][0]],
        "objects": [marks[EARLY][1], marks[cycles][1]],
        "peak": peak_mb(),
        "seen": len(monitor.stream.cursor.seen),
    }


@pytest.mark.slow
@pytest.mark.integration
def test_memory_stays_flat_over_5000_cycles(sim_url: str, fast_dir: Path) -> None:
    code = (
        "import json, sys; from pathlib import Path\n"
        "from tests.reliability.test_memory import run_cycles\n"
        "print('RESULT ' + json.dumps(run_cycles(sys.argv[1], Path(sys.argv[2]))))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, sim_url, str(fast_dir / "cache")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert out.returncode == 0 and line, out.stdout[-2000:] + out.stderr[-4000:]
    r = json.loads(line[len("RESULT ") :])
    (rss_early, rss_late), (objects_early, objects_late) = r["rss"], r["objects"]
    report = (
        f"{CYCLES} cycles ({r['stored']} readings) in {r['elapsed']:.1f} s; resident memory "
        f"{rss_early:.1f} MB at cycle {EARLY}, {rss_late:.1f} MB at cycle {CYCLES} "
        f"(peak {r['peak']:.1f} MB); live objects {objects_early} -> {objects_late}"
    )
    print(report)
    assert r["outcomes"] == {OK.value: CYCLES}, r["outcomes"]
    assert r["seen"] <= 31
    assert rss_late - rss_early < 2, report  # no growth with the number of cycles
    assert objects_late - objects_early < 1000, report
    assert r["peak"] < 80, report
