"""Shared by the daemon reliability tests: the simulated Home Mini over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from octomon.sim import SimHomeMini, SimServer


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = SimHomeMini(rate_limit_per_hour=100)
    with SimServer(sim) as server:
        yield sim, server
