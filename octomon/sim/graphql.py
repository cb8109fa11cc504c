"""A simulated Octopus Home Mini: a loopback GraphQL server speaking octomon's subset of Kraken.

Why it exists: `octomon run --demo`, the integration tests (the real client over real HTTP) and
the benchmarks need an API that behaves like Kraken -- HTTP 200 with ``errors[]``, decimal
strings, gaps, late uploads, expiring tokens, a rate limit -- without an Octopus account.
Standard library only, so importing it is cheap.

Operations (recognised by the field names in the query text; arguments must be variables or
plain literals, and the selected fields are read from the query):

* ``obtainKrakenToken(input: {APIKey} | {refreshToken})`` -> ``token`` (60 min of sim clock),
  ``refreshToken`` (7 days; refreshing does not extend it, and returns the same refresh token),
  ``refreshExpiresIn`` (Unix time of the refresh token's expiry), ``payload`` (``exp``, ``iat``).
* ``account(accountNumber)`` -> one active electricity agreement, one meter with
  ``smartImportElectricityMeter{deviceId}`` and ``smartDevices`` ``[IHD, ESME, CAD]`` (the ESME is
  the device id; it is deliberately not listed first), and, when the query names
  ``gasAgreements``, one gas meter point (``MPRN``) listing two meters: ``GAS_SERIAL_OLD``
  without ``smartGasMeter`` (the replaced meter), then ``GAS_SERIAL`` with
  ``smartGasMeter{deviceId: GAS_DEVICE_ID}`` (``octomon.sim.account``).
* ``smartMeterTelemetry(deviceId, start, end, grouping)``: only ``deviceId`` -> ``[latest]``;
  a range needs all three; ``start`` inclusive, ``end`` exclusive, no offset means UTC.
  Grouped items start at their UTC-aligned bucket; ``consumptionDelta``/``costDelta``/
  ``costDeltaWithTax`` are sums over the bucket, ``demand`` the mean (one decimal),
  ``consumption``/``export`` the last register value. The row count is not limited.
  On the gas device (``gas_device_id``): half-hourly readings (``sim.gas``) uploaded 20-35
  minutes after each half-hour ends, ``demand``/``export`` null. A gas meter has nothing finer
  than a half-hour, so TEN_SECONDS, ONE_MINUTE and FIVE_MINUTES give the same half-hourly
  items as HALF_HOURLY (``readAt`` = the half-hour's start); HOURLY sums pairs.

``calls`` names each request by its operation (``token``, ``account``, ``telemetry``; ``gas``
for telemetry on the gas device; ``rest``; ``other``).

Error codes (GraphQL errors come with HTTP 200 and ``data: {field: null}``):

====================  =====================================================================
KT-CT-1139            bad API key ("Authentication failed.")
KT-CT-1135            refresh token unknown or expired ("Invalid data.")
KT-CT-1112            no ``Authorization`` header (raw token; ``JWT <token>`` accepted)
KT-CT-1111            unknown token ("Unauthorized.")
KT-CT-1124            expired token ("Signature of the JWT has expired.")
KT-CT-4123            wrong account number ("Unauthorized.")
KT-GB-4040            a range without all of start, end and grouping
KT-GB-4041            end <= start
KT-GB-4042            rate limited, telemetry ("Too many requests.")
KT-CT-1199            rate limited, other operations ("Too many requests.")
KT-GB-4039            service fault on telemetry ("Unable to query telemetry.")
KT-GB-4050            unknown device id, or ``no_device`` ("Smart meter not found.")
KT-GB-4051            start older than now - retention
SIM-LITERAL-SECRET    the query text contains the API key, a token, a device id or the
                      account number: octomon must pass them as variables (sim-only code)
====================  =====================================================================

Schema validation problems (unknown field, bad enum or variable, unknown operation) get HTTP 400
with ``errors[]`` and no ``data``, as a GraphQL server does before executing anything.

Faults, switchable at any time from a test (plain attributes read per request, or methods):

* ``expire_tokens(refresh=False)``: every token issued so far is expired (KT-CT-1124);
  ``refresh=True`` also expires the refresh tokens (KT-CT-1135).
* ``rate_limited = True``: every request is answered too-many-requests.
* ``service_errors = N``: the next N requests fail in turn with HTTP 502 (HTML body), HTTP 503,
  then KT-GB-4039 with HTTP 200 on telemetry (HTTP 504 on other operations).
* ``late_uploads = True``: the 2-minute bursts at minutes 10-11, 30-31 and 50-51 of every hour
  become visible 180-240 s after ``readAt``. Otherwise a reading is visible 10-60 s after its
  ``readAt`` (about 1 % after 60-150 s); ``available_at(ts)`` gives the exact moment.
* ``freeze(at=None)`` / ``unfreeze()``: no reading with readAt >= at (default: now) is served
  while frozen; the span [at, unfreeze time) stays missing for ever.
* ``retention = timedelta(days=30)``: an older ``start`` gets KT-GB-4051; ``latest`` looks
  back no further.
* ``legacy_schema = True``: ``costDeltaWithTax`` and ``export`` do not exist (HTTP 400).
* ``settled.bad_day``: a UK day on which the Home Mini misses about a fifth of its readings
  (the meter measures them: see :mod:`octomon.sim.consumption`); default the day before
  yesterday at construction, ``None`` for none.
* ``no_device = True``: the meter has no smart devices (``null`` / ``[]``), telemetry 4050.
* ``no_gas = True``: the account has no gas (``gasAgreements: []``), gas telemetry 4050.
* ``no_gas_schema = True``: the schema has no gas fields: an account query naming
  ``gasAgreements`` is HTTP 400 (as ``legacy_schema``); the same query without them works.
* ``freeze_gas(at=None)`` / ``unfreeze_gas()``: no gas half-hour from ``at`` on is served while
  frozen; the span [at, unfreeze time) stays missing for ever (as ``freeze``).

The rate limit counts every request reaching the sim (refused ones too) in a rolling hour of sim
clock; request number ``rate_limit_per_hour + 1`` is refused. ``calls``, ``served`` and
``rate_limited_answers`` record what happened (pass ``record=False`` for a long demo run so
memory stays flat; the rate limit still works).

The household (a pure function of ``(seed, readAt)``, see ``SimHomeMini.reading_at``): a diurnal
base load (~150 W at night, ~500 W evening peak), a fridge compressor cycling every 40 min,
3-7 kettle runs of ~3 kW for ~3 min, microwave, an oven on most evenings, dishwasher and washing
machine on some days. ``demand`` is whole watts ("624.0"); the register counts whole Wh and
``consumptionDelta`` is its 10-s increment, so zeros ("0E+1") are common at low load and
consecutive readings satisfy ``consumption[i] - consumption[i-1] == consumptionDelta[i]``, across
midnight too (the register reads 31,000,000 Wh at 2020-01-01 00:00 UTC and is positive from
2012). Over a gap the register keeps counting, so it jumps by more than the next delta.
``costDelta`` = Wh x 0.0245 p (24.5 p/kWh ex VAT), ``costDeltaWithTax`` = costDelta x 1.05 (a
few steps a day give ``""`` or ``null``), ``export`` is always "0.0". About 1 % of steps are
missing (single steps, short runs, sometimes a 5-15 min hole).

Threads: every request runs under ``SimHomeMini.lock`` (an RLock, also taken by the fault
methods); the per-seed household model has its own lock and is shared by sims with that seed.
``SimHomeMini.handle()`` is the transport-free entry point; ``ihd_id``/``cad_id`` are the other
listed devices (telemetry on them is KT-GB-4050).

Run alone: ``python -m octomon.sim --port 8765 [--seed 1] [--rate-limit-per-hour N]
[--late-uploads]``; it prints the URL and the settings to use, and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from octomon.sim.account import (
    ELECTRICITY_SERIAL,
    GAS_DEVICE_ID,
    GAS_SERIAL,
    GAS_SERIAL_OLD,
    MPAN,
    MPRN,
)
from octomon.sim.gas import HALF_HOUR, GasDay, fmt_cost, fmt_cost_tax, fmt_wh, gas_model
from octomon.sim.household import (
    _DAY,
    _N,
    _STEP,
    UTC,
    _DayData,
    _fmt_cost,
    _fmt_cost_tax,
    _fmt_wh,
    _model,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_API_KEY",
    "DEFAULT_DEVICE_ID",
    "DEFAULT_RETENTION",
    "GROUPINGS",
    "TELEMETRY_FIELDS",
    "SimHomeMini",
    "SimResponse",
]

DEFAULT_API_KEY = "sk_live_simulated0000000000000000"
DEFAULT_ACCOUNT = "A-5151AB12"
DEFAULT_DEVICE_ID = "00-11-22-33-44-55-66-77"
DEFAULT_RETENTION = timedelta(days=30)
GROUPINGS: dict[str, int] = {
    "TEN_SECONDS": 10,
    "ONE_MINUTE": 60,
    "FIVE_MINUTES": 300,
    "HALF_HOURLY": 1800,
    "HOURLY": 3600,
}
TELEMETRY_FIELDS = (
    "readAt",
    "consumption",
    "consumptionDelta",
    "demand",
    "costDelta",
    "costDeltaWithTax",
    "export",
)
_NEW_FIELDS = frozenset({"costDeltaWithTax", "export"})
_FIELD_OF = {"token": "obtainKrakenToken", "account": "account", "telemetry": "smartMeterTelemetry"}

_TOKEN_LIFETIME = 3600
_REFRESH_LIFETIME = 7 * _DAY
_ISSUER = "https://api.octopus.energy/v1/graphql/"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _seconds(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return ts.timestamp()


# --------------------------------------------------------------------------- GraphQL text

_COMMENT = re.compile(r"#[^\n]*")
_ARG = re.compile(r'([_A-Za-z]\w*)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|\{[^{}]*\}|[-\w.+:]+)')
_TOKEN = re.compile(r"[_A-Za-z]\w*|[{}()]")


_ERRORS: dict[str, tuple[str, str, str]] = {  # code -> (message, errorType, errorDescription)
    "KT-CT-1111": ("Unauthorized.", "AUTHORIZATION", "The token is not recognised."),
    "KT-CT-1112": ("'Authorization' header not provided.", "AUTHORIZATION", ""),
    "KT-CT-1124": ("Signature of the JWT has expired.", "AUTHORIZATION", ""),
    "KT-CT-1135": ("Invalid data.", "VALIDATION", "The refresh token is invalid or has expired."),
    "KT-CT-1139": ("Authentication failed.", "VALIDATION", ""),
    "KT-CT-1199": ("Too many requests.", "THROTTLING", ""),
    "KT-CT-4123": ("Unauthorized.", "AUTHORIZATION", "No such account for this user."),
    "KT-GB-4039": ("Unable to query telemetry.", "SERVICE_AVAILABILITY", ""),
    "KT-GB-4040": (
        "Invalid telemetry query.",
        "VALIDATION",
        "A range needs start, end and grouping.",
    ),
    "KT-GB-4041": ("Invalid telemetry query.", "VALIDATION", "The end must be after the start."),
    "KT-GB-4042": ("Too many requests.", "THROTTLING", ""),
    "KT-GB-4050": ("Smart meter not found.", "NOT_FOUND", ""),
    "KT-GB-4051": ("The start of the range is too far in the past.", "VALIDATION", ""),
    "SIM-LITERAL-SECRET": (
        "octomon.sim refuses secrets and ids written into the query text: use variables.",
        "VALIDATION",
        "",
    ),
}


class _GraphQLError(Exception):
    """A Kraken-style GraphQL error (HTTP 200) on one top-level field; see ``_ERRORS``."""

    def __init__(self, code: str) -> None:
        self.message, self.error_type, description = _ERRORS[code]
        super().__init__(self.message)
        self.code, self.description = code, description or self.message


class _Invalid(Exception):
    """A schema validation failure: HTTP 400, nothing executed."""


def _operation(query: str) -> str:
    if re.search(r"\bobtainKrakenToken\b", query):
        return "token"
    if re.search(r"\bsmartMeterTelemetry\b", query):
        return "telemetry"
    if re.search(r"\baccount\s*\(", query):
        return "account"
    return "other"


def _field(query: str, name: str) -> tuple[dict[str, str], list[str]]:
    """The raw arguments and the top-level selected names of field ``name``."""
    m = re.search(rf"\b{name}\b\s*", query)
    if m is None:
        raise _Invalid(f'Cannot query field "{name}".')
    pos, args = m.end(), ""
    if query.startswith("(", pos):
        close = query.find(")", pos)
        if close < 0:
            raise _Invalid("Syntax Error: Expected Name, found <EOF>.")
        args, pos = query[pos + 1 : close], close + 1
    names: list[str] = []
    depth = 0
    for tok in _TOKEN.finditer(query, pos):
        t = tok.group()
        if t in ("{", "("):
            depth += 1
        elif t in ("}", ")"):
            depth -= 1
            if depth <= 0:
                break
        elif depth == 1:
            names.append(t)
        elif depth == 0:
            break
    return dict(_ARG.findall(args)), names


def _value(raw: str | None, variables: dict[str, Any]) -> Any:
    if raw is None or raw == "null":
        return None
    if raw.startswith("$"):
        return variables.get(raw[1:])
    if raw.startswith('"'):
        return json.loads(raw)
    if raw.startswith("{"):
        return {k: _value(v, variables) for k, v in _ARG.findall(raw[1:-1])}
    return raw


def _datetime(name: str, value: Any) -> float:
    try:
        text = str(value).strip()
        ts = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except (ValueError, IndexError):
        raise _Invalid(
            f'Variable "${name}" got invalid value {json.dumps(value)}; '
            "DateTime cannot represent value."
        ) from None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _prune(obj: Any, names: set[str]) -> Any:
    """Keep only fields named somewhere in the query (good enough for the account query)."""
    if isinstance(obj, dict):
        return {k: _prune(v, names) for k, v in obj.items() if k in names}
    if isinstance(obj, list):
        return [_prune(v, names) for v in obj]
    return obj


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    body: bytes
    content_type: str = "application/json"


def _json(status: int, payload: Any) -> SimResponse:
    return SimResponse(status, json.dumps(payload, separators=(",", ":")).encode())


def _html(status: int, title: str) -> SimResponse:
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    return SimResponse(status, body.encode(), "text/html")


# --------------------------------------------------------------------------- the account


class SimHomeMini:
    """The simulated account, meter and Kraken back end; every request runs under ``lock``."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        account_number: str = DEFAULT_ACCOUNT,
        device_id: str = DEFAULT_DEVICE_ID,
        seed: int = 1,
        clock: Callable[[], datetime] | None = None,
        rate_limit_per_hour: int = 100,
        record: bool = True,
        gas_device_id: str = GAS_DEVICE_ID,
    ) -> None:
        self.api_key, self.account_number, self.device_id = api_key, account_number, device_id
        self.gas_device_id = gas_device_id
        self.seed = seed
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.rate_limit_per_hour = rate_limit_per_hour
        self.record = record
        self.lock = threading.RLock()
        self.rate_limited = False
        self.service_errors = 0
        self.late_uploads = False
        self.retention = DEFAULT_RETENTION
        self.legacy_schema = False
        self.no_device = False
        self.no_gas = False
        self.no_gas_schema = False
        self.gas_served: dict[datetime, dict[str, str | None]] = {}
        self._gas = gas_model(seed)
        self._gas_frozen_since: int | None = None
        self._gas_lost: list[tuple[int, int]] = []
        self.calls: list[tuple[datetime, str]] = []
        self.rate_limited_answers = 0
        self.served: dict[datetime, dict[str, str | None]] = {}
        digest = hashlib.sha256(f"{seed}:{device_id}".encode()).hexdigest().upper()
        self.ihd_id = "-".join(digest[i : i + 2] for i in range(0, 16, 2))
        self.cad_id = "-".join(digest[i : i + 2] for i in range(16, 32, 2))
        self._model = _model(seed)
        self._secret = hashlib.sha256(f"octomon.sim:{seed}:jwt".encode()).digest()
        self._tokens: dict[str, int] = {}  # access token -> exp (Unix seconds)
        self._refresh: dict[str, int] = {}  # refresh token -> expiry
        self._issued = 0
        self._window: deque[float] = deque()
        self._fault_turn = 0
        self._frozen_since: int | None = None
        self._lost: list[tuple[int, int]] = []
        from octomon.sim.rest import SimRest  # imports this module: bound here, not above

        self.rest = SimRest(self)
        from octomon.sim.consumption import SimSettled

        self.settled = SimSettled(self)  # settled consumption, and the Home Mini's bad day

    # ---- the readings, as a pure function of (seed, ts) and the upload faults

    def reading_at(self, ts: datetime) -> dict[str, str | None] | None:
        """The API item for the 10-s step ``ts`` (all seven fields), or None for a gap/off-step."""
        t = _seconds(ts)
        if t % _STEP:
            return None
        day, i = divmod(int(t), _DAY)
        data = self._model.day(day)
        if not data.present[i // _STEP] or self.settled.hidden(int(t)):
            return None
        return data.item(i // _STEP)

    def available_at(self, ts: datetime) -> datetime:
        """When the reading of step ``ts`` becomes visible (depends on ``late_uploads``)."""
        t = int(_seconds(ts)) // _STEP * _STEP
        data = self._model.day(t // _DAY)
        return datetime.fromtimestamp(t + self._latency(data, t), UTC)

    def _latency(self, data: _DayData, t: int) -> int:
        b = data.latency_byte[(t % _DAY) // _STEP]
        if self.late_uploads and 600 <= t % 1200 < 720:
            return 180 + b % 61
        if b >= 253:  # "sometimes minutes"
            return 60 + (b - 253) * 45
        return 10 + b % 51

    def _visible(self, start: float, end: float, now: float) -> Iterator[tuple[_DayData, int]]:
        """(day, step index) of every reading in [start, end) the API shows at ``now``."""
        t = math.ceil(start / _STEP) * _STEP
        stop = min(end, now)
        while t < stop:
            day = t // _DAY
            data, base = self._model.day(day), day * _DAY
            last = min(_N, math.ceil((stop - base) / _STEP))
            for i in range((t - base) // _STEP, last):
                if not data.present[i]:
                    continue
                ts = base + i * _STEP
                if ts + self._latency(data, ts) > now or self._hidden(ts):
                    continue
                yield data, i
            t = base + _DAY

    def _hidden(self, ts: int) -> bool:
        if self._frozen_since is not None and ts >= self._frozen_since:
            return True
        if self.settled.hidden(ts):
            return True
        return any(a <= ts < b for a, b in self._lost)

    def issued_secrets(self) -> list[str]:
        """Every access and refresh token still known (secret-leak tests search for them)."""
        with self.lock:
            return [*self._tokens, *self._refresh]

    def gas_reading_at(self, ts: datetime) -> dict[str, str | None] | None:
        """The gas API item of the half-hour starting at ``ts`` (or None: not a half-hour start,
        or a half-hour the meter never uploaded)."""
        t = _seconds(ts)
        if t % HALF_HOUR:
            return None
        day, rest = divmod(int(t), _DAY)
        data = self._gas.day(day)
        slot = rest // HALF_HOUR
        return data.item(slot) if data.present[slot] else None

    def gas_available_at(self, ts: datetime) -> datetime:
        """When the gas half-hour starting at ``ts`` becomes visible (20-35 min after its end)."""
        t = int(_seconds(ts)) // HALF_HOUR * HALF_HOUR
        return datetime.fromtimestamp(
            self._gas.day(t // _DAY).visible_at((t % _DAY) // HALF_HOUR), UTC
        )

    # ---- faults

    def freeze_gas(self, at: datetime | None = None) -> None:
        """The gas meter stops reaching the hub: no half-hour from ``at`` on is served."""
        with self.lock:
            self._gas_frozen_since = math.ceil(_seconds(at or self.clock()))

    def unfreeze_gas(self) -> None:
        """The gas meter reconnects: uploads resume from now; the frozen span stays missing."""
        with self.lock:
            if self._gas_frozen_since is not None:
                now = math.ceil(_seconds(self.clock()))
                self._gas_lost.append((self._gas_frozen_since, now))
                self._gas_frozen_since = None

    def expire_tokens(self, refresh: bool = False) -> None:
        """Expire every access token issued so far (and the refresh tokens if ``refresh``)."""
        with self.lock:
            now = int(_seconds(self.clock()))
            self._tokens = {t: min(exp, now) for t, exp in self._tokens.items()}
            if refresh:
                self._refresh = {t: min(exp, now) for t, exp in self._refresh.items()}

    def freeze(self, at: datetime | None = None) -> None:
        """The Home Mini stops uploading: nothing with readAt >= ``at`` (default now) is served."""
        with self.lock:
            self._frozen_since = math.ceil(_seconds(at or self.clock()))

    def unfreeze(self) -> None:
        """Power-cycled: uploads resume from now; the frozen span stays missing."""
        with self.lock:
            if self._frozen_since is not None:
                self._lost.append((self._frozen_since, math.ceil(_seconds(self.clock()))))
                self._frozen_since = None

    # ---- the request pipeline

    def handle(self, method: str, path: str, authorization: str | None, body: bytes) -> SimResponse:
        """Answer one HTTP request; transport-independent so benchmarks may call it directly."""
        if path.startswith("/v1/") and path.split("?")[0].rstrip("/") != "/v1/graphql":
            return self._rest(method, path, authorization)
        raw, query, variables = "", "", dict[str, Any]()
        bad_request: str | None = None
        if method != "POST" or path.split("?")[0].rstrip("/") != "/v1/graphql":
            bad_request = "octomon.sim serves POST /v1/graphql/ only."
        else:
            try:
                doc = json.loads(body or b"null")
                raw = str(doc.get("query") or "")
                query = _COMMENT.sub("", raw)
                variables = doc.get("variables") or {}
                if not query or not isinstance(variables, dict):
                    bad_request = "Must provide query string."
            except (ValueError, AttributeError):
                bad_request = "Body is not valid JSON."
        op = _operation(query) if bad_request is None else "other"
        with self.lock:
            now_dt = self.clock()
            now = _seconds(now_dt)
            if self.record:
                gas = op == "telemetry" and self._is_gas(variables.get("deviceId"))
                self.calls.append((now_dt, "gas" if gas else op))
            self._window.append(now)
            while self._window and self._window[0] <= now - 3600:
                self._window.popleft()
            if self.service_errors > 0:
                return self._service_fault(op)
            if bad_request is not None:
                return _json(400, {"errors": [self._invalid_error(bad_request)]})
            field = _FIELD_OF.get(op, "")
            if self.rate_limited or len(self._window) > self.rate_limit_per_hour:
                self.rate_limited_answers += 1
                code = "KT-GB-4042" if op == "telemetry" else "KT-CT-1199"
                return self._error(field or None, _GraphQLError(code))
            try:
                self._check_literals(raw)
                if op == "other":
                    raise _Invalid(
                        "octomon.sim knows obtainKrakenToken, account and smartMeterTelemetry only."
                    )
                args, selection = _field(query, field)
                if op == "token":
                    data: Any = self._token(args, selection, variables, int(now))
                else:
                    self._authorise(authorization, now)
                    if op == "account":
                        data = self._account(args, variables, set(_TOKEN.findall(query)))
                    else:
                        data = self._telemetry(args, selection, variables, now)
            except _Invalid as err:
                return _json(400, {"errors": [self._invalid_error(str(err))]})
            except _GraphQLError as err:
                return self._error(field, err)
            return _json(200, {"data": {field: data}})

    def _rest(self, method: str, path: str, authorization: str | None) -> SimResponse:
        """REST requests (``sim.rest``) count in the same rolling hour as GraphQL ones, and
        are in ``calls`` as the operation "rest" (``rest.calls`` has their paths)."""
        with self.lock:
            now_dt = self.clock()
            now = _seconds(now_dt)
            if self.record:
                self.calls.append((now_dt, "rest"))
            self._window.append(now)
            while self._window and self._window[0] <= now - 3600:
                self._window.popleft()
            if self.rate_limited or len(self._window) > self.rate_limit_per_hour:
                self.rate_limited_answers += 1
                return _json(429, {"detail": "Request was throttled."})
            return self.rest.handle(method, path, authorization)

    def _is_gas(self, device: Any) -> bool:
        return isinstance(device, str) and device.upper() == self.gas_device_id.upper()

    def _service_fault(self, op: str) -> SimResponse:
        """The edge and the telemetry back end failing in turn, as they do for real."""
        self.service_errors -= 1
        self._fault_turn += 1
        if self._fault_turn % 3 == 1:
            return _html(502, "502 Bad Gateway")
        if self._fault_turn % 3 == 2:
            return _html(503, "503 Service Temporarily Unavailable")
        if op != "telemetry":
            return _html(504, "504 Gateway Time-out")
        return self._error("smartMeterTelemetry", _GraphQLError("KT-GB-4039"))

    @staticmethod
    def _invalid_error(message: str) -> dict[str, Any]:
        return {
            "message": message,
            "extensions": {
                "errorType": "VALIDATION",
                "errorCode": None,
                "errorDescription": message,
            },
        }

    @staticmethod
    def _error(field: str | None, err: _GraphQLError) -> SimResponse:
        error: dict[str, Any] = {
            "message": err.message,
            "extensions": {
                "errorType": err.error_type,
                "errorCode": err.code,
                "errorDescription": err.description,
                "errorClass": err.error_type,
            },
        }
        if field:
            error["path"] = [field]
        return _json(200, {"errors": [error], "data": {field: None} if field else None})

    def _check_literals(self, query: str) -> None:
        folded = query.casefold()
        secrets = [self.api_key, self.account_number, self.device_id, self.ihd_id, self.cad_id]
        secrets.append(self.gas_device_id)
        if any(s.casefold() in folded for s in secrets) or any(
            t in query for t in itertools.chain(self._tokens, self._refresh)
        ):
            raise _GraphQLError("SIM-LITERAL-SECRET")

    def _authorise(self, header: str | None, now: float) -> None:
        if not header or not header.strip():
            raise _GraphQLError("KT-CT-1112")
        token = header.strip()
        if token[:4].upper() == "JWT ":
            token = token[4:].strip()
        exp = self._tokens.get(token)
        if exp is None:
            raise _GraphQLError("KT-CT-1111")
        if exp <= now:
            raise _GraphQLError("KT-CT-1124")

    def _token(
        self, args: dict[str, str], selection: list[str], variables: dict[str, Any], now: int
    ) -> dict[str, Any]:
        given = _value(args.get("input"), variables)
        if not isinstance(given, dict):
            raise _Invalid(
                'Argument "input" of required type "ObtainJSONWebTokenInput!" was not provided.'
            )
        if given.get("APIKey") is not None:
            if not hmac.compare_digest(str(given["APIKey"]), self.api_key):
                raise _GraphQLError("KT-CT-1139")
            self._issued += 1
            refresh = hashlib.sha256(self._secret + f"refresh:{self._issued}".encode()).hexdigest()
            self._refresh[refresh] = now + _REFRESH_LIFETIME
            grant = "API_KEY"
        else:
            refresh = str(given.get("refreshToken") or "")
            if self._refresh.get(refresh, 0) <= now:
                raise _GraphQLError("KT-CT-1135")
            grant = "REFRESH_TOKEN"
        self._issued += 1
        payload = {
            "sub": "kraken|account-user:5151",
            "gty": grant,
            "tokenUse": "access",
            "iss": _ISSUER,
            "iat": now,
            "exp": now + _TOKEN_LIFETIME,
            "origIat": now,
            "jti": self._issued,
        }
        head = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(payload).encode())
        token = head + "." + _b64(hmac.new(self._secret, head.encode(), "sha256").digest())
        self._tokens = {t: e for t, e in self._tokens.items() if e > now - _REFRESH_LIFETIME}
        self._tokens[token] = now + _TOKEN_LIFETIME
        result = {
            "token": token,
            "refreshToken": refresh,
            "refreshExpiresIn": self._refresh[refresh],
            "payload": payload,
        }
        return {k: v for k, v in result.items() if k in selection} if selection else result

    def _account(
        self, args: dict[str, str], variables: dict[str, Any], names: set[str]
    ) -> dict[str, Any]:
        number = _value(args.get("accountNumber"), variables)
        if not isinstance(number, str) or number.upper() != self.account_number.upper():
            raise _GraphQLError("KT-CT-4123")
        meter: dict[str, Any] = {
            "serialNumber": ELECTRICITY_SERIAL,
            "smartImportElectricityMeter": None,
            "smartDevices": [],
        }
        if not self.no_device:
            meter["smartImportElectricityMeter"] = {"deviceId": self.device_id}
            meter["smartDevices"] = [
                {"deviceId": self.ihd_id, "type": "IHD"},
                {"deviceId": self.device_id, "type": "ESME"},
                {"deviceId": self.cad_id, "type": "CAD"},
            ]
        account: dict[str, Any] = {
            "electricityAgreements": [{"meterPoint": {"mpan": MPAN, "meters": [meter]}}]
        }
        if "gasAgreements" in names:
            if self.no_gas_schema:
                raise _Invalid('Cannot query field "gasAgreements" on type "AccountType".')
            account["gasAgreements"] = [] if self.no_gas else [self._gas_agreement()]
        pruned: dict[str, Any] = _prune(account, names)
        return pruned

    def _gas_agreement(self) -> dict[str, Any]:
        old = {"serialNumber": GAS_SERIAL_OLD, "consumptionUnits": "m³", "smartGasMeter": None}
        smart = {
            "serialNumber": GAS_SERIAL,
            "consumptionUnits": "m³",
            "smartGasMeter": {"deviceId": self.gas_device_id},
        }
        return {"meterPoint": {"mprn": MPRN, "meters": [old, smart]}}

    def _telemetry(
        self, args: dict[str, str], selection: list[str], variables: dict[str, Any], now: float
    ) -> list[dict[str, str | None]]:
        known = set(TELEMETRY_FIELDS) - (_NEW_FIELDS if self.legacy_schema else set())
        if not selection:
            raise _Invalid(
                'Field "smartMeterTelemetry" of type "[SmartMeterTelemetryType]" '
                "must have a selection of subfields."
            )
        for name in selection:
            if name not in known and name != "__typename":
                raise _Invalid(f'Cannot query field "{name}" on type "SmartMeterTelemetryType".')
        device = _value(args.get("deviceId"), variables)
        if not isinstance(device, str):
            raise _Invalid('Variable "$deviceId" of required type "String!" was not provided.')
        given = {k: _value(args.get(k), variables) for k in ("start", "end", "grouping")}
        grouping = given["grouping"]
        if grouping is not None and (not isinstance(grouping, str) or grouping not in GROUPINGS):
            raise _Invalid(
                f'Value {json.dumps(grouping)} does not exist in "TelemetryGrouping" enum.'
            )
        start = _datetime("start", given["start"]) if given["start"] is not None else None
        end = _datetime("end", given["end"]) if given["end"] is not None else None
        oldest = now - self.retention.total_seconds()
        if not self.no_gas and device.upper() == self.gas_device_id.upper():
            return self._gas_telemetry(start, end, grouping, selection, now, oldest)
        if self.no_device or device.upper() != self.device_id.upper():
            raise _GraphQLError("KT-GB-4050")
        if start is None and end is None and grouping is None:
            found: list[tuple[_DayData, int]] = []
            hour_end = now
            while not found and hour_end > oldest:
                found = list(self._visible(max(hour_end - 3600, oldest), hour_end, now))
                hour_end -= 3600
            rows = [self._ten_seconds(*found[-1], selection)] if found else []
        elif start is None or end is None or grouping is None:
            raise _GraphQLError("KT-GB-4040")
        elif end <= start:
            raise _GraphQLError("KT-GB-4041")
        elif start < oldest:
            raise _GraphQLError("KT-GB-4051")
        elif grouping == "TEN_SECONDS":
            rows = [self._ten_seconds(d, i, selection) for d, i in self._visible(start, end, now)]
        else:
            rows = self._grouped(self._visible(start, end, now), GROUPINGS[grouping], selection)
        return rows

    def _gas_telemetry(
        self,
        start: float | None,
        end: float | None,
        grouping: str | None,
        selection: list[str],
        now: float,
        oldest: float,
    ) -> list[dict[str, str | None]]:
        """Half-hourly gas items; finer groupings give the same half-hours (the meter has
        nothing finer), HOURLY sums pairs."""
        if start is None and end is None and grouping is None:
            found: list[tuple[GasDay, int]] = []
            day_end = now
            while not found and day_end > oldest:
                found = self._gas_visible(max(day_end - _DAY, oldest), day_end, now)
                day_end -= _DAY
            return [self._gas_item(*found[-1], selection)] if found else []
        if start is None or end is None or grouping is None:
            raise _GraphQLError("KT-GB-4040")
        if end <= start:
            raise _GraphQLError("KT-GB-4041")
        if start < oldest:
            raise _GraphQLError("KT-GB-4051")
        found = self._gas_visible(start, end, now)
        if GROUPINGS[grouping] <= HALF_HOUR:
            return [self._gas_item(d, slot, selection) for d, slot in found]
        size = GROUPINGS[grouping]
        hours: dict[int, list[int]] = {}  # bucket -> [Wh, last register]
        for d, slot in found:
            g = hours.setdefault((d.day * _DAY + slot * HALF_HOUR) // size * size, [0, 0])
            g[0] += d.wh[slot]
            g[1] = d.register[slot]
        rows = []
        for bucket, (wh, register) in hours.items():
            full: dict[str, str | None] = {
                "readAt": datetime.fromtimestamp(bucket, UTC).isoformat(),
                "consumption": fmt_wh(register),
                "consumptionDelta": fmt_wh(wh),
                "demand": None,
                "costDelta": fmt_cost(wh),
                "costDeltaWithTax": fmt_cost_tax(wh),
                "export": None,
            }
            rows.append({k: full[k] for k in selection if k in full})
        return rows

    def _gas_visible(self, start: float, end: float, now: float) -> list[tuple[GasDay, int]]:
        found = self._gas.visible(start, end, now)
        frozen, lost = self._gas_frozen_since, self._gas_lost
        if frozen is None and not lost:
            return found
        out = []
        for d, s in found:
            t = d.day * _DAY + s * HALF_HOUR
            if (frozen is None or t < frozen) and not any(a <= t < b for a, b in lost):
                out.append((d, s))
        return out

    def _gas_item(self, data: GasDay, slot: int, selection: list[str]) -> dict[str, str | None]:
        full = data.item(slot)
        item = {k: full[k] for k in selection if k in full}
        if self.record:
            self.gas_served[datetime.fromtimestamp(data.day * _DAY + slot * HALF_HOUR, UTC)] = item
        return item

    def _ten_seconds(self, data: _DayData, i: int, selection: list[str]) -> dict[str, str | None]:
        full = data.item(i)
        item = {k: full[k] for k in selection if k in full}
        if self.record:
            self.served[datetime.fromtimestamp(data.day * _DAY + i * _STEP, UTC)] = item
        return item

    @staticmethod
    def _grouped(
        readings: Iterator[tuple[_DayData, int]], size: int, selection: list[str]
    ) -> list[dict[str, str | None]]:
        groups: dict[int, list[int]] = {}  # bucket -> [count, demand sum, Wh sum, last register]
        for data, i in readings:
            g = groups.setdefault((data.day * _DAY + i * _STEP) // size * size, [0, 0, 0, 0])
            g[0] += 1
            g[1] += data.demand[i]
            g[2] += data.delta[i]
            g[3] = data.register[i]
        rows = []
        for bucket, (count, demand, wh, register) in groups.items():
            mean = (Decimal(demand) / count).quantize(Decimal("0.1"))
            full: dict[str, str | None] = {
                "readAt": datetime.fromtimestamp(bucket, UTC).isoformat(),
                "consumption": _fmt_wh(register),
                "consumptionDelta": _fmt_wh(wh),
                "demand": str(mean),
                "costDelta": _fmt_cost(wh),
                "costDeltaWithTax": _fmt_cost_tax(wh),
                "export": "0.0",
            }
            rows.append({k: full[k] for k in selection if k in full})
        return rows
