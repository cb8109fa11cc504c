"""The one place that builds octomon's parts from :class:`~octomon.config.Settings`.

A command or the daemon makes one :class:`Wiring` and asks it for what it needs: the call
ledger (:class:`~octomon.octopus.budget.Budget`, over ``state.json``), the Octopus GraphQL and
REST clients, the InfluxDB sink, the cache, the alerter, the monitor and its jobs. Each is
built once, when first asked for (so a command that needs no REST client imports no
``requests``), and :meth:`Wiring.close` closes the clients that were built.

Three purposes differ in what they take from ``state.json``: the daemon (``DAEMON``, with a
stop event) resumes its session (refresh token, "no gas") and saves the ledger once per
cycle; a command (``COMMAND``) shares the ledger and the known device and gas meter but
authenticates afresh; a connection check (``CHECK``) asks everything afresh, and counts in
memory when ``CACHE_DIR`` is not usable.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octomon import fsutil
from octomon.clock import Clock, utcnow
from octomon.daemon.assembly import Filler, Parts, assemble_monitor
from octomon.units import GAS

if TYPE_CHECKING:
    from octomon.alerts.policy import AlertPolicy
    from octomon.config import Settings
    from octomon.daemon.gas import GasJob
    from octomon.daemon.jobs import SettledJob, TariffsJob
    from octomon.daemon.monitor import Monitor
    from octomon.daemon.schedule import Job
    from octomon.daemon.status import Alerts
    from octomon.octopus.budget import Budget
    from octomon.octopus.gas import GasMeter
    from octomon.octopus.graphql import OctopusClient
    from octomon.octopus.rest import RestClient
    from octomon.state import State, StateStore
    from octomon.store.cache import Cache
    from octomon.store.influx import InfluxSink

log = logging.getLogger(__name__)

DAEMON, COMMAND, CHECK = "daemon", "command", "check"
CACHE_LOCK_TIMEOUT = 5.0  # the daemon's append waits this long for `sync-cache`, then fails


class Wiring:
    """Everything built from one ``Settings``, each part once; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        stop: threading.Event | None = None,
        purpose: str | None = None,
        max_calls_per_hour: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = stop
        self.purpose = purpose or (DAEMON if stop is not None else COMMAND)
        self.cache_dir = Path(settings.cache_dir)
        self.max_calls = max_calls_per_hour or settings.octopus_max_calls_per_hour
        self._built: dict[str, Any] = {}

    # --- state.json and the call ledger ----------------------------------------------------

    @cached_property
    def state(self) -> StateStore:
        """``state.json``; the daemon creates ``CACHE_DIR`` (0700) first (OSError if it cannot)."""
        from octomon.state import StateStore

        if self.purpose == DAEMON:
            fsutil.ensure_private_dir(self.cache_dir)
        return StateStore(self.cache_dir)

    @cached_property
    def known(self) -> State:
        """What ``state.json`` says at start (device, session, gas meter)."""
        return self.state.load()

    @cached_property
    def budget(self) -> Budget:
        """The one call ledger of this process (SPEC §4.3)."""
        from octomon.octopus.budget import Budget, StopAwareBudget

        if self.stop is not None:  # refuses new requests once stopping; saved once per cycle
            return StopAwareBudget(self.state, self.max_calls, self.stop, deferred=True)
        return Budget(self._ledger(), self.max_calls)

    def _ledger(self) -> StateStore | None:
        """A check counts in memory when CACHE_DIR is not usable (it still answers)."""
        if self.purpose != CHECK:
            return self.state
        try:
            fsutil.ensure_private_dir(self.cache_dir)
            if not os.access(self.cache_dir, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable")
        except OSError as exc:
            log.info("CACHE_DIR is not usable (%s): counting API calls in memory", exc.strerror)
            return None
        return self.state

    # --- clients -----------------------------------------------------------------------------

    @cached_property
    def octopus(self) -> OctopusClient:
        from octomon.errors import AuthError
        from octomon.octopus.graphql import OctopusClient

        s = self.settings
        if not s.octopus_api_key or not s.octopus_account_number:
            raise AuthError(
                "OCTOPUS_API_KEY and OCTOPUS_ACCOUNT_NUMBER are required", "run `octomon configure`"
            )
        check, daemon = self.purpose == CHECK, self.purpose == DAEMON
        known = None if check else self.known
        client = OctopusClient(
            api_key=s.octopus_api_key,
            account_number=s.octopus_account_number,
            api_url=s.octopus_api_url,
            budget=self.budget,
            device_id=s.octopus_device_id or (known.device_id if known else None),
            clock=self.clock,
            refresh_token=self.known.refresh_token if daemon else None,
            refresh_expires_at=self.known.refresh_expires_at if daemon else None,
            gas_enabled=s.octopus_gas != "off",
            gas_meter=_known_gas_meter(known) if known else None,
            gas_absent=_known_no_gas(self.known) if daemon else None,
            calorific_value=s.gas_calorific_value,
        )
        if not daemon:
            client.announce = logging.DEBUG
        self._built["octopus"] = client
        return client

    @cached_property
    def rest(self) -> RestClient:
        from octomon.octopus.rest import RestClient

        client = RestClient.from_settings(self.settings, self.budget, self.clock)
        self._built["rest"] = client
        return client

    @property
    def api_calls(self) -> int:
        """Requests the REST and GraphQL clients made (those built)."""
        octopus = self._built.get("octopus")
        return self.rest_calls + (int(octopus.http.calls) if octopus is not None else 0)

    @property
    def rest_calls(self) -> int:
        """Requests the REST client made (0 when none was built)."""
        rest = self._built.get("rest")
        return int(rest.calls) if rest is not None else 0

    @cached_property
    def sink(self) -> InfluxSink | None:
        """InfluxDB; None in local mode (no INFLUXDB_URL)."""
        if self.settings.local_mode:
            return None
        from octomon.store.influx import InfluxSink

        sink = InfluxSink.from_settings(self.settings)
        self._built["sink"] = sink
        return sink

    @cached_property
    def cache(self) -> Cache:
        from octomon.store.cache import Cache

        timeout = {"lock_timeout": CACHE_LOCK_TIMEOUT} if self.purpose == DAEMON else {}
        return Cache(self.cache_dir, self.settings.cache_max_mb, self.clock, **timeout)

    @cached_property
    def alerter(self) -> Alerts:
        from octomon.alerts.slack import Alerter

        return Alerter(self.settings.slack_webhook_url)

    def close(self) -> None:
        """Close the clients that were built (never raises: closing must not fail a command)."""
        for part in self._built.values():
            try:
                part.close()
            except Exception:  # closing must never turn a clean end into a crash
                log.debug("error while closing a client", exc_info=True)

    # --- the daemon --------------------------------------------------------------------------

    def monitor(
        self, *, alerter: Alerts | None = None, policy: AlertPolicy | None = None
    ) -> Monitor:
        """The monitor wired to the real parts, with its jobs (tariffs, settled data, gas)."""
        from octomon.alerts.policy import AlertPolicy
        from octomon.billing.prices import pricing
        from octomon.daemon.schedule import installation_offset
        from octomon.publish import build_outputs
        from octomon.readings import calorific
        from octomon.store.sync import sync

        assert self.stop is not None, "the daemon's wiring has a stop event"
        s = self.settings
        assert s.octopus_account_number
        return assemble_monitor(
            client=self.octopus,
            cache=self.cache,
            sink=self.sink,
            store=self.state,
            budget=self.budget,
            policy=policy or AlertPolicy(),
            alerter=alerter or self.alerter,
            sync=sync,
            poll_interval=s.poll_interval_seconds,
            health_check_seconds=s.health_check_seconds,
            cache_dir=self.cache_dir,
            stop=self.stop,
            device_id=s.octopus_device_id or self.known.device_id,
            jobs=self._jobs,
            offset=installation_offset(s.octopus_account_number),
            clock=self.clock,
            feed=build_outputs(s, self.clock),  # SPEC §13: MQTT, /metrics; None when both off
            calorific_value=calorific(s.gas_calorific_value),
            pricing=pricing(s),
        )

    def _jobs(self, parts: Parts) -> list[tuple[Job, Filler | None]]:
        """Tariffs, settled data, and gas unless OCTOPUS_GAS=off; each with its status filler."""
        tariffs = self.tariffs_job()
        jobs: list[tuple[Job, Filler | None]] = [
            (tariffs, tariffs.fill_status),
            (self.settled_job(parts), None),
        ]
        if self.settings.octopus_gas != "off":
            gas = self.gas_job(parts)
            jobs.append((gas, gas.fill))
        return jobs

    def tariffs_job(self) -> TariffsJob:
        """Prices (SPEC §9): at start, then on its own schedule."""
        from octomon.billing.tariffs import Tariffs
        from octomon.daemon.jobs import TariffsJob

        tariffs = Tariffs.from_settings(self.settings, self.rest, state=self.state, sink=self.sink)
        return TariffsJob(tariffs)

    def settled_job(self, parts: Parts) -> SettledJob:
        """Settled consumption and reconciliation (SPEC §10): at start, then its own schedule."""
        from octomon.billing.settled import known_meters, units_from_state
        from octomon.daemon.jobs import SettledJob
        from octomon.readings import calorific

        number = self.settings.octopus_account_number or ""
        return SettledJob(
            rest=self.rest,
            meters=lambda: known_meters(self.cache_dir, lambda: self.rest, number),
            store=self.state,
            cache_dir=self.cache_dir,
            sink=self.sink,
            policy=parts.policy,
            emit=parts.alerts.emit,
            calorific_value=calorific(self.settings.gas_calorific_value),
            units=units_from_state(self.state),
        )

    def gas_job(self, parts: Parts) -> GasJob:
        """Gas (SPEC §11): every GAS_POLL_INTERVAL_SECONDS at the offset, the gas stream
        stored through the monitor's writer (InfluxDB or the cache) and counted into the tally."""
        from octomon.daemon.gas import GasJob
        from octomon.daemon.stream import Stream, telemetry_of

        stream = Stream(
            GAS, fetch=telemetry_of(self.octopus, GAS), writer=parts.writer, tally=parts.tally
        )
        return GasJob(
            client=self.octopus,
            stream=stream,
            store=self.state,
            policy=parts.policy,
            emit=parts.alerts.emit,
            interval=self.settings.gas_poll_interval_seconds,
        )


def build_monitor(
    settings: Settings,
    *,
    stop: threading.Event,
    clock: Clock = utcnow,
    alerter: Alerts | None = None,
    policy: AlertPolicy | None = None,
    max_calls_per_hour: int | None = None,
) -> Monitor:
    """The daemon's monitor from the settings (``run``, ``run --once``, ``run --demo`` and the
    in-process tests). Creates ``CACHE_DIR`` (0700) if needed (OSError if it cannot). The
    client's budget refuses new requests once ``stop`` is set, so a signal ends a cycle
    after its current request."""
    wiring = Wiring(settings, clock=clock, stop=stop, max_calls_per_hour=max_calls_per_hour)
    return wiring.monitor(alerter=alerter, policy=policy)


def _known_gas_meter(state: State) -> GasMeter | None:
    """The gas meter found by an earlier run (state.json): a restart costs no discovery."""
    from octomon.octopus.gas import GasMeter

    if not state.gas_device_id or not state.gas_units:  # units unknown: found again, once
        return None
    others = GasMeter.others_from(state.gas_others)
    return GasMeter(state.gas_device_id, state.gas_mprn, state.gas_serial, state.gas_units, others)


def _known_no_gas(state: State) -> tuple[str, datetime] | None:
    """ "No gas", as an earlier run was told it (state.json): a restart asks nothing."""
    from octomon.octopus.gas import ABSENT

    if state.gas_device_id or state.gas_absent not in ABSENT or state.gas_absent_at is None:
        return None
    return state.gas_absent, state.gas_absent_at
