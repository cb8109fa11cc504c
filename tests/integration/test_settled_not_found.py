"""A 404 for one meter's settled consumption (SPEC §10 "Not found"): logged, retried at the
next daily fetch, and the meter is never dropped for the life of the process — its data
arrives a day later without a restart. Against the simulator over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from octomon.alerts.policy import Alert, AlertPolicy
from octomon.billing.settled import SettledStore
from octomon.daemon.jobs import SettledJob
from octomon.octopus.budget import Budget
from octomon.octopus.consumption import Meter
from octomon.octopus.rest import RestClient
from octomon.sim import SimHomeMini, SimServer
from octomon.sim import account as ids
from octomon.sim.protocol import json_answer as _json
from octomon.state import StateStore
from tests.helpers.clock import ManualClock

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 9, 10, tzinfo=timezone.utc)
IMPORT = Meter("electricity", "import", ids.MPAN, ids.ELECTRICITY_SERIAL)


@pytest.fixture
def home() -> Iterator[tuple[SimHomeMini, SimServer, ManualClock]]:
    clock = ManualClock(NOW)
    sim = SimHomeMini(clock=clock)
    with SimServer(sim) as server:
        yield sim, server, clock


def test_a_404_is_retried_the_next_day_and_the_meter_stays(
    home: tuple[SimHomeMini, SimServer, ManualClock], tmp_path: Path
) -> None:
    sim, server, clock = home
    vanished = {"on": True}
    original = list(sim.rest._routes)

    def maybe_gone(m: re.Match[str], query: dict[str, str], now: datetime) -> object:
        if vanished["on"]:
            return _json(404, {"detail": "Not found."})
        return sim.settled.answer(m, query, now)

    sim.rest.route(
        r"(?P<kind>electricity)-meter-points/(?P<point>[^/]+)/meters/(?P<serial>[^/]+)/consumption",
        maybe_gone,  # type: ignore[arg-type]
        auth=True,
    )
    sim.rest._routes.insert(0, sim.rest._routes.pop())  # ahead of the sim's own route

    store = StateStore(tmp_path)
    rest = RestClient(
        api_key=sim.api_key, base_url=server.rest_url, budget=Budget(store, 100), clock=clock
    )
    alerts: list[Alert] = []

    def emit(a: Sequence[Alert]) -> None:
        alerts.extend(a)

    job = SettledJob(
        rest=rest,
        meters=lambda: [IMPORT],
        store=store,
        cache_dir=tmp_path,
        sink=None,
        policy=AlertPolicy(),
        emit=emit,
    )
    first_anchor = job.run(clock())
    assert job.meters() == [IMPORT]  # not dropped
    assert not SettledStore(tmp_path).load().meters[IMPORT.key].values
    asked = sim.settled.requests

    vanished["on"] = False  # the page is there a day later
    clock.now = max(first_anchor, NOW + timedelta(days=1))
    job.run(clock())
    assert job.meters() == [IMPORT]
    kept = SettledStore(tmp_path).load().meters[IMPORT.key].values
    assert kept, "the meter's settled data arrives without a restart"
    assert sim.settled.requests > asked
    sim.rest._routes[:] = original
