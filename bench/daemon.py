"""SPEC §7: what a Raspberry Pi pays to run the daemon, against a baseline poller.

Set up here, on loopback, in a temp dir on the same disk as ``$TMPDIR``:

* a real VictoriaMetrics (``victoria-metrics``) taking InfluxDB line protocol;
* the simulator (``python -m octomon.sim``) over HTTP;
* a tally of 35 days (the Home Mini side of the reconciliation, SPEC §10) written into
  ``CACHE_DIR`` first, from the simulator's own readings: a Pi that has run for weeks;
* ``octomon run`` at its defaults — gas, tariff and settled jobs on, direct mode — except
  the poll interval (accelerated: 10 s, so each cycle stores about one reading) and a
  simulator that allows more calls an hour;
* beside it, at the same time and the same interval, ``bench/baseline_poller.py``: a
  process that only polls the simulator and posts the readings to VictoriaMetrics.

Each process prints a line per cycle; at each line this script samples the process's
``/proc/PID/io`` (``write_bytes``: what reached, or will reach, the disk), ``/proc/PID/stat``
and ``/proc/PID/task/*/schedstat`` (CPU) and ``/proc/PID/status`` (RSS, peak RSS). The first
``--warmup`` cycles (start-up: discovery, the jobs' first fetches) are not measured, then
``--cycles`` cycles are (at least 20).

Reported, with the targets of SPEC §7:

* bookkeeping written per cycle and per day at 60-second polls (1,440 cycles: the mean of
  the measured cycles × 1,440 — the state is written every few cycles, not every
  one, so a median would hide it; a cycle that stores one reading pays the same bookkeeping
  as one that stores six; the cycles in which a scheduled job ran — tariffs, settled data,
  gas, at most half-hourly — are listed apart, not multiplied by 1,440) — target at most
  16 MiB a day. ``write_bytes`` counts a page
  when it is dirtied: a file rewritten in place (``status.json``) within the kernel's
  writeback delay (about 30 s) is counted once, so only ``--poll 60`` measures what a
  60-second poll pays; the default 10-s poll is quicker and reads lower;
* CPU per cycle, median (from the threads' ``schedstat``, in nanoseconds: the 10-ms ticks
  of ``/proc/PID/stat`` are too coarse for one cycle) and mean (from ``/proc/PID/stat``
  over the whole run) — target: the median at most 15 ms;
* peak and final RSS — target under 80 MB;
* the baseline's figures and the ratios (octomon / baseline).

``--long``: at least two hours (``--hours``) of 60-second polls, reporting RSS at the 20th
and the last cycle (target: within 5 MB). Accelerated: the wall clocks of the simulator,
the daemon and the baseline run 15 times faster (``--speed``, libfaketime), their waits in
real time, so a 60-second poll comes every 4 s and two hours take about nine minutes —
every hourly and half-hourly rule (the call ledger, the jobs' schedules, the tally's
flushes, the panel's 30 minutes) turns over as on a Pi. (libfaketime also divides socket
timeouts by the speed: faster than about 15× a cold simulator's slowest answers time out.)
Its write figures are not a Pi's: a page rewritten within the kernel's writeback delay is
counted once. ``--speed 1 --poll 40`` runs it in real time.

``--outputs``: also publish (SPEC §13) — a Mosquitto on loopback (``MQTT_URL``) and the
HTTP endpoints (``HTTP_LISTEN``), passed through the environment.

    python bench/daemon.py [--cycles 20] [--warmup 6] [--poll 10] [--long [--speed 15]]
                           [--outputs]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import free_port, start_vm  # noqa: E402

TARGET_MIB_DAY = 16.0
TARGET_CPU_MS = 15.0
TARGET_RSS_MB = 80.0
TARGET_GROWTH_MB = 5.0
TALLY_DAYS = 35
CYCLES_A_DAY = 1440  # at 60-second polls
TICK = os.sysconf("SC_CLK_TCK")
CYCLE_LINE = re.compile(r"\bstored (\d+) readings?\b|\bcycle stored (\d+)\b")
JOB_LINE = re.compile(r"\boctomon\.daemon\.(?:jobs|gas|schedule):")


# --- the services ----------------------------------------------------------------------------


def start_sim(warp: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``python -m octomon.sim`` (seed 1), its clock warped as ``warp`` says; the settings
    it prints."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "octomon.sim",
            "--port",
            str(port),
            "--rate-limit-per-hour",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **warp},
    )
    assert proc.stdout is not None
    settings: dict[str, str] = {}
    while "OCTOPUS_DEVICE_ID" not in settings:
        raw = proc.stdout.readline()
        if not raw:
            sys.exit(f"the simulator exited ({proc.wait()})")
        name, eq, value = raw.decode().strip().partition("=")
        if eq and name.startswith("OCTOPUS_"):
            settings[name] = value
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the rest
    if warp:
        warm_up(settings)
    return proc, settings


def warm_up(settings: dict[str, str]) -> None:
    """A token and a day of telemetry asked once, unwarped: the simulator builds its days
    then, not under a warped client's timeouts (libfaketime divides them by the speed)."""
    import json
    import urllib.request

    def ask(query: str, variables: dict[str, object], token: str | None = None) -> object:
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {
            "Content-Type": "application/json",
            **({"Authorization": token} if token else {}),
        }
        req = urllib.request.Request(settings["OCTOPUS_API_URL"], body, headers)
        with urllib.request.urlopen(req, timeout=60) as answer:
            return json.load(answer)

    got = ask(
        "mutation T($input: ObtainJSONWebTokenInput!) {"
        " obtainKrakenToken(input: $input) { token } }",
        {"input": {"APIKey": settings["OCTOPUS_API_KEY"]}},
    )
    token = got["data"]["obtainKrakenToken"]["token"]  # type: ignore[index]
    now = datetime.now(timezone.utc)
    ask(
        "query Q($d: String!, $s: DateTime, $e: DateTime) { smartMeterTelemetry(deviceId: $d,"
        " start: $s, end: $e, grouping: TEN_SECONDS) { readAt } }",
        {
            "d": settings["OCTOPUS_DEVICE_ID"],
            "s": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "e": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        token,
    )


def start_mosquitto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("mosquitto")
    if binary is None:
        sys.exit("--outputs needs mosquitto (apt-get install mosquitto)")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"mqtt://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


# --- accelerated time (--long) ----------------------------------------------------------------


def warp_env(speed: int) -> dict[str, str]:
    """The environment that runs a process's wall clock ``speed`` times faster (libfaketime),
    its monotonic clock and its waits untouched: a 2-second wait between polls is then a
    60-second poll on the wall clock, which is all the daemon, the simulator and the
    baseline judge time by (cursor, windows, call ledger, schedules, the tally's half-hours).
    Each process's fast clock starts at its own start: started a second apart, their
    clocks differ by ``speed`` seconds, the simulator (started first) ahead — readings it
    has served are never in the future of the daemon's clock."""
    if speed == 1:
        return {}
    lib = os.environ.get("FAKETIME_LIB") or next(
        (str(p) for p in sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None
    )
    if lib is None:
        sys.exit("--speed needs libfaketime (apt-get install faketime), or FAKETIME_LIB=path")
    return {
        "LD_PRELOAD": lib,
        "FAKETIME": f"+0 x{speed}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "NO_FAKE_STAT": "1",
    }


# --- the tally a Pi has after weeks ----------------------------------------------------------


def prepare_tally(cache_dir: Path, now: datetime) -> tuple[int, int]:
    """The simulator's (seed 1) readings of the last 35 days counted into CACHE_DIR's tally,
    as octomon would have after storing them; (readings, bytes of tally files)."""
    from octomon.readings import Reading
    from octomon.sim import SimHomeMini
    from octomon.store.tally import Tally

    home = SimHomeMini(seed=1, record=False)
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
    t = end - timedelta(days=TALLY_DAYS)
    t -= timedelta(seconds=t.second % 10)
    readings = []
    while t < end:
        item = home.reading_at(t)
        if item is not None:
            reading = Reading.from_api(item, home.device_id)
            if reading is not None:
                readings.append(reading)
        t += timedelta(seconds=10)
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tally = Tally(cache_dir)
    for i in range(0, len(readings), 8640):  # a day at a time, as a backfill would
        tally.record(readings[i : i + 8640])
    size = sum(p.stat().st_size for p in cache_dir.rglob("tally*") if p.is_file())
    return len(readings), size


# --- sampling a process at each of its cycles ------------------------------------------------


@dataclass
class Sample:
    at: float
    stored: int
    write_bytes: int
    cpu_ticks: int  # user + system, every thread that ever ran (/proc/PID/stat)
    cpu_ns: int  # on-CPU time of the live threads (/proc/PID/task/*/schedstat): precise
    rss_kb: int
    peak_kb: int
    job: bool = False  # a scheduled job (tariffs, settled, gas) ran since the last sample


@dataclass
class Watched:
    """A child process whose cycle lines are sampled (in a thread reading its output)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    samples: list[Sample] = field(default_factory=list)
    lines: int = 0

    def follow(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "ab") as out:
            job = False
            for raw in self.proc.stdout:
                out.write(raw)
                text = raw.decode("utf-8", "replace")
                job = job or JOB_LINE.search(text) is not None
                m = CYCLE_LINE.search(text)
                if m is None:
                    continue
                sample = sample_of(self.proc.pid, int(m.group(1) or m.group(2)))
                if sample is not None:
                    sample.job, job = job, False
                    self.samples.append(sample)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def sample_of(pid: int, stored: int) -> Sample | None:
    try:
        io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except OSError:
        return None
    cpu_ns = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            cpu_ns += int(task.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return Sample(
        at=time.monotonic(),
        stored=stored,
        write_bytes=int(io["write_bytes"]),
        cpu_ticks=int(stat[11]) + int(stat[12]),
        cpu_ns=cpu_ns,
        rss_kb=int(status["VmRSS"].split()[0]),
        peak_kb=int(status["VmHWM"].split()[0]),
    )


def watch(name: str, argv: list[str], env: dict[str, str], log: Path) -> Watched:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watched = Watched(name, proc, log)
    threading.Thread(target=watched.follow, daemon=True).start()
    return watched


def stop(w: Watched) -> None:
    if w.proc.poll() is None:
        w.proc.send_signal(signal.SIGTERM)
        try:
            w.proc.wait(30)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


# --- figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    cycles: int
    storing: int
    bytes_median: float  # per storing cycle
    bytes_mean: float
    idle_median: float  # per cycle that stored nothing
    every_mean: float  # per cycle, every measured cycle: what a day costs (see figures())
    per_cycle: list[int]  # bytes written, each measured cycle
    job_cycles: list[int]  # bytes written in the cycles where a scheduled job ran
    cpu_median_ms: float  # per cycle
    cpu_mean_ms: float
    peak_mb: float
    final_mb: float
    rss_20th_mb: float

    @property
    def mib_day(self) -> float:
        return self.every_mean * CYCLES_A_DAY / 2**20

    @property
    def mib_day_median(self) -> float:
        return self.bytes_median * CYCLES_A_DAY / 2**20


def figures(samples: list[Sample], warmup: int) -> Figures:
    """Per-cycle deltas from the ``warmup``-th cycle line on."""
    measured = samples[warmup:]
    pairs = list(itertools.pairwise(measured))
    # A day's figure from the cycles without a scheduled job: the jobs run every half-hour
    # at most (gas) or daily, and 20 cycles holding one would count it hundreds of times.
    every = [b.write_bytes - a.write_bytes for a, b in pairs if not b.job]
    jobs = [b.write_bytes - a.write_bytes for a, b in pairs if b.job]
    storing = [b.write_bytes - a.write_bytes for a, b in pairs if b.stored > 0] or [0]
    idle = [b.write_bytes - a.write_bytes for a, b in pairs if b.stored == 0] or [0]
    # The median from the threads' own counters (nanoseconds; the ticks of /proc/PID/stat
    # are 10 ms, too coarse for a cycle's few milliseconds); the mean from the ticks, which
    # also count threads that ended meanwhile.
    precise = [(b.cpu_ns - a.cpu_ns) / 1e6 for a, b in pairs]
    ticks = (measured[-1].cpu_ticks - measured[0].cpu_ticks) * 1000 / TICK
    twentieth = samples[min(len(samples) - 1, 19)]
    return Figures(
        cycles=len(pairs),
        storing=sum(1 for _, b in pairs if b.stored > 0),
        bytes_median=statistics.median(storing),
        bytes_mean=statistics.fmean(storing),
        idle_median=statistics.median(idle),
        every_mean=statistics.fmean(every or [0]),
        per_cycle=[b.write_bytes - a.write_bytes for a, b in pairs],
        job_cycles=jobs,
        cpu_median_ms=statistics.median(precise),
        cpu_mean_ms=ticks / max(1, len(pairs)),
        peak_mb=max(s.peak_kb for s in samples) / 1024,
        final_mb=samples[-1].rss_kb / 1024,
        rss_20th_mb=twentieth.rss_kb / 1024,
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b > 0 else "—"


def report(ours: Figures, base: Figures, long: bool, warped: bool = False) -> bool:
    """Print the figures and the ratios; True when every target is met."""
    print()
    print(f"{'':34}{'octomon':>14}{'baseline':>14}{'ratio':>9}")
    rows = [
        (
            "cycles measured (storing)",
            f"{ours.cycles} ({ours.storing})",
            f"{base.cycles} ({base.storing})",
            "",
        ),
        (
            "written / storing cycle, median",
            f"{ours.bytes_median / 1024:.1f} KiB",
            f"{base.bytes_median / 1024:.1f} KiB",
            ratio(ours.bytes_median, base.bytes_median),
        ),
        (
            "written / storing cycle, mean",
            f"{ours.bytes_mean / 1024:.1f} KiB",
            f"{base.bytes_mean / 1024:.1f} KiB",
            ratio(ours.bytes_mean, base.bytes_mean),
        ),
        (
            "written / idle cycle, median",
            f"{ours.idle_median / 1024:.1f} KiB",
            f"{base.idle_median / 1024:.1f} KiB",
            "",
        ),
        (
            "written / cycle, mean (no job)",
            f"{ours.every_mean / 1024:.1f} KiB",
            f"{base.every_mean / 1024:.1f} KiB",
            ratio(ours.every_mean, base.every_mean),
        ),
        (
            "written a day at 60-s polls",
            f"{ours.mib_day:.1f} MiB",
            f"{base.mib_day:.1f} MiB",
            ratio(ours.mib_day, base.mib_day),
        ),
        (
            "CPU / cycle, median",
            f"{ours.cpu_median_ms:.1f} ms",
            f"{base.cpu_median_ms:.1f} ms",
            ratio(ours.cpu_median_ms, base.cpu_median_ms),
        ),
        (
            "CPU / cycle, mean",
            f"{ours.cpu_mean_ms:.1f} ms",
            f"{base.cpu_mean_ms:.1f} ms",
            ratio(ours.cpu_mean_ms, base.cpu_mean_ms),
        ),
        (
            "peak RSS",
            f"{ours.peak_mb:.1f} MB",
            f"{base.peak_mb:.1f} MB",
            ratio(ours.peak_mb, base.peak_mb),
        ),
        (
            "final RSS",
            f"{ours.final_mb:.1f} MB",
            f"{base.final_mb:.1f} MB",
            ratio(ours.final_mb, base.final_mb),
        ),
    ]
    if long:
        rows.append(
            (
                "RSS at the 20th cycle",
                f"{ours.rss_20th_mb:.1f} MB",
                f"{base.rss_20th_mb:.1f} MB",
                "",
            )
        )
    for label, a, b, r in rows:
        print(f"{label:34}{a:>14}{b:>14}{r:>9}")
    own = (ours.every_mean - base.every_mean) * CYCLES_A_DAY / 2**20
    print(f"\noctomon's own writes (octomon − baseline): {own:.1f} MiB a day at 60-s polls")
    print(f"(the median storing cycle × 1,440 instead: {ours.mib_day_median:.1f} MiB a day)")
    if ours.job_cycles:
        print(
            f"cycles with a scheduled job (left out of the day's figure): {len(ours.job_cycles)},"
            f" {', '.join(f'{b / 1024:g}' for b in ours.job_cycles)} KiB"
        )
    print(
        "octomon, KiB written each measured cycle:",
        " ".join(f"{b / 1024:g}" for b in ours.per_cycle),
    )
    checks = [
        (f"bookkeeping writes <= {TARGET_MIB_DAY:g} MiB/day", ours.mib_day <= TARGET_MIB_DAY),
        (f"CPU per cycle (median) <= {TARGET_CPU_MS:g} ms", ours.cpu_median_ms <= TARGET_CPU_MS),
        (f"RSS < {TARGET_RSS_MB:g} MB", ours.peak_mb < TARGET_RSS_MB),
    ]
    if long:
        growth = ours.final_mb - ours.rss_20th_mb
        checks.append(
            (
                f"RSS at the last cycle within {TARGET_GROWTH_MB:g} MB of the 20th "
                f"({growth:+.1f} MB)",
                abs(growth) <= TARGET_GROWTH_MB,
            )
        )
    if warped:
        print("(clocks warped: a page rewritten within ~30 s of real time is counted once, so")
        print(" the write figures are low; run without --speed, at --poll 60, for those)")
    print()
    for label, ok in checks:
        print(f"  {'OK  ' if ok else 'MISS'} {label}")
    print(f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.1f}")
    return all(ok for _, ok in checks)


# --- the run ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="cycles measured (>= 20)")
    parser.add_argument("--warmup", type=int, default=6, help="start-up cycles not measured")
    parser.add_argument("--poll", type=int, default=None, help="seconds between polls")
    parser.add_argument("--long", action="store_true", help="a run of --hours, RSS drift")
    parser.add_argument("--hours", type=float, default=2.0, help="length of --long")
    parser.add_argument(
        "--speed",
        type=int,
        default=None,
        help="wall clocks run this much faster (libfaketime; --long: 15, a 60-s poll every 4 s)",
    )
    parser.add_argument("--outputs", action="store_true", help="MQTT + HTTP outputs on too")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if args.cycles < 20:
        parser.error("--cycles: at least 20 (SPEC §7)")
    speed = args.speed or (15 if args.long else 1)
    poll = args.poll or (60 if args.long else 10)  # on the (warped) wall clock
    wait = poll // speed  # real seconds between polls
    if wait < 1 or wait * speed != poll:
        parser.error("--poll must be a whole multiple of --speed")
    if args.long:
        # The hourly API budget (at most 100) bounds how fast a long run may poll: on the
        # wall clock, which --speed runs faster.
        args.cycles = max(args.cycles, int(args.hours * 3600 / poll))
        if 3600 / poll + 6 > 100:
            parser.error("--long: --poll must leave room in the hourly API budget (>= 40)")
    warp = warp_env(speed)
    octomon = str(Path(sys.executable).with_name("octomon"))
    tmp = Path(tempfile.mkdtemp(prefix="octomon-bench-daemon-"))
    children: list[subprocess.Popen[bytes]] = []
    watched: list[Watched] = []
    try:
        cache_dir = tmp / "cache"
        t0 = time.perf_counter()
        count, size = prepare_tally(cache_dir, datetime.now(timezone.utc))
        print(
            f"tally of {TALLY_DAYS} days prepared: {count:,} readings, {size / 1024:.0f} KiB "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        vm, influx = start_vm(tmp)
        children.append(vm)
        sim, sim_env = start_sim(warp)
        children.append(sim)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OCTOPUS_", "INFLUXDB_", "SLACK_", "MQTT_", "HTTP_LISTEN"))
        }
        env.update(
            OCTOPUS_API_KEY=sim_env["OCTOPUS_API_KEY"],
            OCTOPUS_ACCOUNT_NUMBER=sim_env["OCTOPUS_ACCOUNT_NUMBER"],
            OCTOPUS_API_URL=sim_env["OCTOPUS_API_URL"],
            OCTOPUS_REST_URL=sim_env["OCTOPUS_REST_URL"],
            OCTOPUS_MAX_CALLS_PER_HOUR="100",
            POLL_INTERVAL_SECONDS=str(wait),
            INFLUXDB_URL=influx,
            INFLUXDB_TOKEN="bench-token",
            INFLUXDB_ORG="bench",
            INFLUXDB_BUCKET="bench",
            CACHE_DIR=str(cache_dir),
            LOG_LEVEL="info",
            PYTHONUNBUFFERED="1",
            **warp,
        )
        if args.outputs:
            mqtt, mqtt_url = start_mosquitto(tmp)
            children.append(mqtt)
            env.update(MQTT_URL=mqtt_url, HTTP_LISTEN=f"127.0.0.1:{free_port()}")
        need = args.warmup + args.cycles + 1
        fast = f" (clocks {speed}× fast: every {wait} s of real time)" if speed > 1 else ""
        print(
            f"octomon run and the baseline poller, every {poll} s{fast}: {args.warmup} "
            f"start-up cycles, then {args.cycles} measured (about {need * wait / 60:.0f} min) …",
            flush=True,
        )
        ours = watch("octomon", [octomon, "run"], env, tmp / "octomon.log")
        watched.append(ours)
        base = watch(
            "baseline",
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_poller.py"),
                sim_env["OCTOPUS_API_URL"],
                sim_env["OCTOPUS_API_KEY"],
                sim_env["OCTOPUS_DEVICE_ID"],
                influx,
                str(wait),
            ],
            env,
            tmp / "baseline.log",
        )
        watched.append(base)
        deadline = time.monotonic() + need * wait * 3 + 120
        shown = 0
        while min(len(w.samples) for w in watched) < need:
            for w in watched:
                if w.proc.poll() is not None:
                    sys.exit(f"{w.name} exited ({w.proc.returncode}):\n{w.tail()}")
            if time.monotonic() > deadline:
                sys.exit(
                    f"too slow: {[len(w.samples) for w in watched]} cycles of {need}\n{ours.tail()}"
                )
            if args.long and len(ours.samples) >= shown + 60:
                shown = len(ours.samples)
                print(f"  cycle {shown}: RSS {ours.samples[-1].rss_kb / 1024:.1f} MB", flush=True)
            time.sleep(0.5)
        for w in watched:
            stop(w)
        files = sorted(p for p in cache_dir.rglob("*") if p.is_file())
        sizes = ", ".join(
            f"{p.relative_to(cache_dir)} {p.stat().st_size / 1024:.1f} KiB" for p in files
        )
        print(f"CACHE_DIR after the run: {sizes}")
        ok = report(
            figures(ours.samples, args.warmup),
            figures(base.samples, args.warmup),
            args.long,
            warped=speed > 1,
        )
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        for w in watched:
            stop(w)
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
