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
  a range needs all three (:mod:`octomon.sim.telemetry`). On the gas device
  (``gas_device_id``): half-hourly readings (``sim.gas``) uploaded 20-35 minutes after each
  half-hour ends, ``demand``/``export`` null.

``calls`` names each request by its operation (``token``, ``account``, ``telemetry``; ``gas``
for telemetry on the gas device; ``rest``; ``other``).

Error codes and answers: :mod:`octomon.sim.protocol`.

Switches, read per request (plain attributes):

* ``late_uploads = True`` (``--late-uploads``): the 2-minute bursts at minutes 10-11, 30-31 and
  50-51 of every hour become visible 180-240 s after ``readAt``. Otherwise a reading is visible
  10-60 s after its ``readAt`` (about 1 % after 60-150 s); ``available_at(ts)`` gives the exact
  moment.
* ``retention = timedelta(days=30)``: an older ``start`` gets KT-GB-4051; ``latest`` looks
  back no further.
* Kinds of account and schema: ``no_device = True`` (the meter has no smart devices: ``null`` /
  ``[]``, telemetry 4050); ``no_gas = True`` (``gasAgreements: []``, gas telemetry 4050);
  ``legacy_schema = True`` (``costDeltaWithTax`` and ``export`` do not exist: HTTP 400);
  ``no_gas_schema = True`` (an account query naming ``gasAgreements`` is HTTP 400; the same
  query without them works).
* ``settled.bad_day``: a UK day on which the Home Mini misses about a fifth of its readings
  (the meter measures them: see :mod:`octomon.sim.consumption`); default the day before
  yesterday at construction, ``None`` for none.

Faults that only tests inject (expired tokens, forced rate limiting, service errors, a frozen
Home Mini or gas meter, REST errors) live in ``tests/helpers/sim_faults.py``, a subclass
that uses the two seams here: :meth:`SimHomeMini.fault` and :meth:`SimHomeMini.throttled`.

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

Threads: every request runs under ``SimHomeMini.lock`` (an RLock, also taken by a test's fault
switches); the per-seed household model has its own lock and is shared by sims with that seed.
``SimHomeMini.handle()`` is the transport-free entry point; ``ihd_id``/``cad_id`` are the other
listed devices (telemetry on them is KT-GB-4050).

Run alone: ``python -m octomon.sim --port 8765 [--seed 1] [--rate-limit-per-hour N]
[--late-uploads]``; it prints the URL and the settings to use, and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from octomon.sim import telemetry
from octomon.sim.account import (
    ELECTRICITY_SERIAL,
    GAS_DEVICE_ID,
    GAS_SERIAL,
    GAS_SERIAL_OLD,
    MPAN,
    MPRN,
)
from octomon.sim.gas import HALF_HOUR, GasDay, gas_model
from octomon.sim.household import _DAY, _N, _STEP, UTC, _DayData, _model
from octomon.sim.protocol import (
    COMMENT,
    NAME_TOKEN,
    GraphQLError,
    Invalid,
    SimResponse,
    error_answer,
    field_args,
    invalid_error,
    json_answer,
    operation,
    prune,
    value,
)
from octomon.sim.tokens import Tokens

DEFAULT_API_KEY = "sk_live_simulated0000000000000000"
DEFAULT_ACCOUNT = "A-5151AB12"
DEFAULT_DEVICE_ID = "00-11-22-33-44-55-66-77"
DEFAULT_RETENTION = timedelta(days=30)
_FIELD_OF = {"token": "obtainKrakenToken", "account": "account", "telemetry": "smartMeterTelemetry"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _seconds(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return ts.timestamp()


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
        self.late_uploads = False
        self.retention = DEFAULT_RETENTION
        self.legacy_schema = False
        self.no_device = False
        self.no_gas = False
        # The gas meter's consumptionUnits, and so its settled data's unit: "m³" (SMETS2, the
        # usual) or "kWh" (SMETS1, OCTOPUS_REST.md §4).
        self.gas_units = "m³"
        self.no_gas_schema = False
        self.gas_served: dict[datetime, dict[str, str | None]] = {}
        self._gas = gas_model(seed)
        self.calls: list[tuple[datetime, str]] = []
        self.rate_limited_answers = 0
        self.served: dict[datetime, dict[str, str | None]] = {}
        digest = hashlib.sha256(f"{seed}:{device_id}".encode()).hexdigest().upper()
        self.ihd_id = "-".join(digest[i : i + 2] for i in range(0, 16, 2))
        self.cad_id = "-".join(digest[i : i + 2] for i in range(16, 32, 2))
        self._model = _model(seed)
        self.tokens = Tokens(seed, api_key)
        self._window: deque[float] = deque()
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

    def visible(self, start: float, end: float, now: float) -> Iterator[tuple[_DayData, int]]:
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
        """A reading never uploaded (the meter measured it: see ``settled``)."""
        return self.settled.hidden(ts)

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

    def gas_visible(self, start: float, end: float, now: float) -> list[tuple[GasDay, int]]:
        """(day, slot) of every gas half-hour in [start, end) the API shows at ``now``."""
        return self._gas.visible(start, end, now)

    # ---- the seams a test's fault switches use (tests/helpers/sim_faults.py)

    def fault(self, op: str) -> SimResponse | None:
        """The answer an injected fault gives instead of ``op`` (``rest`` too); None: none."""
        return None

    def _count(self, now: float) -> None:
        """One more request in the rolling hour (refused ones count too)."""
        self._window.append(now)
        while self._window and self._window[0] <= now - 3600:
            self._window.popleft()

    def throttled(self) -> bool:
        """Whether the request just counted is over the rolling hour's limit."""
        return len(self._window) > self.rate_limit_per_hour

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
                query = COMMENT.sub("", raw)
                variables = doc.get("variables") or {}
                if not query or not isinstance(variables, dict):
                    bad_request = "Must provide query string."
            except (ValueError, AttributeError):
                bad_request = "Body is not valid JSON."
        op = operation(query) if bad_request is None else "other"
        with self.lock:
            now_dt = self.clock()
            now = _seconds(now_dt)
            if self.record:
                gas = op == "telemetry" and self._is_gas(variables.get("deviceId"))
                self.calls.append((now_dt, "gas" if gas else op))
            self._count(now)
            fault = self.fault(op)
            if fault is not None:
                return fault
            if bad_request is not None:
                return json_answer(400, {"errors": [invalid_error(bad_request)]})
            field = _FIELD_OF.get(op, "")
            if self.throttled():
                self.rate_limited_answers += 1
                code = "KT-GB-4042" if op == "telemetry" else "KT-CT-1199"
                return error_answer(field or None, GraphQLError(code))
            try:
                self._check_literals(raw)
                if op == "other":
                    raise Invalid(
                        "octomon.sim knows obtainKrakenToken, account and smartMeterTelemetry only."
                    )
                args, selection = field_args(query, field)
                if op == "token":
                    data: Any = self.tokens.obtain(args, selection, variables, int(now))
                else:
                    self.tokens.authorise(authorization, now)
                    if op == "account":
                        data = self._account(args, variables, set(NAME_TOKEN.findall(query)))
                    else:
                        data = telemetry.answer(self, args, selection, variables, now)
            except Invalid as err:
                return json_answer(400, {"errors": [invalid_error(str(err))]})
            except GraphQLError as err:
                return error_answer(field, err)
            return json_answer(200, {"data": {field: data}})

    def _rest(self, method: str, path: str, authorization: str | None) -> SimResponse:
        """REST requests (``sim.rest``) count in the same rolling hour as GraphQL ones, and
        are in ``calls`` as the operation "rest" (``rest.calls`` has their paths)."""
        with self.lock:
            now_dt = self.clock()
            now = _seconds(now_dt)
            if self.record:
                self.calls.append((now_dt, "rest"))
            self._count(now)
            if self.throttled():
                self.rate_limited_answers += 1
                return json_answer(429, {"detail": "Request was throttled."})
            return self.rest.handle(method, path, authorization)

    def _is_gas(self, device: Any) -> bool:
        return isinstance(device, str) and device.upper() == self.gas_device_id.upper()

    def _check_literals(self, query: str) -> None:
        folded = query.casefold()
        secrets = [self.api_key, self.account_number, self.device_id, self.ihd_id, self.cad_id]
        secrets.append(self.gas_device_id)
        if any(s.casefold() in folded for s in secrets) or any(
            t in query for t in itertools.chain(self.tokens.access, self.tokens.refresh)
        ):
            raise GraphQLError("SIM-LITERAL-SECRET")

    def _account(
        self, args: dict[str, str], variables: dict[str, Any], names: set[str]
    ) -> dict[str, Any]:
        number = value(args.get("accountNumber"), variables)
        if not isinstance(number, str) or number.upper() != self.account_number.upper():
            raise GraphQLError("KT-CT-4123")
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
                raise Invalid('Cannot query field "gasAgreements" on type "AccountType".')
            account["gasAgreements"] = [] if self.no_gas else [self._gas_agreement()]
        pruned: dict[str, Any] = prune(account, names)
        return pruned

    def _gas_agreement(self) -> dict[str, Any]:
        old = {"serialNumber": GAS_SERIAL_OLD, "consumptionUnits": "m³", "smartGasMeter": None}
        smart = {
            "serialNumber": GAS_SERIAL,
            "consumptionUnits": self.gas_units,
            "smartGasMeter": {"deviceId": self.gas_device_id},
        }
        return {"meterPoint": {"mprn": MPRN, "meters": [old, smart]}}
