"""Memory of a long accelerated run stays flat (SPEC §7: under 80 MB, no growth per cycle).

5,000 poll cycles -- three and a half days at 60 s -- with an injected clock, the real
client over real HTTP, the real ledger, cache and status file. The simulator runs as its
own process (``python -m octomon.sim``), so the resident memory measured here is the
monitor's (plus the test runner's), not the simulator's. The injected clock runs four days
behind real time, so every reading it asks for is already served. Measured at cycle 500
and at cycle 5,000: resident memory and the number of live Python objects.
"""

from __future__ import annotations

import gc
import os
import resource
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
from octomon.alerts import Alert
from octomon.config import Settings
from octomon.loop import build_monitor
from octomon.monitor import OK

CYCLES = 5000
EARLY = 500


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


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


@pytest.mark.slow
@pytest.mark.integration
def test_memory_stays_flat_over_5000_cycles(sim_url: str, fast_dir: Path) -> None:
    now = [datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=4)]
    settings = Settings(
        octopus_api_key=sim.DEFAULT_API_KEY,
        octopus_account_number=sim.DEFAULT_ACCOUNT,
        octopus_api_url=sim_url,
        cache_dir=fast_dir / "cache",
    )
    monitor = build_monitor(settings, stop=threading.Event(), clock=lambda: now[0], alerter=Quiet())
    monitor.start(now[0])
    outcomes: dict[str, int] = {}
    marks: dict[int, tuple[float, int]] = {}
    stored = 0
    began = time.perf_counter()
    for i in range(1, CYCLES + 1):
        now[0] += timedelta(seconds=60)
        result = monitor.cycle(now[0])
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        stored += result.stored
        if i in (EARLY, CYCLES):
            gc.collect()
            marks[i] = (rss_mb(), len(gc.get_objects()))
    elapsed = time.perf_counter() - began
    monitor.close(now[0], announce=False)
    (rss_early, objects_early), (rss_late, objects_late) = marks[EARLY], marks[CYCLES]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = (
        f"{CYCLES} cycles ({stored} readings) in {elapsed:.1f} s; resident memory "
        f"{rss_early:.1f} MB at cycle {EARLY}, {rss_late:.1f} MB at cycle {CYCLES} "
        f"(peak {peak:.1f} MB, the test runner included); live objects {objects_early} -> "
        f"{objects_late}"
    )
    print(report)
    assert outcomes == {OK: CYCLES}, outcomes
    assert len(monitor._seen) <= 31
    assert rss_late - rss_early < 4, report  # no growth with the number of cycles (allocator slack)
    assert objects_late - objects_early < 1000, report
    assert rss_late < 80, report
