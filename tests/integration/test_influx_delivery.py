"""Only InfluxDB can refuse a reading; proxies, a private CA and write-only tokens (issue 13).

Everything here is a real HTTP exchange with the loopback emulator, through octomon's
commands run in-process (exit codes and the lines a user sees).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.readings import Reading
from octomon.sim import SimHomeMini, SimServer
from octomon.store.cache import Cache
from tests.helpers.cli import invoke
from tests.helpers.daemon import daemon_env
from tests.helpers.influx_emulator import InfluxEmulator
from tests.helpers.proxy import ForwardingProxy
from tests.helpers.tls import self_signed

pytestmark = pytest.mark.integration

TOKEN = "delivery-token-0123456789abcdef"
T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"


def readings(n: int) -> list[Reading]:
    return [
        Reading(T0 + timedelta(seconds=10 * i), DEV, demand=0.25 + i, consumption=5000.5 + i)
        for i in range(n)
    ]


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        yield emulator


def env(url: str, cache_dir: Path, **kw: str) -> dict[str, str]:
    values = {
        "INFLUXDB_URL": url,
        "INFLUXDB_TOKEN": TOKEN,
        "INFLUXDB_ORG": "home",
        "INFLUXDB_BUCKET": "energy",
        "CACHE_DIR": str(cache_dir),
    }
    values.update(kw)
    return values


def stamps(influx: InfluxEmulator) -> list[int]:
    return [int(x.rsplit(" ", 1)[1]) for x in influx.points() if x.startswith("energy_")]


# --- not InfluxDB's verdict: everything stays cached ------------------------------------------


@pytest.mark.parametrize("status", [400, 413])
def test_an_html_answer_leaves_every_reading_cached_then_all_are_delivered_once(
    influx: InfluxEmulator, tmp_path: Path, status: int
) -> None:
    cache_dir = tmp_path / "cache"
    rs = readings(12_000)  # two day files' worth of batches
    Cache(cache_dir).append(rs)
    influx.html(status)
    result = invoke("sync-cache", env=env(influx.url, cache_dir))
    assert result.exit_code == 1
    assert "error: 12,000 readings left in the cache:" in result.output
    assert f"answered HTTP {status}" in result.output and "not InfluxDB's answer" in result.output
    assert "Traceback" not in result.output
    status_now = Cache(cache_dir).status()
    assert status_now.readings == 12_000 and status_now.rejected == 0
    assert not (cache_dir / "rejected").exists()
    influx.heal()
    result = invoke("sync-cache", env=env(influx.url, cache_dir))
    assert result.exit_code == 0, result.output
    assert "synced 12,000 readings to InfluxDB" in result.output
    got = stamps(influx)
    assert sorted(got) == [int(r.read_at.timestamp()) for r in rs]  # exactly once each
    assert Cache(cache_dir).status().readings == 0


# --- InfluxDB's JSON 400 for one reading; then `cache requeue` --------------------------------


def test_a_poisoned_reading_alone_is_set_aside_then_requeued_and_delivered(
    influx: InfluxEmulator, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    rs = readings(5000)
    Cache(cache_dir).append(rs)
    poisoned = rs[3210].to_line_protocol().split(" ")[1]  # its fields: unique to it
    influx.reject_containing(poisoned, 400)
    result = invoke("sync-cache", env=env(influx.url, cache_dir))
    assert result.exit_code == 1
    assert "synced 4,999 readings" in result.output
    assert "InfluxDB refused 1 readings; they are set aside in" in result.output
    (rejected,) = (cache_dir / "rejected").glob("rejected_*.jsonl")
    assert rejected.read_text() == rs[3210].to_json() + "\n"
    assert "HTTP 400: unable to parse" in rejected.with_suffix(".txt").read_text()
    influx.heal()  # the cause was fixed
    result = invoke("cache", "requeue", env=env(influx.url, cache_dir))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("requeued 1 readings from 1 rejected file;")
    assert "reasons kept in" in result.output
    assert Cache(cache_dir).status().rejected == 0
    result = invoke("sync-cache", env=env(influx.url, cache_dir))
    assert result.exit_code == 0 and "synced 1 readings" in result.output
    assert set(stamps(influx)) == {int(r.read_at.timestamp()) for r in rs}


# --- test-influx with a write-only token ---------------------------------------------------


@pytest.mark.parametrize("listing", ["empty", "forbidden"])
def test_a_write_only_token_passes_test_influx_and_nothing_is_stored(
    influx: InfluxEmulator, tmp_path: Path, listing: str
) -> None:
    influx.configure(listing=listing)
    result = invoke("test-influx", env=env(influx.url, tmp_path))
    assert result.exit_code == 0, result.output
    assert "cannot list buckets with this token" in result.output
    assert "checked with an empty write: nothing" in result.output
    wrong = invoke("test-influx", env=env(influx.url, tmp_path, INFLUXDB_BUCKET="nope"))
    assert wrong.exit_code == 1
    assert "has no bucket 'nope'" in wrong.output and "check INFLUXDB_BUCKET" in wrong.output
    org = invoke("test-influx", env=env(influx.url, tmp_path, INFLUXDB_ORG="elsewhere"))
    assert org.exit_code == 1 and "'elsewhere'" in org.output and "INFLUXDB_ORG" in org.output
    token = invoke("test-influx", env=env(influx.url, tmp_path, INFLUXDB_TOKEN="x" * 20))
    assert token.exit_code == 1
    assert "refused the token" in token.output and "check INFLUXDB_TOKEN" in token.output
    assert all(not r.body for r in influx.writes(None))  # only empty writes
    assert influx.points() == []


# --- proxies --------------------------------------------------------------------------------


def test_run_once_writes_through_http_proxy_unless_no_proxy_names_the_host(
    influx: InfluxEmulator, tmp_path: Path
) -> None:
    sim = SimHomeMini()
    with SimServer(sim) as server, ForwardingProxy(("127.0.0.1", influx.port)) as proxy:
        base = daemon_env(sim=sim, api_url=server.url, cache_dir=tmp_path / "cache")
        unresolvable = f"http://influx.invalid:{influx.port}"
        proxied = {
            **base,
            **env(unresolvable, tmp_path / "cache"),
            "HTTP_PROXY": proxy.url,
            "NO_PROXY": "127.0.0.1",  # the simulated Octopus API is reached directly
        }
        result = invoke("run", "--once", env=proxied)
        assert result.exit_code == 0, result.output
        assert "mode influxdb" in result.output
        assert proxy.seen and all(x.startswith(unresolvable + "/api/v2/write") for x in proxy.seen)
        written = len(influx.points())
        assert written > 300
        direct = {
            **proxied,
            "NO_PROXY": "127.0.0.1,influx.invalid",
            "CACHE_DIR": str(tmp_path / "c2"),
        }
        seen = len(proxy.seen)
        result = invoke("run", "--once", env=direct)
        assert len(proxy.seen) == seen  # not through the proxy: the name does not resolve
        assert len(influx.points()) == written
        assert Cache(tmp_path / "c2").status().readings > 300  # kept, not lost


# --- a private CA ---------------------------------------------------------------------------


def test_a_self_signed_server_needs_influxdb_ca_cert(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with InfluxEmulator(tls=(str(cert), str(key))) as tls:
        tls.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        result = invoke("test-influx", env=env(tls.url, tmp_path))
        assert result.exit_code == 1
        assert "TLS certificate could not be verified (self-signed certificate)" in result.output
        assert "set INFLUXDB_CA_CERT" in result.output and "Traceback" not in result.output
        result = invoke("test-influx", env=env(tls.url, tmp_path, INFLUXDB_CA_CERT=str(cert)))
        assert result.exit_code == 0, result.output
        assert "bucket 'energy' verified" in result.output


def test_bad_influx_settings_are_one_clear_line(tmp_path: Path) -> None:
    result = invoke("test-influx", env=env("influx.local:8086", tmp_path))
    assert result.exit_code == 2 and "INFLUXDB_URL" in result.output
    missing = tmp_path / "nowhere.pem"
    result = invoke(
        "sync-cache", env=env("https://127.0.0.1:1", tmp_path, INFLUXDB_CA_CERT=str(missing))
    )
    assert result.exit_code == 2 and "INFLUXDB_CA_CERT" in result.output
    for out in (result.output,):
        assert "Traceback" not in out
