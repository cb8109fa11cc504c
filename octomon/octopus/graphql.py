"""The Octopus (Kraken) GraphQL client: tokens, device discovery, telemetry, error mapping.

Every HTTP request goes through :meth:`OctopusClient._post`, which first takes a slot in
the call ledger (SPEC §4.3) and then maps whatever comes back -- Kraken answers HTTP 200
even for errors -- onto the typed errors of :mod:`octomon.errors`. Queries are constant
texts; every value (API key, tokens, account, device, times) travels in ``variables``.

``requests`` is imported only when a client is built, so importing this module is cheap.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from octomon import redact
from octomon.clock import Clock, utcnow
from octomon.errors import (
    ApiError,
    AuthError,
    NoDevice,
    OctopusError,
    OctopusUnavailable,
    RangeTooOld,
    RateLimited,
    TokenExpired,
)
from octomon.octopus import gas
from octomon.octopus.budget import Budget
from octomon.octopus.gas import GasMeter, dict_items, text_value
from octomon.readings import GasReading, Reading, calorific, parse_items

if TYPE_CHECKING:
    import requests

    from octomon.config import Settings

log = logging.getLogger(__name__)

TEN_SECONDS = "TEN_SECONDS"
HALF_HOURLY = "HALF_HOURLY"
GROUPINGS = ("TEN_SECONDS", "ONE_MINUTE", "FIVE_MINUTES", "HALF_HOURLY", "HOURLY")
MAX_WINDOW = timedelta(hours=6)
RENEW_BEFORE = timedelta(minutes=5)
TOKEN_LIFETIME = timedelta(minutes=60)
MAX_TIMEOUT = 10.0

KEY_HINT = "check OCTOPUS_API_KEY (Octopus account > Personal details > API access)"
ACCOUNT_HINT = "check OCTOPUS_ACCOUNT_NUMBER (A-XXXXXXXX, shown at the top of your account)"
DEVICE_HINT = (
    "check that the account has a smart electricity meter with a paired Home Mini "
    "(it shows live usage in the Octopus app), or set OCTOPUS_DEVICE_ID"
)

# --- the GraphQL texts: constants, values only ever in variables ----------------------

TOKEN_QUERY = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}
"""

_ELECTRICITY_METERS = """
    electricityAgreements(active: true) {
      meterPoint {
        mpan
        meters(includeInactive: false) {
          serialNumber
          smartImportElectricityMeter { deviceId }
          smartDevices { deviceId type }
        }
      }
    }
"""
# The gas part of SPEC §11: asked in the same call, so one query finds both fuels.
_GAS_METERS = """
    gasAgreements(active: true) {
      meterPoint {
        mprn
        meters(includeInactive: false) {
          serialNumber
          consumptionUnits
          smartGasMeter { deviceId }
        }
      }
    }
"""
_ACCOUNT = """
query Devices($accountNumber: String!) {
  account(accountNumber: $accountNumber) {%s  }
}
"""
# Composed from the constant parts above only; values still travel in variables.
DEVICES_QUERY = _ACCOUNT % _ELECTRICITY_METERS
DEVICES_GAS_QUERY = _ACCOUNT % (_ELECTRICITY_METERS + _GAS_METERS)

TELEMETRY_QUERY = """
query Telemetry($deviceId: String!, $start: DateTime, $end: DateTime,
                $grouping: TelemetryGrouping) {
  smartMeterTelemetry(deviceId: $deviceId, start: $start, end: $end, grouping: $grouping) {
    readAt consumption consumptionDelta demand costDelta costDeltaWithTax export
  }
}
"""

# For servers that do not know the newer fields (KRAKEN_API.md, "Telemetry").
TELEMETRY_QUERY_LEGACY = """
query Telemetry($deviceId: String!, $start: DateTime, $end: DateTime,
                $grouping: TelemetryGrouping) {
  smartMeterTelemetry(deviceId: $deviceId, start: $start, end: $end, grouping: $grouping) {
    readAt consumption consumptionDelta demand costDelta
  }
}
"""

LATEST_QUERY = """
query Latest($deviceId: String!) {
  smartMeterTelemetry(deviceId: $deviceId) {
    readAt consumption consumptionDelta demand costDelta costDeltaWithTax export
  }
}
"""

LATEST_QUERY_LEGACY = """
query Latest($deviceId: String!) {
  smartMeterTelemetry(deviceId: $deviceId) {
    readAt consumption consumptionDelta demand costDelta
  }
}
"""

NEW_FIELDS = ("costDeltaWithTax", "export")

# --- Kraken error codes (KRAKEN_API.md) --------------------------------------------------

AUTH_CODES = frozenset(
    {"KT-CT-1139", "KT-CT-1111", "KT-CT-1112", "KT-CT-1134", "KT-CT-1135", "KT-CT-1143"}
)
EXPIRED_CODES = frozenset({"KT-CT-1124", "KT-CT-1120"})
RATE_LIMIT_CODES = frozenset({"KT-GB-4042", "KT-CT-1199"})
UNAVAILABLE_CODES = frozenset({"KT-GB-4039", "KT-GB-4043"})
NO_DEVICE_CODES = frozenset({"KT-GB-4050", "KT-GB-4056"})
TOO_OLD_CODES = frozenset({"KT-GB-4051"})
ACCOUNT_CODES = frozenset({"KT-CT-4123"})
KNOWN_CODES = (
    AUTH_CODES
    | EXPIRED_CODES
    | RATE_LIMIT_CODES
    | UNAVAILABLE_CODES
    | NO_DEVICE_CODES
    | TOO_OLD_CODES
    | ACCOUNT_CODES
)

_R = TypeVar("_R", Reading, GasReading)
_Parser = Callable[[list[Any], str], tuple[list[_R], int]]

_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+(\w+)")


class _UnknownField(ApiError):
    """The server's schema lacks ``costDeltaWithTax``/``export``: ask without them."""


def _operation(query: str) -> str:
    m = _OPERATION.match(query)
    return m.group(1) if m else "graphql"


def _api_time(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("telemetry times must be timezone-aware")
    return dt.astimezone(timezone.utc).isoformat()


def _unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc)


def _jwt_exp(token: str) -> Any:
    """``exp`` from the token's own payload (used when ``payload`` is missing)."""
    try:
        part = token.split(".")[1]
        obj = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    return obj.get("exp") if isinstance(obj, dict) else None


@dataclass(frozen=True)
class _Error:
    code: str | None
    message: str
    path: tuple[str, ...]
    error_type: str | None


def _errors(body: Any) -> list[_Error]:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    out: list[_Error] = []
    for raw in body["errors"]:
        if not isinstance(raw, dict):
            continue
        ext_raw = raw.get("extensions")
        ext: dict[str, Any] = ext_raw if isinstance(ext_raw, dict) else {}
        code = ext.get("errorCode")
        message = raw.get("message") or ext.get("errorDescription") or "unknown error"
        path_raw = raw.get("path")
        path: list[Any] = path_raw if isinstance(path_raw, list) else []
        out.append(
            _Error(
                code=str(code) if code else None,
                message=str(message).strip(),
                path=tuple(str(p) for p in path),
                error_type=str(ext["errorType"]) if ext.get("errorType") else None,
            )
        )
    return out


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
        self.api_key = api_key
        self.account_number = account_number
        self.api_url = api_url
        self.budget = budget
        self.device_id = device_id
        self.clock = clock
        self.timeout = min(max(timeout, 0.1), MAX_TIMEOUT)
        self.refresh_token = refresh_token
        self.refresh_expires_at = refresh_expires_at
        self.token_expires_at: datetime | None = None
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
        self._token: str | None = None
        self._legacy = False  # the server lacks costDeltaWithTax/export
        self._host = urlsplit(api_url).hostname or "the Octopus API"
        redact.register(api_key)
        redact.register(refresh_token)
        if session is None:
            import requests

            session = requests.Session()
            self._own_session = True
        else:
            self._own_session = False
        self._session = session

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
        for agreement in dict_items(account.get("electricityAgreements")):
            point = agreement.get("meterPoint")
            if not isinstance(point, dict):
                continue
            for meter in dict_items(point.get("meters")):
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
        if self._own_session:
            self._session.close()

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
        except _UnknownField:
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

    # --- tokens (SPEC §4.2) --------------------------------------------------------------------

    def renewal_due(self, within: timedelta = timedelta(0)) -> bool:
        """Is the token held still valid, but due for its early renewal now or within
        ``within``? (False before the first token, and once it has expired: the next call
        renews it then anyway.)"""
        if self._token is None or self.token_expires_at is None:
            return False
        now = self.clock()
        return self.token_expires_at - RENEW_BEFORE <= now + within and now < self.token_expires_at

    def renew(self) -> None:
        """Renew the token now (one request: the refresh token, else the API key)."""
        self._token = None
        self._ensure_token()

    def _ensure_token(self) -> str:
        now = self.clock()
        if (
            self._token is not None
            and self.token_expires_at is not None
            and now < self.token_expires_at - RENEW_BEFORE
        ):
            return self._token
        self._token = None
        if self.refresh_token and (
            self.refresh_expires_at is None or now < self.refresh_expires_at - RENEW_BEFORE
        ):
            try:
                return self._obtain({"refreshToken": self.refresh_token})
            except AuthError as exc:
                log.info("the refresh token was refused (%s); using the API key", exc.message)
        elif self.refresh_token:
            log.debug("the refresh token has expired; using the API key")
        self.refresh_token = None
        self.refresh_expires_at = None
        return self._obtain({"APIKey": self.api_key})

    def _obtain(self, given: dict[str, str]) -> str:
        data = self._post(TOKEN_QUERY, {"input": given}, auth=False)
        result = data.get("obtainKrakenToken")
        token = result.get("token") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(token, str) or not token:
            raise OctopusUnavailable("the Octopus API sent no token")
        redact.register(token)
        now = self.clock()
        payload = result.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = None
        exp = payload.get("exp") if isinstance(payload, dict) else None
        expires = _unix(exp) or _unix(_jwt_exp(token)) or now + TOKEN_LIFETIME
        refresh = result.get("refreshToken")
        if isinstance(refresh, str) and refresh:
            redact.register(refresh)
            self.refresh_token = refresh
            refresh_exp = _unix(result.get("refreshExpiresIn"))
            if refresh_exp is not None and refresh_exp.year < 2000:
                # A duration after all, not the Unix time the API documents.
                refresh_exp = now + (refresh_exp - datetime(1970, 1, 1, tzinfo=timezone.utc))
            self.refresh_expires_at = refresh_exp
        self._token = token
        self.token_expires_at = expires
        log.debug("Kraken token obtained, valid until %s", expires.isoformat())
        return token

    # --- requests ----------------------------------------------------------------------------

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """An authenticated request, retried once with a new token if its token is refused.

        Expired (KT-CT-1124/1120): renew as usual. Refused by an auth code (a revoked or
        garbled token): renew with the API key itself, so that only a key that is really
        refused ends as ``AuthError`` -- never a daemon stopped by one bad token.
        """
        token = self._ensure_token()
        try:
            return self._post(query, variables, auth=True, token=token)
        except TokenExpired:
            log.info("the Kraken token expired early; renewing it and retrying once")
        except AuthError as exc:
            log.warning(
                "the Kraken token was refused (%s); obtaining a new one with the API key", exc
            )
            self.refresh_token = None
            self.refresh_expires_at = None
        self._token = None
        self.token_expires_at = None
        token = self._ensure_token()
        return self._post(query, variables, auth=True, token=token)

    def _post(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        auth: bool = True,
        token: str | None = None,
    ) -> dict[str, Any]:
        """THE one HTTP request: budget first, then POST, then map the answer."""
        import requests

        op = _operation(query)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = token if token is not None else self._ensure_token()
        self.budget.reserve(self.clock())
        started = time.monotonic()
        try:
            response = self._session.post(
                self.api_url,
                json={"query": query, "variables": dict(variables)},
                headers=headers,
                timeout=self.timeout,
                verify=True,
            )
        except requests.Timeout:
            log.debug("octopus %s: timed out after %.1f s", op, time.monotonic() - started)
            raise OctopusUnavailable(
                f"the Octopus API ({self._host}) did not answer within {self.timeout:g} s",
                "usually transient; octomon retries",
            ) from None
        except requests.RequestException as exc:
            log.debug("octopus %s: %s", op, type(exc).__name__)
            raise OctopusUnavailable(
                f"could not reach the Octopus API ({self._host}): {_reason(exc)}",
                "check the network connection; octomon retries",
            ) from None
        elapsed = (time.monotonic() - started) * 1000
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        errors = _errors(body)
        log.debug(
            "octopus %s: HTTP %d in %.0f ms%s",
            op,
            status,
            elapsed,
            f", errors {[e.code for e in errors]}" if errors else "",
        )
        if errors and (status < 500 or any(e.code in KNOWN_CODES for e in errors)):
            raise self._map(errors, status)
        if status == 429:
            raise self._rate_limited(None)
        if status >= 500:
            raise OctopusUnavailable(
                f"the Octopus API answered HTTP {status}", "usually transient; octomon retries"
            )
        if status != 200:
            raise ApiError(None, f"the Octopus API answered HTTP {status}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise OctopusUnavailable(
                "the Octopus API sent an answer that is not GraphQL JSON",
                "usually transient; octomon retries",
            )
        if auth:
            # Only an authenticated call proves the throttle is over: a token call can
            # succeed while telemetry is still refused, and must not reset the doubling.
            self.budget.clear_backoff()
        data: dict[str, Any] = body["data"]
        return data

    def _rate_limited(self, err: _Error | None) -> RateLimited:
        seconds = self.budget.rate_limited(self.clock())
        code = f" ({err.code})" if err is not None else " (HTTP 429)"
        return RateLimited(
            f"the Octopus API rate limit was hit{code}; backing off {seconds:.0f} s",
            "the limit (about 100 calls an hour) is shared with the Octopus app and "
            "other integrations",
            retry_in=seconds,
        )

    def _map(self, errors: list[_Error], status: int) -> OctopusError:
        """The typed error for a GraphQL ``errors[]`` (the first one that we recognise)."""
        err = next((e for e in errors if e.code in KNOWN_CODES), errors[0])
        code, text = err.code, f"{err.code}: {err.message}" if err.code else err.message
        if code in RATE_LIMIT_CODES:
            return self._rate_limited(err)
        if code in EXPIRED_CODES:
            return TokenExpired(f"the Kraken token has expired ({text})")
        if code in AUTH_CODES:
            return AuthError(f"authentication failed: the Octopus API said {text}", KEY_HINT)
        if code in UNAVAILABLE_CODES:
            return OctopusUnavailable(
                f"the Octopus API is unavailable ({text})", "usually transient; octomon retries"
            )
        if code in NO_DEVICE_CODES:
            return NoDevice(f"No smart devices found: the Octopus API said {text}", DEVICE_HINT)
        if code in TOO_OLD_CODES:
            return RangeTooOld(f"the start of the range is too far in the past ({text})")
        if code in ACCOUNT_CODES or (err.path[:1] == ("account",)):
            return ApiError(
                code,
                f"account {self.account_number} was refused: {err.message}",
                ACCOUNT_HINT,
            )
        if not code and any(f in e.message for e in errors for f in NEW_FIELDS):
            return _UnknownField(None, err.message)
        return ApiError(code, err.message)


def _reason(exc: Exception) -> str:
    """A short cause for a transport failure, without the URL requests puts in messages."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


# --- the connection test ----------------------------------------------------------------------


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

    Its calls go into the shared ledger under CACHE_DIR when that is usable (so a test
    run while the daemon polls still respects the budget), else into a private one.
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
