"""The connection checks behind `test-octopus`, `test-influx`, `test-slack`, `verify-config
--online` and the wizard: each returns the one line that says what it found, or raises the
client's typed error (the CLI turns it into a message)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from octomon.clock import Clock, utcnow

if TYPE_CHECKING:
    from octomon.config import Settings
    from octomon.octopus.gas import GasMeter
    from octomon.readings import GasReading, Reading


@dataclass(frozen=True)
class OctopusCheck:
    """What ``test-octopus`` found: the device, its latest reading, and gas's."""

    device_id: str
    reading: Reading | None
    other_devices: list[str] = field(default_factory=list)
    gas_status: str = "off"  # octomon.octopus.gas: found, none, unsupported, off
    gas_meter: GasMeter | None = None
    gas_reading: GasReading | None = None


def octopus_check(settings: Settings, clock: Clock = utcnow) -> OctopusCheck:
    """Authenticate, find the device (unless OCTOPUS_DEVICE_ID), fetch the latest reading;
    the same for gas unless OCTOPUS_GAS=off (always asked afresh, whatever state.json knows).

    Its calls go into the shared ledger under CACHE_DIR when that is usable (so a test
    run while the daemon polls still respects the budget), else into a private one.
    """
    from octomon.errors import OctopusError
    from octomon.wiring import CHECK, Wiring

    wiring = Wiring(settings, clock=clock, purpose=CHECK)
    try:
        client = wiring.octopus
        device = client.device()
        reading = client.latest()
        meter = client.gas()
        gas_reading = client.gas_latest() if meter else None
    except OSError as exc:  # the ledger could not be written
        raise OctopusError(
            f"cannot record API calls in {settings.cache_dir}/state.json ({exc.strerror})",
            "check CACHE_DIR",
        ) from None
    finally:
        wiring.close()
    return OctopusCheck(
        device, reading, list(client.other_devices), client.gas_status, meter, gas_reading
    )


def octopus_line(settings: Settings) -> str:
    result = octopus_check(settings)
    from octomon.readings import format_time

    when = format_time(result.reading.read_at) if result.reading else "no reading yet"
    line = f"device {result.device_id}, latest reading {when}"
    if result.gas_meter is not None:
        gas_when = format_time(result.gas_reading.read_at) if result.gas_reading else "none yet"
        line += f"; gas device {result.gas_meter.device_id}, latest half-hour {gas_when}"
    return line


def influx_line(settings: Settings, write_test_point: bool) -> str:
    from octomon.store import probe

    return probe.check(settings, write_test_point=write_test_point).summary


def slack_line(settings: Settings) -> str:
    from octomon.alerts import slack

    slack.send_test(settings)
    return "test message sent"


def mqtt_line(settings: Settings) -> str:
    from octomon.publish import check_extras
    from octomon.publish.mqtt import check

    check_extras(settings)
    return check(settings)


# --- what `configure` runs between its questions -----------------------------------


def _wizard_octopus(settings: Settings) -> str:
    """The Octopus test writes nothing the wizard has not said it writes: its calls go into
    the ledger of an existing CACHE_DIR/state.json (a running daemon's: the budget is shared),
    else into a throwaway directory."""
    if (settings.cache_dir / "state.json").exists():
        return octopus_line(settings)
    with tempfile.TemporaryDirectory(prefix="octomon-configure-") as tmp:
        return octopus_line(settings._replace(cache_dir=Path(tmp)))


def _wizard_influx(settings: Settings) -> str:
    return influx_line(settings, False)


def _wizard_slack(settings: Settings) -> str:
    return slack_line(settings)


@dataclass(frozen=True)
class ConnectionTests:
    """What the wizard runs after each group of answers: a one-line summary, or a raise."""

    octopus: Callable[[Settings], str] = _wizard_octopus
    influx: Callable[[Settings], str] = _wizard_influx
    slack: Callable[[Settings], str] = _wizard_slack
