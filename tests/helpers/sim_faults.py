"""The simulator with the faults only tests inject (STYLE rule 14: octomon does not ship them).

:class:`FaultySim` is :class:`octomon.sim.SimHomeMini` plus switches a test flips at any time
(plain attributes read per request, or methods taking the sim's lock):

* ``expire_tokens(refresh=False)``: every token issued so far is expired (KT-CT-1124);
  ``refresh=True`` also expires the refresh tokens (KT-CT-1135).
* ``rate_limited = True``: every request is answered too-many-requests.
* ``service_errors = N``: the next N GraphQL requests fail in turn with HTTP 502 (HTML body),
  HTTP 503, then KT-GB-4039 with HTTP 200 on telemetry (HTTP 504 on other operations).
* ``rest_errors = N``: the next N REST requests answer HTTP 503.
* ``freeze(at=None)`` / ``unfreeze()``: no reading with readAt >= at (default: now) is served
  while frozen; the span [at, unfreeze time) stays missing for ever.
* ``freeze_gas(at=None)`` / ``unfreeze_gas()``: the same for gas half-hours.
* ``issued_secrets()``: every token the sim still knows (secret-leak tests search for them).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from octomon.sim import SimHomeMini, SimResponse
from octomon.sim.gas import HALF_HOUR, GasDay
from octomon.sim.household import _DAY
from octomon.sim.products import detail
from octomon.sim.protocol import GraphQLError, error_answer, html_answer


class FaultySim(SimHomeMini):
    """A :class:`SimHomeMini` whose faults a test switches on and off."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate_limited = False
        self.service_errors = 0
        self.rest_errors = 0
        self._fault_turn = 0
        self._frozen_since: int | None = None
        self._lost: list[tuple[int, int]] = []
        self._gas_frozen_since: int | None = None
        self._gas_lost: list[tuple[int, int]] = []

    # --- the seams of SimHomeMini

    def fault(self, op: str) -> SimResponse | None:
        if op == "rest":
            if self.rest_errors > 0:
                self.rest_errors -= 1
                return detail(503, "Service temporarily unavailable.")
            return None
        if self.service_errors <= 0:
            return None
        # the edge and the telemetry back end failing in turn, as they do for real
        self.service_errors -= 1
        self._fault_turn += 1
        if self._fault_turn % 3 == 1:
            return html_answer(502, "502 Bad Gateway")
        if self._fault_turn % 3 == 2:
            return html_answer(503, "503 Service Temporarily Unavailable")
        if op != "telemetry":
            return html_answer(504, "504 Gateway Time-out")
        return error_answer("smartMeterTelemetry", GraphQLError("KT-GB-4039"))

    def throttled(self) -> bool:
        return self.rate_limited or super().throttled()

    def _hidden(self, ts: int) -> bool:
        if self._frozen_since is not None and ts >= self._frozen_since:
            return True
        return super()._hidden(ts) or any(a <= ts < b for a, b in self._lost)

    def gas_visible(self, start: float, end: float, now: float) -> list[tuple[GasDay, int]]:
        found = super().gas_visible(start, end, now)
        frozen, lost = self._gas_frozen_since, self._gas_lost
        if frozen is None and not lost:
            return found
        out = []
        for d, s in found:
            t = d.day * _DAY + s * HALF_HOUR
            if (frozen is None or t < frozen) and not any(a <= t < b for a, b in lost):
                out.append((d, s))
        return out

    # --- the switches

    def expire_tokens(self, refresh: bool = False) -> None:
        """Expire every access token issued so far (and the refresh tokens if ``refresh``)."""
        with self.lock:
            now = int(self.clock().timestamp())
            tokens = self.tokens
            tokens.access = {t: min(exp, now) for t, exp in tokens.access.items()}
            if refresh:
                tokens.refresh = {t: min(exp, now) for t, exp in tokens.refresh.items()}

    def freeze(self, at: datetime | None = None) -> None:
        """The Home Mini stops uploading: nothing with readAt >= ``at`` (default now) is served."""
        with self.lock:
            self._frozen_since = math.ceil((at or self.clock()).timestamp())

    def unfreeze(self) -> None:
        """Power-cycled: uploads resume from now; the frozen span stays missing."""
        with self.lock:
            if self._frozen_since is not None:
                self._lost.append((self._frozen_since, math.ceil(self.clock().timestamp())))
                self._frozen_since = None

    def freeze_gas(self, at: datetime | None = None) -> None:
        """The gas meter stops reaching the hub: no half-hour from ``at`` on is served."""
        with self.lock:
            self._gas_frozen_since = math.ceil((at or self.clock()).timestamp())

    def unfreeze_gas(self) -> None:
        """The gas meter reconnects: uploads resume from now; the frozen span stays missing."""
        with self.lock:
            if self._gas_frozen_since is not None:
                now = math.ceil(self.clock().timestamp())
                self._gas_lost.append((self._gas_frozen_since, now))
                self._gas_frozen_since = None

    def issued_secrets(self) -> list[str]:
        """Every access and refresh token still known."""
        with self.lock:
            return [*self.tokens.access, *self.tokens.refresh]
