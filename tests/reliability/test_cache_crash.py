"""Crash and contention: every acknowledged reading survives and is delivered exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.errors import CacheError
from octomon.readings import Reading, format_time
from octomon.store.cache import Cache
from octomon.store.influx import InfluxSink
from octomon.store.sync import sync
from tests.helpers.influx_emulator import InfluxEmulator

pytestmark = pytest.mark.integration

TOKEN = "crash-test-token-12345"
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

WRITER = r"""
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from octomon.store.cache import Cache
from octomon.readings import Reading, format_time
cache = Cache(Path(sys.argv[1]))
start, batch = int(sys.argv[2]), int(sys.argv[3])
t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
i = start
while True:
    group = [Reading(t0 + timedelta(seconds=10 * (i + k)), "00-00-00-00-00-00-00-0a",
                     demand=(i + k) / 1000, consumption=5000 + (i + k) / 10000)
             for k in range(batch)]
    cache.append(group)
    # acknowledged: append returned, so these are on disk (fsync'ed)
    sys.stdout.write("".join(format_time(r.read_at) + "\n" for r in group))
    sys.stdout.flush()
    i += batch
"""


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        yield emulator


def sink(influx: InfluxEmulator) -> InfluxSink:
    return InfluxSink(influx.url, TOKEN, "home", "energy")


def delivered(influx: InfluxEmulator) -> list[str]:
    return [
        format_time(datetime.fromtimestamp(int(x.rsplit(" ", 1)[1]), timezone.utc))
        for x in influx.points()
    ]


def env_for(cache_dir: Path, influx: InfluxEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFLUXDB_", "CACHE_"))}
    env.update(
        CACHE_DIR=str(cache_dir),
        INFLUXDB_URL=influx.url,
        INFLUXDB_TOKEN=TOKEN,
        INFLUXDB_ORG="home",
        INFLUXDB_BUCKET="energy",
    )
    return env


def test_sigkill_mid_append_loses_no_acknowledged_reading(
    tmp_path: Path, influx: InfluxEmulator
) -> None:
    cache_dir = tmp_path / "cache"
    acked: list[str] = []
    start = 0
    for delay in (0.3, 0.45, 0.6):  # three crashes at different moments, same cache
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(cache_dir), str(start), "300"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        # A line cut short by the kill was not acknowledged.
        got = [x for x in out.split("\n")[:-1] if len(x) == 20]
        acked.extend(got)
        start += len(got) + 600  # leave room for a batch that was not acknowledged
    assert len(acked) > 300, "the writer did not get going"
    with sink(influx) as s:
        result = sync(Cache(cache_dir), s)
    assert result.error is None and result.left == 0
    got = delivered(influx)
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged readings were lost"
    assert len(got) == len(set(got))  # nothing twice


def test_torn_last_line_and_garbage_middle_line_are_quarantined(
    tmp_path: Path, influx: InfluxEmulator
) -> None:
    cache_dir = tmp_path / "cache"
    cache = Cache(cache_dir)
    rs = [Reading(T0 + timedelta(seconds=10 * i), "dev-1", demand=i / 4) for i in range(6)]
    cache.append(rs)
    path = cache.files()[0]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(
        b"".join(lines[:3]) + b"\x00\x00\x00{garbage\n" + b"".join(lines[3:]) + lines[0][:25]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "octomon", "sync-cache"],
        env=env_for(cache_dir, influx),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "synced 6 readings" in proc.stdout
    assert "2 unreadable line(s) moved to" in proc.stdout
    assert sorted(delivered(influx)) == [format_time(r.read_at) for r in rs]
    assert Cache(cache_dir).status().quarantined == 2
    assert cache.files() == []
    quarantined = (cache_dir / "quarantine" / path.name).read_text()
    assert "garbage" in quarantined and '{\\"read_at\\":\\"2026-03-01T00' in quarantined


def test_a_full_disk_raises_a_clear_error_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A real full disk: a 64 KB tmpfs (needs root; the injected ENOSPC is in test_cache)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); ENOSPC is injected in test_cache.py")
    try:
        cache = Cache(mount / "cache")
        acked: list[Reading] = []
        i = 0
        with pytest.raises(CacheError) as info:
            while True:
                group = [
                    Reading(T0 + timedelta(seconds=10 * (i + k)), "dev", demand=0.5)
                    for k in range(50)
                ]
                cache.append(group)
                acked.extend(group)
                i += 50
        assert "no space left on device" in info.value.message
        assert acked, "the first appends should have fitted"
        kept = list(cache.iter_readings())
        assert kept == acked  # every acknowledged reading, nothing half written
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_two_syncs_at_once_deliver_everything_and_delete_nothing_early(
    tmp_path: Path, influx: InfluxEmulator
) -> None:
    cache_dir = tmp_path / "cache"
    cache = Cache(cache_dir)
    n = 20_000  # about 2.3 days: three day files, four batches each
    rs = [Reading(T0 + timedelta(seconds=10 * i), "dev-2", demand=i / 100) for i in range(n)]
    cache.append(rs)
    influx.slow(0.03)  # so that the two really overlap
    env = env_for(cache_dir, influx)
    cmd = [sys.executable, "-m", "octomon", "sync-cache"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Meanwhile the monitor keeps appending to the newest day file.
    later = [Reading(T0 + timedelta(seconds=10 * (n + i)), "dev-2", demand=1.0) for i in range(50)]
    for r in later:
        cache.append([r])
        time.sleep(0.005)
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    with sink(influx) as s:
        sync(cache, s)  # whatever arrived after both had looked
    got = set(delivered(influx))
    assert got == {format_time(r.read_at) for r in rs + later}
    assert cache.is_empty()
