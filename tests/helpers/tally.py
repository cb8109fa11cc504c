"""The Home Mini side of the reconciliation, checked against what the simulator served."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from octomon.readings import Reading
from octomon.store.tally import SLOTS, Tally, half_hour_of
from octomon.uktime import day_bounds


def assert_tally_is_what_was_served(cache_dir: Path, sim: Any) -> int:
    """Per half-hour: exactly the readings the simulator served (same slots, same energy),
    so the coverage octomon reports is the simulator's own. Returns the half-hours checked."""
    want: dict[datetime, tuple[int, int]] = {}
    for ts, item in dict(sim.served).items():
        reading = Reading.from_api(item, sim.device_id)
        if reading is None:
            continue
        hh = half_hour_of(ts)
        bits, micro = want.get(hh, (0, 0))
        energy = round((reading.consumption_delta or 0.0) * 1_000_000)
        want[hh] = (bits | 1 << int((ts - hh).total_seconds()) // 10, micro + energy)
    got = {hh.start: (hh.bits, hh.micro_kwh) for hh in Tally(cache_dir).load().half_hours()}
    missing = sorted(set(want) - set(got))
    assert not missing, f"half-hours served but not in the tally: {missing[:3]}"
    for hh, (bits, micro) in want.items():
        coverage = got[hh][0].bit_count() / SLOTS
        assert got[hh] == (bits, micro), (
            f"{hh}: tally coverage {coverage:.4f}, served {bits.bit_count() / SLOTS:.4f}"
        )
    assert set(got) == set(want), "the tally counts half-hours the simulator never served"
    return len(want)


def store_home_mini(home: Any, first: date, last: date) -> int:
    """The tally of a Home Mini that octomon stored completely over UK days [first, last]
    (every reading the simulator has); the readings newly counted."""
    lo, hi = day_bounds(first)[0], day_bounds(last)[1]
    t, readings = lo, []
    while t < hi:
        item = home.reading_at(t)
        if item is not None:
            reading = Reading.from_api(item, home.device_id)
            assert reading is not None
            readings.append(reading)
        t += timedelta(seconds=10)
    return Tally(Path(os.environ["CACHE_DIR"])).record(readings)
