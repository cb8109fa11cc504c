"""`octomon sync-cache`, `cache status` and `cache export`: exit codes and what users see."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.cli import cache as cache_cli
from octomon.readings import Reading
from octomon.store.cache import Cache
from tests.helpers.cli import invoke
from tests.helpers.influx_emulator import InfluxEmulator

TOKEN = "cli-influx-token-abcdef123456"
T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"  # what conftest points CACHE_DIR at


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("octopus_energy",))
        yield emulator


def influx_env(influx: InfluxEmulator) -> dict[str, str]:
    return {"INFLUXDB_URL": influx.url, "INFLUXDB_TOKEN": TOKEN, "INFLUXDB_ORG": "home"}


def readings(n: int, **kw: float) -> list[Reading]:
    return [
        Reading(
            T0 + timedelta(seconds=10 * i), "dev-1", demand=i / 100, consumption=5000.0 + i, **kw
        )
        for i in range(n)
    ]


# --- sync-cache ---------------------------------------------------------------------------


def test_sync_cache_needs_influxdb_url() -> None:
    result = invoke("sync-cache")
    assert result.exit_code == 2
    assert "INFLUXDB_URL is required" in result.output
    assert "Traceback" not in result.output


def test_sync_cache_with_nothing_to_do(influx: InfluxEmulator, cache_dir: Path) -> None:
    result = invoke("sync-cache", env=influx_env(influx))
    assert result.exit_code == 0, result.output
    assert "nothing to sync" in result.output
    assert influx.writes(None) == []


def test_sync_cache_delivers_everything(influx: InfluxEmulator, cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(12))
    result = invoke("sync-cache", env=influx_env(influx))
    assert result.exit_code == 0, result.output
    assert "synced 12 readings to InfluxDB (1 day file done)" in result.output
    assert influx.points() == [r.to_line_protocol() for r in readings(12)]
    assert Cache(cache_dir).is_empty()
    assert TOKEN not in result.output


def test_sync_cache_exits_1_with_the_reason_when_influxdb_is_down(
    influx: InfluxEmulator, cache_dir: Path
) -> None:
    Cache(cache_dir).append(readings(5))
    influx.fail(503, retry_after="9")
    result = invoke("sync-cache", env=influx_env(influx))
    assert result.exit_code == 1
    assert "synced 0 readings" in result.output
    assert (
        "error: 5 readings left in the cache: InfluxDB is unavailable (HTTP 503 Service "
        "Unavailable): service unavailable; retry after 9 s" in result.output
    )
    assert "Traceback" not in result.output
    assert Cache(cache_dir).status().readings == 5


def test_sync_cache_reports_refused_readings(influx: InfluxEmulator, cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(4))
    influx.reject_containing("demand=0.03")
    result = invoke("sync-cache", env=influx_env(influx))
    assert result.exit_code == 1
    assert "synced 3 readings" in result.output  # only the refused one is set aside
    assert "InfluxDB refused 1 readings; they are set aside in" in result.output
    assert "invalid boolean" in result.output
    assert Cache(cache_dir).status().rejected == 1


def test_sync_cache_waits_for_the_lock_then_says_busy(
    influx: InfluxEmulator, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Cache(cache_dir).append(readings(3))
    monkeypatch.setattr(cache_cli, "LOCK_WAIT", 0.3)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Cache(cache_dir).lock():
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(5)
        result = invoke("sync-cache", env=influx_env(influx))
    finally:
        release.set()
        t.join()
    assert result.exit_code == 1
    assert "is busy" in result.output
    assert influx.writes(None) == []


# --- cache status ---------------------------------------------------------------------------


def test_status_json_has_exactly_the_documented_keys(cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(3))
    result = invoke("cache", "status", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert list(shown) == [
        "files", "readings", "oldest", "newest", "bytes", "quarantined", "rejected"
    ]  # fmt: skip
    assert shown["files"] == 1 and shown["readings"] == 3
    assert shown["oldest"] == "2026-11-27T14:00:00Z" and shown["newest"] == "2026-11-27T14:00:20Z"
    assert shown["bytes"] == sum(p.stat().st_size for p in Cache(cache_dir).files())
    assert shown["quarantined"] == 0 and shown["rejected"] == 0


def test_status_of_a_cache_that_does_not_exist(cache_dir: Path) -> None:
    result = invoke("cache", "status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "files": 0, "readings": 0, "oldest": None, "newest": None,
        "bytes": 0, "quarantined": 0, "rejected": 0,
    }  # fmt: skip
    assert not cache_dir.exists()
    result = invoke("cache", "status")
    assert result.exit_code == 0 and "readings waiting" in result.output
    assert not cache_dir.exists()


def test_status_validates_only_cache_dir(cache_dir: Path, tmp_path: Path) -> None:
    env = {"OCTOPUS_ACCOUNT_NUMBER": "nonsense", "INFLUXDB_URL": "not a url"}
    assert invoke("cache", "status", env=env).exit_code == 0
    (tmp_path / "afile").write_text("x")
    result = invoke("cache", "status", env={"CACHE_DIR": str(tmp_path / "afile")})
    assert result.exit_code == 2
    assert "CACHE_DIR" in result.output and "not a directory" in result.output


def test_status_table(cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(1500))
    result = invoke("cache", "status")
    assert result.exit_code == 0
    assert "1,500" in result.output and "2026-11-27T14:00:00Z" in result.output


# --- cache export ---------------------------------------------------------------------------


def test_export_jsonl_is_the_default(cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(3))
    result = invoke("cache", "export")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines == [r.to_json() for r in readings(3)]


def test_export_csv_header_and_values(cache_dir: Path) -> None:
    Cache(cache_dir).append(readings(2, cost_delta=0.0001))
    result = invoke("cache", "export", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [
        "read_at", "device_id", "consumption_delta", "demand", "cost_delta",
        "consumption", "cost_delta_with_tax", "export", "fuel", "volume_delta",
    ]  # fmt: skip
    assert rows[2] == [
        "2026-11-27T14:00:10Z", "dev-1", "", "0.01", "0.0001", "5001.0", "", "", "electricity", "",
    ]  # fmt: skip


def test_export_line_protocol_to_a_file(cache_dir: Path, tmp_path: Path) -> None:
    Cache(cache_dir).append(readings(3))
    out = tmp_path / "out.lp"
    result = invoke("cache", "export", "--format", "line-protocol", "--output", str(out))
    assert result.exit_code == 0
    assert out.read_text().splitlines() == [r.to_line_protocol() for r in readings(3)]
    assert "exported 3 readings to" in result.output


def test_export_skips_unreadable_lines_and_says_so(cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    cache.append(readings(2))
    with open(cache.files()[0], "a") as f:
        f.write("garbage\n")
    result = invoke("cache", "export")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [r.to_json() for r in readings(2)]
    assert "1 unreadable line(s) skipped" in result.output


def test_export_of_an_empty_cache(cache_dir: Path) -> None:
    result = invoke("cache", "export", "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [",".join(cache_cli.CSV_HEADER)]
    assert not cache_dir.exists()


def test_export_rejects_an_unknown_format() -> None:
    result = invoke("cache", "export", "--format", "xml")
    assert result.exit_code == 2


# --- cache requeue ----------------------------------------------------------------------------


def test_cache_requeue_with_nothing_set_aside(cache_dir: Path) -> None:
    result = invoke("cache", "requeue")
    assert result.exit_code == 0
    assert result.output == f"nothing to requeue: {cache_dir / 'rejected'} holds no readings\n"


def test_cache_requeue_moves_readings_back_and_says_how_many(cache_dir: Path) -> None:
    cache = Cache(cache_dir)
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    cache.write_rejected([r.to_json() for r in readings(3)], "HTTP 400: bad", now)
    result = invoke("cache", "requeue")
    assert result.exit_code == 0
    assert result.output == (
        "requeued 3 readings from 1 rejected file; the next sync sends them "
        f"(reasons kept in {cache_dir / 'rejected' / 'requeued'})\n"
    )
    assert Cache(cache_dir).status().readings == 3


def test_cache_requeue_names_an_unreadable_file_in_one_line(cache_dir: Path) -> None:
    (cache_dir / "rejected" / "rejected_20260101T000000Z.jsonl").mkdir(parents=True)
    result = invoke("cache", "requeue")
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("error: could not read rejected/rejected_20260101T000000Z.jsonl")
    assert "Traceback" not in result.output
