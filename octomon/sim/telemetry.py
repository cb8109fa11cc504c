"""The simulator's ``smartMeterTelemetry`` answer: latest, ranges, groupings, gas.

Only ``deviceId``: ``[latest]``; a range needs start, end and grouping (``start``
inclusive, ``end`` exclusive, no offset means UTC). Grouped items start at their UTC-aligned
bucket; ``consumptionDelta``/``costDelta``/``costDeltaWithTax`` are sums over the bucket,
``demand`` the mean (one decimal), ``consumption``/``export`` the last register value. A gas
meter has nothing finer than a half-hour: finer groupings give the half-hours, HOURLY sums
pairs. What is visible when is :class:`octomon.sim.graphql.SimHomeMini`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from octomon.sim.gas import HALF_HOUR, GasDay, fmt_cost, fmt_cost_tax, fmt_wh
from octomon.sim.household import _DAY, _STEP, UTC, _DayData, _fmt_cost, _fmt_cost_tax, _fmt_wh
from octomon.sim.protocol import GraphQLError, Invalid, parse_datetime, value

if TYPE_CHECKING:
    from octomon.sim.graphql import SimHomeMini

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


def answer(
    sim: SimHomeMini,
    args: dict[str, str],
    selection: list[str],
    variables: dict[str, Any],
    now: float,
) -> list[dict[str, str | None]]:
    known = set(TELEMETRY_FIELDS) - (_NEW_FIELDS if sim.legacy_schema else set())
    if not selection:
        raise Invalid(
            'Field "smartMeterTelemetry" of type "[SmartMeterTelemetryType]" '
            "must have a selection of subfields."
        )
    for name in selection:
        if name not in known and name != "__typename":
            raise Invalid(f'Cannot query field "{name}" on type "SmartMeterTelemetryType".')
    device = value(args.get("deviceId"), variables)
    if not isinstance(device, str):
        raise Invalid('Variable "$deviceId" of required type "String!" was not provided.')
    given = {k: value(args.get(k), variables) for k in ("start", "end", "grouping")}
    grouping = given["grouping"]
    if grouping is not None and (not isinstance(grouping, str) or grouping not in GROUPINGS):
        raise Invalid(f'Value {json.dumps(grouping)} does not exist in "TelemetryGrouping" enum.')
    start = parse_datetime("start", given["start"]) if given["start"] is not None else None
    end = parse_datetime("end", given["end"]) if given["end"] is not None else None
    oldest = now - sim.retention.total_seconds()
    if not sim.no_gas and device.upper() == sim.gas_device_id.upper():
        return _gas(sim, start, end, grouping, selection, now, oldest)
    if sim.no_device or device.upper() != sim.device_id.upper():
        raise GraphQLError("KT-GB-4050")
    if start is None and end is None and grouping is None:
        found: list[tuple[_DayData, int]] = []
        hour_end = now
        while not found and hour_end > oldest:
            found = list(sim.visible(max(hour_end - 3600, oldest), hour_end, now))
            hour_end -= 3600
        rows = [_ten_seconds(sim, *found[-1], selection)] if found else []
    elif start is None or end is None or grouping is None:
        raise GraphQLError("KT-GB-4040")
    elif end <= start:
        raise GraphQLError("KT-GB-4041")
    elif start < oldest:
        raise GraphQLError("KT-GB-4051")
    elif grouping == "TEN_SECONDS":
        rows = [_ten_seconds(sim, d, i, selection) for d, i in sim.visible(start, end, now)]
    else:
        rows = _grouped(sim.visible(start, end, now), GROUPINGS[grouping], selection)
    return rows


def _gas(
    sim: SimHomeMini,
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
            found = sim.gas_visible(max(day_end - _DAY, oldest), day_end, now)
            day_end -= _DAY
        return [_gas_item(sim, *found[-1], selection)] if found else []
    if start is None or end is None or grouping is None:
        raise GraphQLError("KT-GB-4040")
    if end <= start:
        raise GraphQLError("KT-GB-4041")
    if start < oldest:
        raise GraphQLError("KT-GB-4051")
    found = sim.gas_visible(start, end, now)
    if GROUPINGS[grouping] <= HALF_HOUR:
        return [_gas_item(sim, d, slot, selection) for d, slot in found]
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


def _gas_item(
    sim: SimHomeMini, data: GasDay, slot: int, selection: list[str]
) -> dict[str, str | None]:
    at = datetime.fromtimestamp(data.day * _DAY + slot * HALF_HOUR, UTC)
    return _serve(sim.gas_served if sim.record else None, at, data.item(slot), selection)


def _ten_seconds(
    sim: SimHomeMini, data: _DayData, i: int, selection: list[str]
) -> dict[str, str | None]:
    at = datetime.fromtimestamp(data.day * _DAY + i * _STEP, UTC)
    return _serve(sim.served if sim.record else None, at, data.item(i), selection)


def _serve(
    served: dict[datetime, dict[str, str | None]] | None,
    at: datetime,
    full: dict[str, str | None],
    selection: list[str],
) -> dict[str, str | None]:
    """The fields asked for of one item, remembered as served (``sim.record``)."""
    item = {k: full[k] for k in selection if k in full}
    if served is not None:
        served[at] = item
    return item


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
