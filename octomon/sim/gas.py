"""The simulated household's gas: a deterministic model, a pure function of (seed, half-hour).

A smart gas meter reports half-hourly, not every 10 s, and the Home Mini relays it as
*energy* (Wh), not volume (OCTOPUS_REST.md §6). The model: central heating in the morning
and evening whose strength follows the season (full in mid-January, off in summer), hot
water (a morning shower, a bath on some evenings) and a hob at dinner time. Each half-hour's
energy is whole Wh; the register (``consumption``) is the cumulative Wh at the *end* of the
half-hour, so ``consumption[i] - consumption[i-1] == consumptionDelta[i]`` for consecutive
half-hours, across midnight too (it reads 120,000,000 Wh at 2020-01-01 00:00 UTC).

A half-hour's reading (``readAt`` = its start) becomes visible 20-35 minutes after the
half-hour *ends* (the meter uploads late, then the hub relays it). About one day in four
loses one half-hour for ever (the meter's upload failed); the register keeps counting over it.

Prices: ``costDelta`` = Wh x 0.00584 p (5.84 p/kWh ex VAT), ``costDeltaWithTax`` = x 1.05;
``demand`` is null (a gas meter has no demand figure).
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

HALF_HOUR = 1800
SLOTS = 48  # half-hours in a UTC day
_DAY = 86400
_REGISTER_EPOCH_DAY = 18262  # 2020-01-01 as days since 1970-01-01
_REGISTER_AT_EPOCH_WH = 120_000_000
_LATENCY_MIN = 20 * 60  # after the half-hour ends
_LATENCY_SPAN = 15 * 60 + 1  # 20:00..35:00 min
_DAY_CACHE = 32
UNIT_RATE_PENCE_EX_VAT = "5.84"  # per kWh: costDelta = Wh x 0.00584 p


@dataclass(frozen=True, slots=True)
class GasDay:
    """One UTC day of half-hours: energy in Wh, the register at each half-hour's end."""

    day: int
    wh: tuple[int, ...]
    register: tuple[int, ...]
    present: tuple[bool, ...]
    latency: tuple[int, ...]  # seconds after the half-hour's end

    def item(self, slot: int) -> dict[str, str | None]:
        """The API item of half-hour ``slot`` (0..47), all fields."""
        from datetime import datetime, timezone

        wh = self.wh[slot]
        start = datetime.fromtimestamp(self.day * _DAY + slot * HALF_HOUR, timezone.utc)
        return {
            "readAt": start.isoformat(),
            "consumption": fmt_wh(self.register[slot]),
            "consumptionDelta": fmt_wh(wh),
            "demand": None,
            "costDelta": fmt_cost(wh),
            "costDeltaWithTax": fmt_cost_tax(wh),
            "export": None,
        }

    def visible_at(self, slot: int) -> int:
        """Unix time at which half-hour ``slot`` is served."""
        return self.day * _DAY + (slot + 1) * HALF_HOUR + self.latency[slot]


def fmt_wh(wh: int) -> str:
    return "0E+1" if wh == 0 else f"{wh}.0"


def fmt_cost(wh: int) -> str:
    """Wh x 0.00584 p with five places, the way the API writes decimals."""
    if wh == 0:
        return "0E+1"
    v = wh * 584
    return f"{v // 100_000}.{v % 100_000:05d}"


def fmt_cost_tax(wh: int) -> str:
    if wh == 0:
        return "0E+1"
    v = wh * 584 * 105
    return f"{v // 10_000_000}.{v % 10_000_000:07d}"


def _season(day: int) -> float:
    """1.0 in mid-January, 0.0 in mid-July (heating demand)."""
    return 0.5 + 0.5 * math.cos(2 * math.pi * ((day - 14) % 365.25) / 365.25)


class GasModel:
    """The gas of one seed; per-day totals are prefix-summed for the register."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._forward = [_REGISTER_AT_EPOCH_WH]  # register at epoch + k days
        self._backward = [_REGISTER_AT_EPOCH_WH]  # register at epoch - k days
        self._days: OrderedDict[int, GasDay] = OrderedDict()
        self._lock = threading.Lock()

    def _draws(self, day: int) -> tuple[int, ...]:
        key = f"octomon.sim:{self.seed}:{day}:gas".encode()
        return struct.unpack("<96H", hashlib.shake_256(key).digest(192))

    def _energy(self, day: int) -> list[int]:
        """The day's 48 half-hour energies in Wh."""
        d = self._draws(day)

        def pick(slot: int, lo: int, hi: int) -> int:
            return lo + d[slot] * (hi - lo + 1) // 65536

        wh = [0] * SLOTS
        season = _season(day)
        if season > 0.15:  # heating: on at 06:00-06:30 for ~2.5 h, 16:30-17:30 for ~5 h
            for start, length in (
                (pick(0, 12, 13), pick(1, 4, 6)),
                (pick(2, 33, 35), pick(3, 8, 11)),
            ):
                for k in range(length):
                    full = 4200 if k == 0 else 2600  # warming up, then modulating
                    kwh_scale = season * (0.8 + 0.4 * d[10 + k] / 65535)
                    wh[min(start + k, SLOTS - 1)] += round(full * kwh_scale)
        wh[pick(4, 13, 15)] += pick(5, 1500, 3000)  # morning shower
        if pick(6, 0, 99) < 35:  # an evening bath
            wh[pick(7, 38, 42)] += pick(8, 3000, 5000)
        wh[pick(9, 35, 37)] += pick(30, 300, 800)  # the hob at dinner
        for k in range(SLOTS):  # the pilot/standby trickle of a combi boiler
            if wh[k] == 0 and d[40 + k] % 5 == 0:
                wh[k] = d[40 + k] % 40
        return wh

    def _start(self, day: int) -> int:
        """The register at ``day``'s midnight, in Wh (caller holds the lock)."""
        k = day - _REGISTER_EPOCH_DAY
        if k >= 0:
            while len(self._forward) <= k:
                d = _REGISTER_EPOCH_DAY + len(self._forward) - 1
                self._forward.append(self._forward[-1] + sum(self._energy(d)))
            return self._forward[k]
        while len(self._backward) <= -k:
            d = _REGISTER_EPOCH_DAY - len(self._backward)
            self._backward.append(self._backward[-1] - sum(self._energy(d)))
        return self._backward[-k]

    def day(self, day: int) -> GasDay:
        with self._lock:
            cached = self._days.get(day)
            if cached is not None:
                self._days.move_to_end(day)
                return cached
            wh = self._energy(day)
            register, total = [], self._start(day)
            for e in wh:
                total += e
                register.append(total)
            key = f"octomon.sim:{self.seed}:{day}:gas-meter".encode()
            m = struct.unpack("<50H", hashlib.shake_256(key).digest(100))
            present = [True] * SLOTS
            if m[48] % 4 == 0:
                present[m[49] % SLOTS] = False
            latency = tuple(_LATENCY_MIN + m[k] * _LATENCY_SPAN // 65536 for k in range(SLOTS))
            data = GasDay(day, tuple(wh), tuple(register), tuple(present), latency)
            self._days[day] = data
            if len(self._days) > _DAY_CACHE:
                self._days.popitem(last=False)
            return data

    def visible(self, start: float, end: float, now: float) -> list[tuple[GasDay, int]]:
        """(day, slot) of every half-hour starting in [start, end) that is served at ``now``."""
        out: list[tuple[GasDay, int]] = []
        t = math.ceil(start / HALF_HOUR) * HALF_HOUR
        while t < end and t < now:
            data = self.day(t // _DAY)
            slot = (t % _DAY) // HALF_HOUR
            if data.present[slot] and data.visible_at(slot) <= now:
                out.append((data, slot))
            t += HALF_HOUR
        return out


_MODELS: dict[int, GasModel] = {}
_MODELS_LOCK = threading.Lock()


def gas_model(seed: int) -> GasModel:
    with _MODELS_LOCK:
        if seed not in _MODELS:
            _MODELS[seed] = GasModel(seed)
        return _MODELS[seed]
