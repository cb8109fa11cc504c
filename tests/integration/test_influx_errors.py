"""Every row of SPEC §4.4 against the loopback InfluxDB v2 emulator (real HTTP)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.config import Settings
from octomon.errors import InfluxConfigError, InfluxRefused, InfluxUnavailable
from octomon.readings import Reading
from octomon.store.cache import Cache
from octomon.store.influx import InfluxSink
from octomon.store.probe import check
from octomon.store.sync import sync
from tests.helpers.influx_emulator import InfluxEmulator
from tests.helpers.services import free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
DEV = "00-11-22-33-44-55-66-77"
TOKEN = "emulated-token-0123456789"


def readings(n: int, start: int = 0) -> list[Reading]:
    return [
        Reading(T0 + timedelta(seconds=10 * i), DEV, demand=0.25 + i, consumption=5000.5 + i)
        for i in range(start, start + n)
    ]


@pytest.fixture
def influx() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        emulator.configure(token=TOKEN, orgs=("home",), buckets=("energy",))
        yield emulator


def sink_for(influx: InfluxEmulator, timeout: float = 5.0, **kw: str) -> InfluxSink:
    args = {"token": TOKEN, "org": "home", "bucket": "energy", **kw}
    return InfluxSink(influx.url, args["token"], args["org"], args["bucket"], timeout=timeout)


def test_written_204_with_token_org_bucket_and_second_precision(influx: InfluxEmulator) -> None:
    with sink_for(influx) as sink:
        sink.write(readings(2))
    (req,) = influx.writes()
    assert req.query == {"org": "home", "bucket": "energy", "precision": "s"}
    assert req.headers["Authorization"] == f"Token {TOKEN}"
    assert req.headers["Content-Type"].startswith("text/plain")
    assert influx.points() == [r.to_line_protocol() for r in readings(2)]


def test_more_than_5000_readings_go_in_several_requests(influx: InfluxEmulator) -> None:
    with sink_for(influx) as sink:
        sink.write(readings(12_001))
    assert [len(r.body.splitlines()) for r in influx.writes()] == [5000, 5000, 2001]


# --- unavailable: connection refused / timeout / 5xx / 429 / 503 ---------------------------


def test_connection_refused_is_unavailable() -> None:
    sink = InfluxSink(f"http://127.0.0.1:{free_port()}", TOKEN, "home", "energy")
    with pytest.raises(InfluxUnavailable, match="connection refused") as info:
        sink.write(readings(1))
    assert TOKEN not in str(info.value) and info.value.retry_after is None


def test_timeout_is_unavailable(influx: InfluxEmulator) -> None:
    influx.slow(2.0)
    started = time.monotonic()
    with pytest.raises(InfluxUnavailable, match="timed out"), sink_for(influx, timeout=0.3) as s:
        s.write(readings(1))
    assert time.monotonic() - started < 1.9


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(503, "7", 7.0), (429, "30", 30.0), (500, None, None), (502, None, None)],
)
def test_5xx_and_429_are_unavailable_with_retry_after(
    influx: InfluxEmulator, status: int, retry_after: str | None, expected: float | None
) -> None:
    influx.fail(status, retry_after=retry_after)
    with pytest.raises(InfluxUnavailable) as info, sink_for(influx) as sink:
        sink.write(readings(1))
    assert info.value.retry_after == expected
    assert f"HTTP {status}" in info.value.message


def test_retry_after_as_an_http_date(influx: InfluxEmulator) -> None:
    from email.utils import formatdate

    influx.fail(503, retry_after=formatdate(time.time() + 60, usegmt=True))
    with pytest.raises(InfluxUnavailable) as info, sink_for(influx) as sink:
        sink.write(readings(1))
    assert info.value.retry_after is not None and 55 <= info.value.retry_after <= 61


# --- configuration: 401 / 403 / 404 ----------------------------------------------------------


def test_401_names_the_token_without_showing_it(influx: InfluxEmulator) -> None:
    with pytest.raises(InfluxConfigError) as info, sink_for(influx, token="wrong-token-42") as s:
        s.write(readings(1))
    assert info.value.cause == "token" and info.value.status == 401
    assert "wrong-token-42" not in str(info.value) and TOKEN not in str(info.value)
    assert info.value.hint == "check INFLUXDB_TOKEN"


def test_403_is_the_token_too(influx: InfluxEmulator) -> None:
    influx.fail(403)
    with pytest.raises(InfluxConfigError) as info, sink_for(influx) as sink:
        sink.write(readings(1))
    assert info.value.cause == "token" and info.value.status == 403


def test_404_names_the_bucket_or_the_org(influx: InfluxEmulator) -> None:
    influx.fail(404)
    with pytest.raises(InfluxConfigError) as info, sink_for(influx) as sink:
        sink.write(readings(1))
    assert info.value.cause == "bucket" and 'bucket "energy" not found' in info.value.message
    with pytest.raises(InfluxConfigError) as info, sink_for(influx, org="nobody") as sink:
        sink.write(readings(1))
    assert info.value.cause == "org" and "nobody" in info.value.message


# --- refused: 400 / 413 / 422 ------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 413, 422])
def test_refused_carries_the_servers_message(influx: InfluxEmulator, status: int) -> None:
    influx.fail(status)
    with pytest.raises(InfluxRefused) as info, sink_for(influx) as sink:
        sink.write(readings(1))
    assert info.value.status == status
    assert info.value.server_message and info.value.server_message in info.value.message


@pytest.mark.parametrize("status", [400, 413, 422])
def test_sync_splits_a_refused_batch_until_only_the_refused_reading_is_set_aside(
    influx: InfluxEmulator, tmp_path: Path, status: int
) -> None:
    cache = Cache(tmp_path / "cache")
    rs = readings(10)
    cache.append(rs)
    influx.reject_containing("demand=7.25", status)  # the 8th reading
    with sink_for(influx) as sink:
        result = sync(cache, sink, batch_size=10)
    assert result.synced == 9 and result.rejected == 1 and result.left == 0
    assert isinstance(result.error, InfluxRefused) and result.error.status == status
    bodies = [len(r.body.splitlines()) for r in influx.writes(None)]
    assert bodies == [10, 5, 5, 2, 3, 1, 2]  # halves, and the refused half's halves
    accepted = set(influx.points())
    assert {r.to_line_protocol() for i, r in enumerate(rs) if i != 7} <= accepted
    (rejected,) = (tmp_path / "cache" / "rejected").glob("rejected_*.jsonl")
    assert rejected.read_text().splitlines() == [rs[7].to_json()]
    note = rejected.with_suffix(".txt").read_text()
    assert f"HTTP {status}" in note and result.error.server_message in note
    assert cache.files() == []


def test_sync_stops_on_unavailable_and_resumes_after_recovery(
    influx: InfluxEmulator, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    cache.append(readings(30))
    influx.script([204, 503])  # the second batch meets an outage
    influx.fail(503, retry_after="5")
    with sink_for(influx) as sink:
        result = sync(cache, sink, batch_size=10)
        assert isinstance(result.error, InfluxUnavailable) and result.error.retry_after == 5.0
        assert result.synced == 10 and result.left == 30 and len(cache.files()) == 1
        influx.heal()
        result = sync(cache, sink, batch_size=10)
    assert result.error is None and result.synced == 30 and result.left == 0
    stamps = [int(x.rsplit(" ", 1)[1]) for x in influx.points()]
    assert len(set(stamps)) == 30  # the file was sent again whole: every reading is there


def test_sync_stops_on_a_configuration_error(influx: InfluxEmulator, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    cache.append(readings(3))
    with sink_for(influx, token="bad-token-1234") as sink:
        result = sync(cache, sink)
    assert isinstance(result.error, InfluxConfigError) and result.error.cause == "token"
    assert result.synced == 0 and result.left == 3


# --- a keep-alive connection the server closed ------------------------------------------------


def test_a_closed_idle_connection_is_reopened_once() -> None:
    """The server answers one request per connection, then hangs up without a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            seen.append(body)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            time.sleep(0.2)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with InfluxSink(f"http://127.0.0.1:{port}", TOKEN, "home", "energy", timeout=3) as sink:
        sink.write(readings(1))
        time.sleep(0.4)  # the server has closed it meanwhile
        sink.write(readings(1, start=1))
    thread.join(5)
    listener.close()
    assert len(seen) == 2


# --- test-influx's check ------------------------------------------------------------------


def settings_for(influx: InfluxEmulator, **kw: str) -> Settings:
    values = {"token": TOKEN, "org": "home", "bucket": "energy", **kw}
    return Settings(
        influxdb_url=influx.url,
        influxdb_token=values["token"],
        influxdb_org=values["org"],
        influxdb_bucket=values["bucket"],
    )


def test_check_verifies_token_org_and_bucket(influx: InfluxEmulator) -> None:
    result = check(settings_for(influx))
    assert result.verified and not result.wrote_point
    assert result.summary == "reachable; token, organisation 'home' and bucket 'energy' verified"
    assert influx.writes(None) == []  # writes nothing by default
    result = check(settings_for(influx), write_test_point=True)
    assert result.wrote_point
    (req,) = influx.writes()
    assert req.body.startswith(b"octomon_test,") and b"energy_consumption" not in req.body


@pytest.mark.parametrize(
    ("kw", "cause"),
    [({"token": "nope-nope-nope"}, "token"), ({"org": "x"}, "org"), ({"bucket": "y"}, "bucket")],
)
def test_check_names_what_is_wrong(influx: InfluxEmulator, kw: dict[str, str], cause: str) -> None:
    with pytest.raises(InfluxConfigError) as info:
        check(settings_for(influx, **kw))
    assert info.value.cause == cause


def test_check_on_a_server_without_the_buckets_api(influx: InfluxEmulator) -> None:
    influx.configure(buckets_api=False)
    result = check(settings_for(influx))
    assert not result.verified
    assert result.summary.startswith("reachable; org and bucket cannot be verified on this server")
