"""A gas meter exchange: the replaced meter's units are kept in state.json with the smart
meter's, so `costs` after the daemon knows the old serial's m³ without asking again."""

from __future__ import annotations

from pathlib import Path

from octomon.billing.settled import units_from_state
from octomon.octopus.consumption import Meter
from octomon.octopus.gas import GasMeter
from octomon.state import State, StateStore


def test_the_other_meters_units_round_trip_as_text() -> None:
    meter = GasMeter("dev", "123", "NEW", "m³", (("OLD", "m³"), ("ODD", None), ("X", "k Wh")))
    assert meter.others_text() == "OLD=m³"  # a unit not said, or not one word, is not kept
    assert GasMeter.others_from("OLD=m³ junk =kWh B=") == (("OLD", "m³"),)
    assert GasMeter.others_from(None) == ()
    assert GasMeter("d", None, "S", "kWh").others_text() is None


def test_units_from_state_know_the_replaced_meter(tmp_path: Path) -> None:
    store = StateStore(tmp_path)

    def found(state: State) -> None:
        state.gas_device_id, state.gas_serial, state.gas_units = "dev", "NEW", "m³"
        state.gas_others = "OLD=kWh"

    store.update(found)
    unit = units_from_state(StateStore(tmp_path))  # read back from the file
    assert unit(Meter("gas", "import", "123", "NEW")) == "m³"
    assert unit(Meter("gas", "import", "123", "OLD")) == "kWh"
    assert unit(Meter("gas", "import", "123", "OTHER")) is None
    assert unit(Meter("electricity", "import", "1", "E")) == "kWh"


def test_a_restart_keeps_the_others(tmp_path: Path) -> None:
    from octomon.wiring import _known_gas_meter

    state = State(gas_device_id="dev", gas_serial="NEW", gas_units="m³", gas_others="OLD=m³")
    meter = _known_gas_meter(state)
    assert meter is not None and meter.units_of("OLD") == "m³"
