"""The simulated household: a deterministic load model, a pure function of (seed, readAt)."""

from __future__ import annotations

import hashlib
import itertools
import random
import struct
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

UTC = timezone.utc
_STEP = 10
_DAY = 86400
_N = _DAY // _STEP
_REGISTER_EPOCH_DAY = 18262  # 2020-01-01 as days since 1970-01-01
_REGISTER_AT_EPOCH_WH = 31_000_000
_WS_PER_WH = 360  # one Wh is 360 watt-steps of 10 s
# The base load in W at each hour 00:00..24:00 UTC: night low, breakfast, evening peak.
# fmt: off
_HOURLY_KNOTS = (190, 165, 150, 145, 145, 150, 190, 320, 300, 230, 210, 220, 260,
                 230, 210, 220, 270, 420, 520, 560, 520, 450, 340, 240, 190)
# fmt: on
_FRIDGE_PERIOD = 240  # 40 min; divides a day so the fridge's daily energy is fixed
_CYCLE = 24  # thermostat cycle of an oven: 2 min on, 2 min off
_DAY_CACHE = 16


# --------------------------------------------------------------------------- the household


_Event = tuple[int, int, int, int]
"""An appliance run (start step, length, watts, solid): ``solid`` steps at full power, then a
50 % thermostat cycle. Plain tuples: thousands of days' plans are made for the register."""


def _event_on(event: _Event, j: int) -> bool:
    return j < event[3] or (j - event[3]) % _CYCLE < _CYCLE // 2


def _event_energy(event: _Event) -> int:
    _, length, watts, solid = event
    rest = length - solid
    return (solid + (rest // _CYCLE) * (_CYCLE // 2) + min(rest % _CYCLE, _CYCLE // 2)) * watts


@dataclass(frozen=True, slots=True)
class _Plan:
    offset: int
    noise_shift: int
    fridge_phase: int
    events: tuple[_Event, ...]


@dataclass(frozen=True, slots=True)
class _DayData:
    """One UTC day of readings; arrays are indexed by 10-s step."""

    day: int
    demand: array[int]
    register: array[int]
    delta: array[int]
    present: bytearray
    latency_byte: bytes
    blank_tax: dict[int, str | None]

    def item(self, i: int) -> dict[str, str | None]:
        wh = self.delta[i]
        ts = datetime.fromtimestamp(self.day * _DAY + i * _STEP, UTC)
        return {
            "readAt": ts.isoformat(),
            "consumption": _fmt_wh(self.register[i]),
            "consumptionDelta": _fmt_wh(wh),
            "demand": f"{self.demand[i]}.0",
            "costDelta": _fmt_cost(wh),
            "costDeltaWithTax": self.blank_tax[i] if i in self.blank_tax else _fmt_cost_tax(wh),
            "export": "0.0",
        }


def _fmt_wh(wh: int) -> str:
    return "0E+1" if wh == 0 else f"{wh}.0"


def _fmt_cost(wh: int) -> str:
    """Wh x 0.0245 p, written the way Decimal would (4 places), without Decimal's cost."""
    if wh == 0:
        return "0E+1"
    v = wh * 245
    return f"{v // 10_000}.{v % 10_000:04d}"


def _fmt_cost_tax(wh: int) -> str:
    if wh == 0:
        return "0E+1"
    v = wh * 245 * 105
    return f"{v // 1_000_000}.{v % 1_000_000:06d}"


class _LoadModel:
    """The deterministic household of one seed; shared by every sim with that seed.

    Each day's energy has a closed form (fixed base shape, rotated noise and fridge patterns,
    plus a few appliance events), so the cumulative register at any midnight is a cheap prefix
    sum of per-day totals instead of a replay of every 10-s step since the epoch.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = random.Random(f"octomon.sim:{seed}:shape")
        knots = [round(k * rng.uniform(0.9, 1.1)) for k in _HOURLY_KNOTS]
        self._shape = [
            round(knots[i // 360] + (knots[i // 360 + 1] - knots[i // 360]) * (i % 360) / 360)
            for i in range(_N)
        ]
        self._noise = [rng.randint(-12, 12) for _ in range(_N)]
        fridge_watts, fridge_on = rng.randint(80, 110), rng.randint(84, 96)
        self._fridge = [fridge_watts if i % _FRIDGE_PERIOD < fridge_on else 0 for i in range(_N)]
        self._static = sum(self._shape) + sum(self._noise) + sum(self._fridge)
        self._forward = [_REGISTER_AT_EPOCH_WH * _WS_PER_WH]  # watt-steps at epoch + k days
        self._backward = [self._forward[0]]  # watt-steps at epoch - k days
        self._days: OrderedDict[int, _DayData] = OrderedDict()
        self._lock = threading.Lock()
        self._last = _DayData(-(10**9), array("q"), array("q"), array("q"), bytearray(), b"", {})

    def _plan(self, day: int) -> _Plan:
        """The day's appliance runs, from one hash: the register needs thousands of these.

        Each draw has a fixed slot of ``d`` (16-bit values), so adding an appliance later does
        not reshuffle the others.
        """
        key = f"octomon.sim:{self.seed}:{day}:plan".encode()
        d: tuple[int, ...] = struct.unpack("<64H", hashlib.shake_256(key).digest(128))

        def pick(slot: int, lo: int, hi: int) -> int:
            return lo + d[slot] * (hi - lo + 1) // 65536

        events: list[_Event] = []
        for k in range(1, 1 + 4 * pick(0, 3, 7), 4):  # kettle: morning, daytime or evening
            lo, hi = ((2340, 3240), (3600, 5760), (5940, 7740))[pick(k, 0, 2)]
            n = pick(k + 1, 15, 21)
            events.append((pick(k + 2, lo, hi), n, pick(k + 3, 2850, 3000), n))
        for k in range(30, 30 + 4 * pick(29, 0, 2), 4):  # microwave: lunch or dinner
            lo, hi = ((4140, 4860), (6300, 7020))[pick(k, 0, 1)]
            n = pick(k + 1, 6, 24)
            events.append((pick(k + 2, lo, hi), n, pick(k + 3, 1100, 1300), n))
        if pick(38, 0, 99) < 55:  # oven: preheat, then the thermostat cycles
            events.append(
                (pick(39, 6030, 6660), pick(40, 240, 450), pick(41, 2100, 2400), pick(42, 60, 90))
            )
        if pick(43, 0, 99) < 40:  # dishwasher: heat, wash, heat
            s = pick(44, 7020, 7920)
            events += [(s, 120, 2000, 120), (s + 120, 360, 120, 360), (s + 480, 60, 2000, 60)]
        weekend = (day + 3) % 7 >= 5
        if pick(45, 0, 99) < (50 if weekend else 15):  # washing machine: heat, wash, spin
            s = pick(46, 3240, 3960)
            events += [(s, 90, 2100, 90), (s + 90, 360, 250, 360), (s + 450, 60, 500, 60)]
        offset = pick(47, 0, 40) + (15 if weekend else 0)
        return _Plan(offset, pick(48, 0, _N - 1), pick(49, 0, _FRIDGE_PERIOD - 1), tuple(events))

    def _energy(self, day: int) -> int:
        plan = self._plan(day)
        return self._static + _N * plan.offset + sum(_event_energy(e) for e in plan.events)

    def _start(self, day: int) -> int:
        """The register at ``day``'s midnight, in watt-steps (caller holds the lock)."""
        k = day - _REGISTER_EPOCH_DAY
        if k >= 0:
            while len(self._forward) <= k:
                d = _REGISTER_EPOCH_DAY + len(self._forward) - 1
                self._forward.append(self._forward[-1] + self._energy(d))
            return self._forward[k]
        while len(self._backward) <= -k:
            d = _REGISTER_EPOCH_DAY - len(self._backward)
            self._backward.append(self._backward[-1] - self._energy(d))
        return self._backward[-k]

    def day(self, day: int) -> _DayData:
        last = self._last  # one attribute read: safe without the lock
        if last.day == day:
            return last
        with self._lock:
            cached = self._days.get(day)
            if cached is not None:
                self._days.move_to_end(day)
                self._last = cached
                return cached
            data = self._build(day)
            self._days[day] = data
            self._last = data
            if len(self._days) > _DAY_CACHE:
                self._days.popitem(last=False)
            return data

    def _build(self, day: int) -> _DayData:
        plan = self._plan(day)
        s, f = plan.noise_shift, plan.fridge_phase
        noise = self._noise[s:] + self._noise[:s]
        fridge = self._fridge[f:] + self._fridge[:f]
        demand = [a + b + c + plan.offset for a, b, c in zip(self._shape, noise, fridge)]
        for ev in plan.events:
            for j in range(ev[1]):
                if _event_on(ev, j):
                    demand[ev[0] + j] += ev[2]
        start = self._start(day)
        reg = [c // _WS_PER_WH for c in itertools.accumulate(demand, initial=start)]
        if reg[-1] != self._start(day + 1) // _WS_PER_WH:
            raise RuntimeError(f"sim: day {day} energy disagrees with its closed form")
        rng = random.Random(f"octomon.sim:{self.seed}:{day}:meter")
        present = bytearray(b"\x01") * _N
        count = rng.randint(14, 26)
        holes = [1 if rng.random() < 0.8 else rng.randint(2, 30) for _ in range(count)]
        if rng.random() < 0.15:
            holes.append(rng.randint(30, 90))
        for n in holes:
            at = rng.randrange(_N)
            present[at : at + n] = bytes(len(present[at : at + n]))
        latency = rng.randbytes(_N)
        blanks: dict[int, str | None] = {}
        for k in range(rng.choice((0, 0, 1, 2, 3))):
            blanks[rng.randrange(_N)] = "" if k % 2 == 0 else None
        return _DayData(
            day=day,
            demand=array("q", demand),
            register=array("q", reg[1:]),
            delta=array("q", [b - a for a, b in itertools.pairwise(reg)]),
            present=present,
            latency_byte=latency,
            blank_tax=blanks,
        )


_MODELS: dict[int, _LoadModel] = {}
_MODELS_LOCK = threading.Lock()


def _model(seed: int) -> _LoadModel:
    with _MODELS_LOCK:
        if seed not in _MODELS:
            _MODELS[seed] = _LoadModel(seed)
        return _MODELS[seed]
