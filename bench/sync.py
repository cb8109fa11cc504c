"""SPEC §7: `octomon sync-cache` of 500,000 cached readings vs posting line protocol raw.

Both sides are whole processes, start-up included, against the same local
VictoriaMetrics (started here, on a free loopback port, in a temp dir):

* raw: a minimal Python script posts a pre-built line-protocol file over one
  ``http.client`` connection, 5,000 lines per request;
* octomon: ``octomon sync-cache`` on a cache whose day files this script writes
  **directly** in the canonical layout of SPEC §4.5 (not through octomon's writer, no side
  file), restored before every run;
* the same with the day files written by octomon's own writer (``Cache.append``), for
  comparison.

Runs alternate (raw, octomon, octomon-written, raw, …), three each; the medians give the
ratios and the peak RSS of `sync-cache` (target < 100 MB). Also times ``octomon cache
status --json`` on the full cache. Exits 1 when a target is missed.

``--with-gas``: the day files also hold the gas meter's half-hours (48 gas lines a day among
the 8,640 electricity lines, SPEC §4.5), and the raw side posts their line protocol too; the
readings counted are both. The target is the same: the electricity fast path keeps its
speed beside gas lines.

``--pinned``: VictoriaMetrics on CPU 0, each measured client on CPU 1 (the same for the raw
poster and `sync-cache`): SPEC §7's figure (target >= 0.65), the client's own cost. Without
it the server and the client share both cores, and on a 2-core machine the ratio measures
their contention as much as octomon: that shared figure is reported beside the pinned one,
with no target.

Usage: python bench/sync.py [--readings N] [--runs 3] [--with-gas] [--pinned]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import start_vm  # noqa: E402
from octomon.readings import GasReading, Reading  # noqa: E402
from octomon.store.cache import Cache  # noqa: E402

TARGET_RATIO = 0.65  # with --pinned (SPEC §7)
SETTLE = 3.0  # seconds between runs, the same for both sides
LAST_CPU = [0.0]  # CPU seconds of the last measured child
TARGET_RSS_MB = 100.0
DEVICE = "00-00-00-00-00-00-00-01"

RAW_POSTER = r"""
import http.client, sys
from itertools import islice
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": "Token bench"}
with open(sys.argv[2], "rb") as f:
    while True:
        body = b"".join(islice(f, 5000))
        if not body:
            break
        conn.request("POST", "/api/v2/write?org=bench&bucket=bench&precision=s", body, headers)
        r = conn.getresponse()
        r.read()
        if r.status != 204:
            sys.exit(f"HTTP {r.status}")
"""


def readings(n: int) -> list[Reading]:
    """Deterministic, realistic-looking 10-second readings (some tiny, e-notation, values)."""
    rng = random.Random(20261127)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    register = 5038.4145
    out = []
    for i in range(n):
        watts = rng.choice((rng.randint(5, 60), rng.randint(80, 600), rng.randint(600, 3200)))
        wh = round(watts / 360, 4)
        register = round(register + wh / 1000, 4)
        out.append(
            Reading(
                start + timedelta(seconds=10 * i),
                DEVICE,
                consumption_delta=wh / 1000,
                demand=watts / 1000,
                cost_delta=round(wh * 0.2450 / 100, 6) / 100,
                consumption=register,
            )
        )
    return out


GAS_DEVICE = "00-00-00-00-00-00-00-02"


def gas_readings(electricity: list[Reading]) -> list[GasReading]:
    """A gas half-hour for every half-hour the electricity readings span (energy, money and
    the volume at CV 39.5, as the daemon writes them)."""
    rng = random.Random(20261128)
    register = 120_000.0
    out = []
    t = electricity[0].read_at
    while t <= electricity[-1].read_at:
        kwh = rng.choice((0.0, round(rng.uniform(0.01, 0.05), 3), round(rng.uniform(0.5, 4), 3)))
        register = round(register + kwh, 3)
        out.append(
            GasReading(
                t,
                GAS_DEVICE,
                consumption_delta=kwh,
                consumption=register,
                cost_delta=kwh * 0.0584,
                cost_delta_with_tax=kwh * 0.06132,
                volume_delta=kwh * 3.6 / 39.5 / 1.02264,
            )
        )
        t += timedelta(minutes=30)
    return out


def pin(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps a child on one CPU (``--pinned``), or None."""
    if cpu is None:
        return None

    def keep() -> None:
        os.sched_setaffinity(0, {cpu})

    return keep


def settle(url: str) -> None:
    """Let VictoriaMetrics finish with the previous run (flush, background merges)."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).read()
    time.sleep(SETTLE)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """(seconds, stdout) of one child process; fails loudly."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed, proc.stdout.decode()


def cpu_of(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CLIENT_CPU: list[int | None] = [None]  # --pinned: the CPU of the measured clients


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MB) using wait4 for this child's own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pin(CLIENT_CPU[0]),
    )
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}): {err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def canonical(r: Reading | GasReading) -> str:
    """SPEC §4.5's line, formatted here (not by octomon): compact JSON, keys in order; a gas
    line has ``"fuel":"gas"`` right after ``device_id``."""
    if isinstance(r, GasReading):
        fuel = '"fuel":"gas",'
        fields = [
            ("consumption_delta", r.consumption_delta),
            ("consumption", r.consumption),
            ("cost_delta", r.cost_delta),
            ("cost_delta_with_tax", r.cost_delta_with_tax),
            ("volume_delta", r.volume_delta),
        ]
    else:
        fuel = ""
        fields = [
            ("consumption_delta", r.consumption_delta),
            ("demand", r.demand),
            ("cost_delta", r.cost_delta),
            ("consumption", r.consumption),
        ]
    body = ",".join(f'"{k}":{json.dumps(v)}' for k, v in fields if v is not None)
    when = r.read_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'{{"read_at":"{when}","device_id":{json.dumps(r.device_id)},{fuel}{body}}}'


def generate(master: Path, written: Path, lp: Path, n: int, gas: bool) -> None:
    electricity = readings(n)
    data: list[Reading | GasReading] = [*electricity, *(gas_readings(electricity) if gas else [])]
    data.sort(key=lambda r: r.read_at)
    master.mkdir(mode=0o700)
    days: dict[str, list[str]] = {}
    for r in data:
        days.setdefault(r.read_at.strftime("%Y-%m-%d"), []).append(canonical(r) + "\n")
    for day, lines in days.items():
        (master / f"cache_{day}.jsonl").write_text("".join(lines))
    cache = Cache(written)
    for i in range(0, len(data), 50_000):
        cache.append(data[i : i + 50_000])
    with open(lp, "w") as f:
        for r in data:
            f.write(r.to_line_protocol() + "\n")


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--generate":
        master, written, lp = (Path(a) for a in sys.argv[2:5])
        generate(master, written, lp, int(sys.argv[5]), gas=sys.argv[6] == "gas")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--tuned-baseline",
        action="store_true",
        help="give the raw poster the same glibc allocator setting sync-cache uses",
    )
    parser.add_argument(
        "--with-gas", action="store_true", help="day files also hold 48 gas half-hours a day"
    )
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="VictoriaMetrics on CPU 0 and each measured client on CPU 1: SPEC §7's figure "
        "(without it, the shared figure, reported with no target)",
    )
    args = parser.parse_args()
    if args.pinned:
        if len(os.sched_getaffinity(0)) < 2:
            sys.exit("--pinned needs 2 CPUs")
        CLIENT_CPU[0] = 1
    # Measure an installed octomon: pip byte-compiles a regular install, but an editable
    # one under PYTHONDONTWRITEBYTECODE would recompile every module on every start.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "octomon")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    octomon = str(Path(sys.executable).with_name("octomon"))

    with tempfile.TemporaryDirectory(prefix="octomon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"writing {args.readings:,} readings as cache files, directly …", flush=True)
        t0 = time.perf_counter()
        master = tmp / "cache-master"
        written = tmp / "cache-octomon-written"
        lp = tmp / "raw.lp"
        # In a child process, so that this one stays small: a forked child's peak RSS
        # (wait4) starts from its parent's.
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                str(master),
                str(written),
                str(lp),
                str(args.readings),
                "gas" if args.with_gas else "electricity",
            ],
            check=True,
        )
        if sorted(p.name for p in master.iterdir()) != sorted(
            p.name for p in written.iterdir() if p.name != "cache.lock"
        ):
            sys.exit("the directly written cache and octomon's differ in their files")
        cache = Cache(master)
        files = len(cache.files())
        size = sum(p.stat().st_size for p in cache.files())
        print(
            f"  {files} day files, {size / 2**20:.1f} MB of cache, "
            f"{lp.stat().st_size / 2**20:.1f} MB of line protocol "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

        status_times = []
        for _ in range(3):
            env = {**os.environ, "CACHE_DIR": str(master)}
            elapsed, out = timed([octomon, "cache", "status", "--json"], env)
            status_times.append(elapsed)
        shown = json.loads(out)
        total = shown["readings"]  # electricity, and gas with --with-gas
        assert total == args.readings or (args.with_gas and total > args.readings), shown

        # Start-up alone: each side with nothing to send.
        empty = tmp / "empty"
        empty.mkdir()
        (empty / "empty.lp").touch()
        raw_script = tmp / "raw_post.py"
        raw_script.write_text(RAW_POSTER)
        start_env = {
            **os.environ,
            "CACHE_DIR": str(empty),
            "INFLUXDB_URL": "http://127.0.0.1:9",
            "INFLUXDB_TOKEN": "t",
            "INFLUXDB_ORG": "o",
        }
        starts_raw, starts_sync = [], []
        for _ in range(3):
            starts_raw.append(
                timed(
                    [sys.executable, str(raw_script), "http://127.0.0.1:9", str(empty / "empty.lp")]
                )[0]
            )
            starts_sync.append(timed([octomon, "sync-cache"], start_env)[0])

        vm, url = start_vm(tmp, pin(0 if args.pinned else None))
        try:
            raw_times: list[float] = []
            sync_times: list[float] = []
            written_times: list[float] = []
            rss: list[float] = []
            for run in range(args.runs):
                settle(url)
                vm_before = cpu_of(vm.pid)
                raw_env = dict(os.environ)
                if args.tuned_baseline:  # what octomon.store.sync.tune_allocator sets
                    raw_env["MALLOC_MMAP_THRESHOLD_"] = str(16 << 20)
                    raw_env["MALLOC_TRIM_THRESHOLD_"] = str(64 << 20)
                elapsed, _ = run_measured([sys.executable, str(raw_script), url, str(lp)], raw_env)
                raw_times.append(elapsed)
                raw_cpu, raw_vm = LAST_CPU[0], cpu_of(vm.pid) - vm_before
                work = tmp / f"cache-{run}"
                shutil.copytree(master, work)
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")},
                    "CACHE_DIR": str(work),
                    "INFLUXDB_URL": url,
                    "INFLUXDB_TOKEN": "bench-token",
                    "INFLUXDB_ORG": "bench",
                    "INFLUXDB_BUCKET": "bench",
                    "LOG_LEVEL": "warning",
                }
                settle(url)
                vm_before = cpu_of(vm.pid)
                elapsed, peak = run_measured([octomon, "sync-cache"], env)
                sync_times.append(elapsed)
                sync_cpu, sync_vm = LAST_CPU[0], cpu_of(vm.pid) - vm_before
                rss.append(peak)
                left = Cache(work).status()
                if left.readings or left.files:
                    sys.exit(f"sync-cache left {left.readings} readings in {left.files} files")
                shutil.rmtree(work)
                shutil.copytree(written, work)
                settle(url)
                elapsed, peak2 = run_measured([octomon, "sync-cache"], env)
                written_times.append(elapsed)
                rss.append(peak2)
                shutil.rmtree(work)
                print(
                    f"  run {run + 1}: raw {raw_times[-1]:.2f} s (cpu {raw_cpu:.2f} s, "
                    f"VictoriaMetrics {raw_vm:.2f} s), sync-cache {sync_times[-1]:.2f} s "
                    f"(cpu {sync_cpu:.2f} s, VictoriaMetrics {sync_vm:.2f} s, {peak:.0f} MB), "
                    f"octomon-written {written_times[-1]:.2f} s ({peak2:.0f} MB), "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        finally:
            vm.terminate()
            vm.wait(10)

    raw_med = statistics.median(raw_times)
    sync_med = statistics.median(sync_times)
    written_med = statistics.median(written_times)
    ratio = raw_med / sync_med
    written_ratio = raw_med / written_med
    peak_rss = max(rss)
    n = total
    if args.with_gas:
        print(f"{args.readings:,} electricity readings and {n - args.readings:,} gas half-hours")
    print(f"raw line protocol : {raw_med:.2f} s  ({n / raw_med:,.0f} readings/s)")
    print(f"octomon sync-cache: {sync_med:.2f} s  ({n / sync_med:,.0f} readings/s)")
    target = f"target >= {TARGET_RATIO}" if args.pinned else "shared cores: no target"
    print(f"ratio (throughput of sync-cache / raw): {ratio:.2f}  ({target})")
    print(
        f"same, files written by octomon's writer: {written_med:.2f} s, ratio {written_ratio:.2f}"
    )
    print(f"peak RSS of sync-cache: {peak_rss:.0f} MB  (target < {TARGET_RSS_MB:.0f} MB)")
    print(
        f"start-up alone (nothing to send): raw {statistics.median(starts_raw):.2f} s, "
        f"sync-cache {statistics.median(starts_sync):.2f} s"
    )
    print(f"cache status --json on {n:,} readings: {statistics.median(status_times):.2f} s")
    print(f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.1f}")
    if args.pinned:
        print("pinned: VictoriaMetrics on CPU 0, the clients on CPU 1 (SPEC §7's figure)")
    else:
        print("shared: the server and the clients on both cores (SPEC §7's is --pinned)")
    fast = not args.pinned or (ratio >= TARGET_RATIO and written_ratio >= TARGET_RATIO)
    ok = fast and peak_rss < TARGET_RSS_MB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
