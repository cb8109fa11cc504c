"""The Octopus (Kraken) GraphQL client: device discovery and telemetry.

Every request goes through :meth:`OctopusClient._post` and the one transport
(:mod:`octomon.octopus.http`: the call ledger's slot, timeouts, 429/5xx); tokens are
:mod:`octomon.octopus.auth`'s, Kraken's ``errors[]`` are mapped by
:mod:`octomon.octopus.kraken`. Queries are constant texts; every value (API key, tokens,
account, device, times) travels in ``variables``.

``requests`` is imported only when a client is built, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from octomon.clock import Clock, utcnow
from octomon.errors import ApiError, NoDevice, OctopusUnavailable
from octomon.octopus import gas, kraken
from octomon.octopus.auth import TOKEN_QUERY, Tokens
from octomon.octopus.budget import Budget
from octomon.octopus.gas import GasMeter, dict_items, meters, text_value
from octomon.octopus.http import ACCOUNT_HINT, MAX_TIMEOUT, Transport
from octomon.octopus.kraken import DEVICE_HINT, KNOWN_CODES, UnknownField
from octomon.octopus.queries import (
    DEVICES_GAS_QUERY,
    DEVICES_QUERY,
    LATEST_QUERY,
    LATEST_QUERY_LEGACY,
    TELEMETRY_QUERY,
    TELEMETRY_QUERY_LEGACY,
)
from octomon.readings import GasReading, Reading, calorific, parse_items

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

TEN_SECONDS = "TEN_SECONDS"
HALF_HOURLY = "HALF_HOURLY"
GROUPINGS = ("TEN_SECONDS", "ONE_MINUTE", "FIVE_MINUTES", "HALF_HOURLY", "HOURLY")
MAX_WINDOW = timedelta(hours=6)

_R = TypeVar("_R", Reading, GasReading)
_Parser = Callable[[list[Any], str], tuple[list[_R], int]]

_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+(\w+)")


def _operation(query: str) -> str:
    m = _OPERATION.match(query)
    return m.group(1) if m else "graphql"


def _api_time(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("telemetry times must be timezone-aware")
    return dt.astimezone(timezone.utc).isoformat()


class OctopusClient:
    """One account's session with the Kraken API. Not thread-safe: one user at a time.

    ``refresh_token``/``refresh_expires_at`` may change after any call (the monitor
    persists them); ``dropped`` counts telemetry items the parser had to drop.

    Gas (SPEC §11): with ``gas=True`` the account query also asks for the gas meters, so
    one call finds both fuels; ``gas_meter`` (a meter already known, from state.json) skips
    that. ``gas_status`` says what is known (``octomon.octopus.gas``: found, none,
    unsupported, off, unknown). A server that rejects the gas fields is asked once more
    without them (only if the electricity device is still needed) and never again.
    """

    def __init__(
        self,
        *,
        api_key: str,
        account_number: str,
        api_url: str,
        budget: Budget,
        device_id: str | None = None,
        clock: Clock = utcnow,
        timeout: float = MAX_TIMEOUT,
        refresh_token: str | None = None,
        refresh_expires_at: datetime | None = None,
        session: requests.Session | None = None,
        gas_enabled: bool = True,
        gas_meter: GasMeter | None = None,
        gas_absent: tuple[str, datetime] | None = None,
        calorific_value: float | str = "39.5",
    ) -> None:
        self.account_number = account_number
        self.api_url = api_url
        self.budget = budget
        self.device_id = device_id
        self.clock = clock
        self.other_devices: list[str] = []
        self.dropped = 0
        self.gas_meter = gas_meter if gas_enabled else None
        self.gas_status = gas.OFF if not gas_enabled else gas.FOUND if gas_meter else gas.UNKNOWN
        self.gas_checked_at: datetime | None = None  # when the account last said "no gas"
        if self.gas_status == gas.UNKNOWN and gas_absent and gas_absent[0] in gas.ABSENT:
            self.gas_status, self.gas_checked_at = gas_absent  # an earlier run asked
            said = gas_absent[1].date().isoformat()
            log.info("%s (as the account said on %s)", gas.NOTES[self.gas_status], said)
        self.calorific_value = calorific(calorific_value)
        self._legacy = False  # the server lacks costDeltaWithTax/export
        self.http = Transport(api_url, budget, clock, timeout, session)
        self.tokens = Tokens(
            api_key,
            lambda variables: self._post(TOKEN_QUERY, variables, token=None),
            clock,
            refresh_token,
            refresh_expires_at,
        )

    # --- the tokens (octomon.octopus.auth), as the monitor sees them ---------------------

    @property
    def refresh_token(self) -> str | None:
        return self.tokens.refresh_token

    @property
    def refresh_expires_at(self) -> datetime | None:
        return self.tokens.refresh_expires_at

    @property
    def token_expires_at(self) -> datetime | None:
        return self.tokens.expires_at

    def renewal_due(self, within: timedelta = timedelta(0)) -> bool:
        """See :meth:`octomon.octopus.auth.Tokens.renewal_due`."""
        return self.tokens.renewal_due(within)

    def renew(self) -> None:
        """Renew the token now (one request: the refresh token, else the API key)."""
        self.tokens.renew()

    # --- public API --------------------------------------------------------------------

    def device(self) -> str:
        """OCTOPUS_DEVICE_ID or the cached id; else one discovery call (gas found with it)."""
        if not self.device_id:
            self._discover()
        if not self.device_id:  # only when gas discovery ran with the device known
            raise NoDevice(f"No smart devices found on account {self.account_number}", DEVICE_HINT)
        return self.device_id

    def gas(self) -> GasMeter | None:
        """The smart gas meter, if any; asks the account once when it is not known yet, and
        once more when "no gas" is ``gas.RECHECK_DAYS`` old (a meter may have been fitted)."""
        absent = self.gas_absent
        if absent is not None and self.clock() - absent[1] >= timedelta(days=gas.RECHECK_DAYS):
            self.gas_status = gas.UNKNOWN
        if self.gas_status == gas.UNKNOWN:
            self._discover()
        return self.gas_meter

    @property
    def gas_absent(self) -> tuple[str, datetime] | None:
        """ "No gas" as the account said it, and when (kept in ``state.json``)."""
        if self.gas_status in gas.ABSENT and self.gas_checked_at is not None:
            return self.gas_status, self.gas_checked_at
        return None

    def _discover(self) -> None:
        """One account query: the electricity device (unless known) and the gas meter."""
        variables = {"accountNumber": self.account_number}
        found: tuple[str, GasMeter | None] | None = None
        account: dict[str, Any] | None = None
        if self.gas_status != gas.UNKNOWN:
            account = self._account(self._call(DEVICES_QUERY, variables))
        else:
            try:
                account = self._account(self._call(DEVICES_GAS_QUERY, variables))
            except ApiError as exc:
                if exc.code is not None:  # a Kraken error, not the schema refusing a field
                    raise
                log.debug("the account query with gas fields was refused: %s", exc.message)
                if not self.device_id:  # asked once more without them, never again
                    account = self._account(self._call(DEVICES_QUERY, variables))
                found = (gas.UNSUPPORTED, None)
            else:
                meter = gas.smart_gas_meter(account)
                found = (gas.FOUND if meter else gas.NONE, meter)
        if not self.device_id and account is not None:
            self.device_id = self._electricity_device(account)
        if found is not None:
            self._gas_found(*found)

    def _gas_found(self, status: str, meter: GasMeter | None) -> None:
        self.gas_status, self.gas_meter = status, meter
        self.gas_checked_at = self.clock()
        if meter is not None:
            log.info(
                "Octopus gas device %s chosen (smart gas meter %s, MPRN %s)",
                meter.device_id,
                meter.serial or "?",
                meter.mprn or "?",
            )
        else:
            log.info("%s", gas.NOTES[status])

    def _account(self, data: dict[str, Any]) -> dict[str, Any]:
        account = data.get("account")
        if not isinstance(account, dict):
            raise ApiError(
                None,
                f"account {self.account_number} was not found by the Octopus API",
                ACCOUNT_HINT,
            )
        return account

    def _electricity_device(self, account: dict[str, Any]) -> str:
        esme: list[str] = []
        imports: list[str] = []
        every: list[str] = []
        for _, meter in meters(account, "electricityAgreements"):
            smart = meter.get("smartImportElectricityMeter")
            if isinstance(smart, dict) and text_value(smart.get("deviceId")):
                imports.append(smart["deviceId"].strip())
                every.append(smart["deviceId"].strip())
            for dev in dict_items(meter.get("smartDevices")):
                dev_id = text_value(dev.get("deviceId"))
                if not dev_id:
                    continue
                every.append(dev_id)
                if str(dev.get("type") or "").upper() == "ESME":
                    esme.append(dev_id)
        candidates = esme or imports
        if not candidates:
            raise NoDevice(f"No smart devices found on account {self.account_number}", DEVICE_HINT)
        chosen = candidates[0]
        self.other_devices = list(dict.fromkeys(d for d in every if d != chosen))
        log.info("Octopus device %s chosen (smart electricity meter)", chosen)
        if self.other_devices:
            log.info("other smart devices on the account: %s", ", ".join(self.other_devices))
        return chosen

    def telemetry(
        self, start: datetime, end: datetime, grouping: str = TEN_SECONDS
    ) -> list[Reading]:
        """Readings in ``[start, end)``, oldest first, one per ``readAt``.

        A window over 6 hours is asked for in several calls (each within the budget),
        oldest first; it is all-or-nothing: an error in any part raises.
        """
        return self._ranged(start, end, grouping, self.device, self._electricity)

    def latest(self) -> Reading | None:
        """The most recent reading the API has (only ``deviceId`` is sent)."""
        readings = self._telemetry_items({"deviceId": self.device()}, True, self._electricity)
        return readings[-1] if readings else None

    def gas_telemetry(
        self, start: datetime, end: datetime, grouping: str = HALF_HOURLY
    ) -> list[GasReading]:
        """Gas half-hours in ``[start, end)``, as :meth:`telemetry` (none without a gas meter)."""
        return self._ranged(start, end, grouping, self._gas_device, self._gas)

    def gas_latest(self) -> GasReading | None:
        """The gas meter's most recent half-hour (None without a gas meter)."""
        device = self._gas_device()
        readings = self._telemetry_items({"deviceId": device}, True, self._gas) if device else []
        return readings[-1] if readings else None

    def close(self) -> None:
        self.http.close()

    # --- telemetry plumbing ----------------------------------------------------------------

    def _gas_device(self) -> str:
        meter = self.gas()
        return meter.device_id if meter else ""

    def _electricity(self, items: list[Any], device: str) -> tuple[list[Reading], int]:
        return parse_items(items, device)

    def _gas(self, items: list[Any], device: str) -> tuple[list[GasReading], int]:
        cv = self.calorific_value
        return parse_items(items, device, lambda item, d: GasReading.from_api(item, d, cv))

    def _ranged(
        self,
        start: datetime,
        end: datetime,
        grouping: str,
        device_of: Callable[[], str],
        parse: _Parser[_R],
    ) -> list[_R]:
        if grouping not in GROUPINGS:
            raise ValueError(f"unknown grouping {grouping!r}")
        _api_time(start)
        _api_time(end)
        if end <= start:
            return []
        device = device_of()
        if not device:
            return []
        found: dict[datetime, _R] = {}
        lo = start
        while lo < end:
            hi = min(lo + MAX_WINDOW, end)
            variables = {
                "deviceId": device,
                "start": _api_time(lo),
                "end": _api_time(hi),
                "grouping": grouping,
            }
            for reading in self._telemetry_items(variables, False, parse):
                found[reading.read_at] = reading
            lo = hi
        return [found[k] for k in sorted(found)]

    def _telemetry_items(
        self, variables: dict[str, Any], latest: bool, parse: _Parser[_R]
    ) -> list[_R]:
        def query() -> str:
            if latest:
                return LATEST_QUERY_LEGACY if self._legacy else LATEST_QUERY
            return TELEMETRY_QUERY_LEGACY if self._legacy else TELEMETRY_QUERY

        try:
            data = self._call(query(), variables)
        except UnknownField:
            if self._legacy:
                raise
            log.info(
                "the Octopus API does not know costDeltaWithTax/export: "
                "asking without them from now on"
            )
            self._legacy = True
            data = self._call(query(), variables)
        items = data.get("smartMeterTelemetry")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise OctopusUnavailable("the Octopus API sent an unexpected telemetry answer")
        readings, dropped = parse(items, str(variables["deviceId"]))
        if dropped:
            log.debug("dropped %d telemetry item(s) without readAt or numbers", dropped)
            self.dropped += dropped
        return readings

    # --- requests ----------------------------------------------------------------------------

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """An authenticated request, renewed and retried once if its token is refused."""
        return self.tokens.authorized(lambda token: self._post(query, variables, token=token))

    def _post(
        self, query: str, variables: Mapping[str, Any], *, token: str | None
    ) -> dict[str, Any]:
        """One GraphQL request (``token`` None: unauthenticated), its ``data`` or the
        typed error of what came back."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = token
        status, body = self.http.send(
            "POST",
            self.api_url,
            _operation(query),
            json={"query": query, "variables": dict(variables)},
            headers=headers,
        )
        errors = kraken.errors(body)
        if errors:
            log.debug("octopus %s: errors %s", _operation(query), [e.code for e in errors])
        if errors and (status < 500 or any(e.code in KNOWN_CODES for e in errors)):
            raise kraken.error_for(errors, self.http, self.account_number)
        refused = self.http.refused(status)
        if refused is not None:
            raise refused
        if status != 200:
            raise ApiError(None, f"the Octopus API answered HTTP {status}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise self.http.not_json("GraphQL JSON")
        if token is not None:
            # Only an authenticated call proves the throttle is over: a token call can
            # succeed while telemetry is still refused, and must not reset the doubling.
            self.budget.clear_backoff()
        data: dict[str, Any] = body["data"]
        return data
