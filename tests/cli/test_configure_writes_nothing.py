"""The wizard writes nothing until it says so: its Octopus test, against the simulator over
HTTP, leaves no ./cache/state.json behind (issue 26), and an existing ledger is shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from octomon.cli.wizard import ConnectionTests
from tests.cli.test_configure import CTRL_C, DOWN, ENTER, drive

pytestmark = pytest.mark.integration


def test_the_octopus_test_then_ctrl_c_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, SimServer

    monkeypatch.delenv("CACHE_DIR")  # the default, ./cache, as a newcomer has it
    with SimServer() as sim:
        run = drive(
            [
                ("Octopus API key", DEFAULT_API_KEY + ENTER),
                ("Account number", DEFAULT_ACCOUNT + ENTER),
                ("Test the Octopus API now?", "y"),
                ("Send readings to InfluxDB now?", DOWN),
                ("» No, keep readings locally", CTRL_C),
            ],
            tests=ConnectionTests(),  # the real ones
            environ={"OCTOPUS_API_URL": sim.url},
        )
    assert run.code == 1, run.said
    assert "Octopus: ok — device" in run.said
    assert "aborted, nothing written" in run.said
    assert list(Path().iterdir()) == []  # no ./cache, no state.json, no .env


def test_a_running_daemons_ledger_counts_the_wizards_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, SimServer
    from octomon.state import StateStore

    monkeypatch.delenv("CACHE_DIR")
    store = StateStore(Path("cache"))
    Path("cache").mkdir(mode=0o700)
    store.update(lambda state: None)  # the state.json a daemon keeps
    assert store.load().calls == []
    with SimServer() as sim:
        run = drive(
            [
                ("Octopus API key", DEFAULT_API_KEY + ENTER),
                ("Account number", DEFAULT_ACCOUNT + ENTER),
                ("Test the Octopus API now?", "y"),
                ("Send readings to InfluxDB now?", DOWN),
                ("» No, keep readings locally", CTRL_C),
            ],
            tests=ConnectionTests(),  # the real ones
            environ={"OCTOPUS_API_URL": sim.url},
        )
    assert "Octopus: ok — device" in run.said
    assert len(store.load().calls) >= 3  # token, account, telemetry: in the shared ledger
