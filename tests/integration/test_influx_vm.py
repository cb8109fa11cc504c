"""The InfluxDB path against a real VictoriaMetrics: exact values, an outage, a recovery."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.config import Settings
from octomon.errors import InfluxUnavailable
from octomon.readings import Reading
from octomon.store.cache import Cache
from octomon.store.influx import InfluxSink
from octomon.store.probe import check
from octomon.store.sync import sync
from tests.helpers.services import VictoriaMetrics

pytestmark = pytest.mark.integration

# VictoriaMetrics drops points from the future: everything here is days old.
T0 = (datetime.now(timezone.utc) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
DEV = "00-00-00-00-00-00-b4-2f"


def series_labels(vm: VictoriaMetrics, field: str) -> list[dict[str, str]]:
    """Label sets from /api/v1/export (the series API only looks at the last day)."""
    query = f"match[]=energy_consumption_{field}&start=0"
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as answer:
        return [json.loads(line)["metric"] for line in answer.read().decode().splitlines()]


def sink_for(vm: VictoriaMetrics, timeout: float = 10.0) -> InfluxSink:
    return InfluxSink(vm.url, "vm-token-xyz", "home", "octopus_energy", timeout=timeout)


def test_values_units_tags_and_timestamps_read_back_exactly(victoria: VictoriaMetrics) -> None:
    # From the API's own strings (Wh, W, pence), converted once by Reading.from_api.
    item = {
        "readAt": (T0 + timedelta(seconds=10)).isoformat(),
        "consumptionDelta": "0.5",
        "demand": "200.0",
        "costDelta": "0.0125",
        "consumption": "5038414.5",
        "costDeltaWithTax": "0.0131",
        "export": "0E+1",
    }
    r = Reading.from_api(item, DEV)
    assert r is not None
    with sink_for(victoria) as sink:
        sink.write([r])
    expected = {
        "consumption_delta": 0.0005,  # kWh
        "demand": 0.2,  # kW
        "cost_delta": 0.000125,  # GBP
        "consumption": 5038.4145,  # kWh
        "cost_delta_with_tax": 0.000131,
        "export": 0.0,
    }
    ts = int(r.read_at.timestamp())
    for field, value in expected.items():
        assert victoria.export(field, wait_for=1) == {ts: [value]}, field
    (labels,) = series_labels(victoria, "demand")
    assert labels == {
        "__name__": "energy_consumption_demand",
        "device_id": DEV,
        "source": "octopus_home_mini",
    }


def test_outage_everything_stays_cached_then_one_sync_delivers_it_once(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    first = [Reading(T0 + timedelta(seconds=10 * i), DEV, demand=i / 10) for i in range(3)]
    with sink_for(victoria, timeout=2) as sink:
        sink.write(first)
        victoria.stop()  # a real outage
        late = [Reading(T0 + timedelta(seconds=10 * i), DEV, demand=i / 10) for i in range(3, 12)]
        with pytest.raises(InfluxUnavailable, match="connection refused"):
            sink.write(late)
        cache.append(late)  # what the monitor does
        result = sync(cache, sink)
        assert isinstance(result.error, InfluxUnavailable)
        assert result.synced == 0 and result.left == 9 and cache.status().readings == 9
        victoria.start()  # same data directory: a recovery
        result = sync(cache, sink)
    assert result.error is None and result.synced == 9 and result.left == 0
    assert cache.is_empty() and cache.files() == []
    got = victoria.export("demand", wait_for=12)
    assert sorted(got) == [int((T0 + timedelta(seconds=10 * i)).timestamp()) for i in range(12)]
    assert all(len(values) == 1 for values in got.values())  # once per timestamp
    assert [got[k][0] for k in sorted(got)] == [i / 10 for i in range(12)]


def test_a_large_backlog_is_streamed_in_batches(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    n = 12_345  # 34 hours: two or three day files, several batches
    readings = [
        Reading(T0 + timedelta(seconds=10 * i), DEV, consumption=5000 + i / 1000, demand=0.5)
        for i in range(n)
    ]
    cache.append(readings)
    days = len({r.read_at.date() for r in readings})
    with sink_for(victoria) as sink:
        result = sync(cache, sink, batch_size=5000)
    assert result.synced == n and result.files_done == days and result.left == 0
    got = victoria.export("consumption", wait_for=n)
    assert len(got) == n
    assert got[int(T0.timestamp()) + 10 * 777] == [5000.777]


def test_check_on_victoriametrics(victoria: VictoriaMetrics) -> None:
    settings = Settings(influxdb_url=victoria.url, influxdb_token="t0k3n-abcdef", influxdb_org="o")
    result = check(settings)
    assert result.summary.startswith("reachable; org and bucket cannot be verified on this server")
    assert not result.verified and not result.wrote_point
    result = check(settings, write_test_point=True)
    assert result.wrote_point and "wrote a test point (octomon_test)" in result.summary
    urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=5).read()
    url = f"{victoria.url}/api/v1/export?match[]=octomon_test_value"
    for _ in range(50):
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = answer.read().decode()
        if body.strip():
            break
        time.sleep(0.2)
    assert json.loads(body.splitlines()[0])["values"] == [1]
    assert victoria.export("demand", timeout=0.5) == {}  # nothing in energy_consumption
