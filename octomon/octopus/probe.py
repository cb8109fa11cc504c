"""The connection test behind `test-octopus` (and `verify-config --online`, the wizard):
authenticate, find the devices, fetch the latest reading of each fuel.

Its calls go into the shared ledger under CACHE_DIR when that is usable (so a test run while
the daemon polls still respects the budget), else into a private one.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from octomon.clock import Clock, utcnow
from octomon.errors import AuthError, OctopusError
from octomon.octopus import gas
from octomon.octopus.budget import Budget
from octomon.octopus.gas import GasMeter
from octomon.octopus.graphql import OctopusClient
from octomon.readings import GasReading, Reading

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OctopusCheck:
    device_id: str
    reading: Reading | None
    other_devices: list[str] = field(default_factory=list)
    gas_status: str = gas.OFF  # octomon.octopus.gas: found, none, unsupported, off
    gas_meter: GasMeter | None = None
    gas_reading: GasReading | None = None


def check(settings: Settings, clock: Clock = utcnow) -> OctopusCheck:
    """Authenticate, find the device (unless OCTOPUS_DEVICE_ID), fetch the latest reading;
    the same for gas unless OCTOPUS_GAS=off (always asked afresh, whatever state.json knows).
    """
    from octomon import fsutil
    from octomon.state import StateStore

    if not settings.octopus_api_key or not settings.octopus_account_number:
        raise AuthError(
            "OCTOPUS_API_KEY and OCTOPUS_ACCOUNT_NUMBER are required", "run `octomon configure`"
        )
    store: StateStore | None = StateStore(settings.cache_dir)
    try:
        fsutil.ensure_private_dir(settings.cache_dir)
        if not os.access(settings.cache_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as exc:
        log.info("CACHE_DIR is not usable (%s): counting API calls in memory", exc.strerror)
        store = None
    budget = Budget(store, settings.octopus_max_calls_per_hour)
    client = OctopusClient(
        api_key=settings.octopus_api_key,
        account_number=settings.octopus_account_number,
        api_url=settings.octopus_api_url,
        budget=budget,
        device_id=settings.octopus_device_id,
        clock=clock,
        gas_enabled=settings.octopus_gas != gas.OFF,
        calorific_value=settings.gas_calorific_value,
    )
    try:
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
        client.close()
    return OctopusCheck(
        device, reading, list(client.other_devices), client.gas_status, meter, gas_reading
    )
