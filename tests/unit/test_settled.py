"""The settled job's failure paths: no cursor moves, nothing written, one clear error."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.billing.settled import SettledStore
from octomon.daemon.jobs import SettledJob
from octomon.errors import AuthError, InfluxUnavailable, OctopusError, OctopusUnavailable
from octomon.octopus.budget import Budget
from octomon.octopus.consumption import Meter
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.state import StateStore
from tests.helpers import http_stub
from tests.helpers.clock import ManualClock

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 9, 10, tzinfo=UTC)
IMPORT = Meter("electricity", "import", ids.MPAN, ids.ELECTRICITY_SERIAL)


class Sink:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.down = False

    def write_lines(self, body: bytes | str, count: int) -> None:
        if self.down:
            raise InfluxUnavailable("InfluxDB at http://127.0.0.1:1 is unreachable")
        assert isinstance(body, str) and body.count("\n") == count
        self.bodies.append(body)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[tuple[SimHomeMini, SimServer]]:
    home = SimHomeMini(clock=clock)
    with SimServer(home) as server:
        yield home, server


def job(
    tmp_path: Path, url: str, clock: ManualClock, sink: Sink | None, key: str, **kw: Any
) -> SettledJob:
    store = StateStore(tmp_path)
    rest = RestClient(api_key=key, base_url=url, budget=Budget(store, 100), clock=clock, **kw)
    alerts: list[Alert] = []

    def emit(a: Sequence[Alert]) -> None:
        alerts.extend(a)

    return SettledJob(
        rest=rest,
        meters=lambda: [IMPORT],
        store=store,
        cache_dir=tmp_path,
        sink=sink,
        policy=AlertPolicy(),
        emit=emit,
    )


@pytest.fixture
def bad_gateway() -> Iterator[str]:
    with http_stub.bad_gateway() as url:
        yield url


@pytest.fixture
def silent() -> Iterator[str]:
    with http_stub.silent() as url:
        yield url


def nothing_moved(tmp_path: Path, sink: Sink) -> None:
    cursors = StateStore(tmp_path).load().settled
    assert cursors.fetched == {} and cursors.written == {}
    assert sink.bodies == []
    assert SettledStore(tmp_path).load().meters == {}


def test_a_502_a_timeout_and_a_wrong_key_move_nothing(
    tmp_path: Path,
    clock: ManualClock,
    sim: tuple[SimHomeMini, SimServer],
    bad_gateway: str,
    silent: str,
) -> None:
    home, server = sim
    cases: list[tuple[str, str, dict[str, Any], type[OctopusError], str]] = [
        (bad_gateway, home.api_key, {}, OctopusUnavailable, "the Octopus API answered HTTP 502"),
        (silent, home.api_key, {"timeout": 0.3}, OctopusUnavailable, "did not answer within 0.3 s"),
        (server.rest_url, "sk_live_wrong0000000000", {}, AuthError, "Invalid API key."),
    ]
    for n, (url, key, kw, kind, said) in enumerate(cases):
        where = tmp_path / str(n)
        sink = Sink()
        with pytest.raises(kind) as err:
            job(where, url, clock, sink, key, **kw).run(clock())
        assert said in err.value.message and "sk_live" not in err.value.message
        nothing_moved(where, sink)


def test_influxdb_away_keeps_the_data_and_retries_the_points_without_a_call(
    tmp_path: Path, clock: ManualClock, sim: tuple[SimHomeMini, SimServer]
) -> None:
    home, server = sim
    sink = Sink()
    sink.down = True
    settled = job(tmp_path, server.rest_url, clock, sink, home.api_key)
    assert settled.run(clock()) == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # next half-hour
    cursors = StateStore(tmp_path).load().settled
    assert cursors.fetched[IMPORT.key] == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert cursors.written == {}
    assert SettledStore(tmp_path).load().day_settled(date(2026, 11, 30))
    calls = len(home.rest.calls)
    sink.down = False
    clock.now = datetime(2026, 12, 1, 9, 40, tzinfo=UTC)
    assert settled.run(clock()) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert len(home.rest.calls) == calls  # the points came from the file
    assert len(sink.bodies) == 1 and sink.bodies[0].count("energy_settled,") == 7 * 48
    assert StateStore(tmp_path).load().settled.written[IMPORT.key] == cursors.fetched[IMPORT.key]


def test_local_mode_keeps_the_file_and_moves_both_cursors(
    tmp_path: Path, clock: ManualClock, sim: tuple[SimHomeMini, SimServer]
) -> None:
    home, server = sim
    settled = job(tmp_path, server.rest_url, clock, None, home.api_key)
    settled.run(clock())
    cursors = StateStore(tmp_path).load().settled
    assert cursors.written == cursors.fetched == {IMPORT.key: datetime(2026, 12, 1, tzinfo=UTC)}
    assert (tmp_path / "settled.json").stat().st_mode & 0o777 == 0o600
