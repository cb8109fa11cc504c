"""An InfluxDB that keeps refusing fills rejected/, which counts in CACHE_MAX_MB (SPEC §4.5):
the oldest set-aside files go, with one error alert saying how many readings were lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.alerts.policy import Alert, AlertPolicy, Level
from octomon.daemon.writer import Writer
from octomon.readings import Reading
from octomon.store.cache import Cache
from octomon.store.influx import InfluxSink
from octomon.store.sync import sync
from tests.helpers.influx_emulator import InfluxEmulator

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"
TOKEN = "emulated-token-0123456789"


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        emulator.fail(422)  # a field-type conflict, for every batch
        yield emulator


def cycle(i: int) -> list[Reading]:
    """One minute's six readings."""
    at = T0 + timedelta(minutes=i)
    return [
        Reading(at + timedelta(seconds=10 * k), DEV, demand=0.2 + k, consumption=5000.0 + k)
        for k in range(6)
    ]


def writer_for(cache: Cache, sink: InfluxSink, alerts: list[Alert]) -> Writer:
    def emit(batch: Sequence[Alert]) -> None:
        alerts.extend(batch)

    return Writer(
        cache=cache,
        sink=sink,
        sync=sync,
        policy=AlertPolicy(),
        emit=emit,
        cache_dir=cache.directory,
        stop=threading.Event(),
    )


def test_refused_readings_over_the_cap_drop_the_oldest_with_one_alert(
    tmp_path: Path, influx: InfluxEmulator
) -> None:
    roomy = Cache(tmp_path)
    alerts: list[Alert] = []
    with InfluxSink(influx.url, TOKEN, "home", "energy", timeout=5) as sink:
        writer = writer_for(roomy, sink, alerts)
        for i in range(3):  # three refused cycles, set aside while there is room
            stored = writer.store(cycle(i), T0 + timedelta(minutes=i))
            assert stored.rejected == 6
        aside = sorted((tmp_path / "rejected").glob("*.jsonl"))
        assert len(aside) == 3 and not [a for a in alerts if "cap" in a.title]
        room = sum(p.stat().st_size for p in (tmp_path / "rejected").iterdir())
        # Room for what is there now, not one more refused cycle: the oldest must go.
        capped = Cache(tmp_path, max_mb=room / 1024 / 1024)
        writer = writer_for(capped, sink, alerts)
        stored = writer.store(cycle(3), T0 + timedelta(minutes=3))

    assert stored.rejected == 6  # the new ones are safe under rejected/
    capped_alerts = [a for a in alerts if a.key == "cache_cap"]
    assert len(capped_alerts) == 1
    (alert,) = capped_alerts
    assert alert.level is Level.ERROR
    assert alert.title == "Cache over its cap: 6 readings lost"
    left = sorted(p.name for p in (tmp_path / "rejected").glob("*.jsonl"))
    assert aside[0].name not in left and len(left) == 3  # the oldest went, the newest stayed
    assert capped.status().rejected == 18


def test_refused_while_draining_the_cache_over_the_cap_alerts_once_too(
    tmp_path: Path, influx: InfluxEmulator
) -> None:
    roomy = Cache(tmp_path)
    old = roomy.write_rejected(
        [r.to_json() for r in cycle(-60)], "HTTP 422: conflict", T0 - timedelta(hours=1)
    ).path
    roomy.append(cycle(0))  # a backlog left by an outage
    day = tmp_path / "cache_2026-11-27.jsonl"
    room = sum(p.stat().st_size for p in (old, old.with_suffix(".txt"), day))
    capped = Cache(tmp_path, max_mb=room / 1024 / 1024)  # no room for one more set-aside file
    alerts: list[Alert] = []
    with InfluxSink(influx.url, TOKEN, "home", "energy", timeout=5) as sink:
        writer = writer_for(capped, sink, alerts)
        writer.open()
        assert writer.cache_mode
        step = writer.health_check(T0 + timedelta(minutes=1))

    assert step.rejected == 6 and step.left == 0  # refused while draining: set aside
    (alert,) = [a for a in alerts if a.key == "cache_cap"]
    assert alert.level is Level.ERROR and alert.title == "Cache over its cap: 6 readings lost"
    assert not old.exists()  # the oldest set-aside file went, not the new one
    assert capped.status().rejected == 6
