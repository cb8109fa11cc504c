"""Which gas meter the Home Mini reads (SPEC §11): the account query's gas part.

A gas meter point can list two meters -- a replaced one and the smart one -- and only the
meter whose ``smartGasMeter.deviceId`` is set has telemetry (OCTOPUS_REST.md §6,
BottlecapDave#1672). Other tools picked the first meter and showed nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# What the account answered about gas (the client's ``gas_status``).
FOUND = "found"  # a smart gas meter: poll it
NONE = "none"  # the account lists no smart gas meter
UNSUPPORTED = "unsupported"  # the server rejected the gas fields
OFF = "off"  # OCTOPUS_GAS=off: never asked
UNKNOWN = "unknown"  # not asked yet

ABSENT = (NONE, UNSUPPORTED)  # remembered in state.json, and asked again after RECHECK
RECHECK_DAYS = 7  # a smart gas meter may be fitted later

NOTES = {
    NONE: "no gas: the account has no smart gas meter with a device id",
    UNSUPPORTED: "no gas: the Octopus API does not know the gas fields of the account query",
    OFF: "gas is off (OCTOPUS_GAS=off)",
}


KWH = "kWh"
M3 = "m³"
_UNITS = {"kwh": KWH, "m³": M3, "m3": M3}


def unit_of(text: str | None) -> str | None:
    """A ``consumptionUnits`` as octomon names it (``kWh`` or ``m³``); None when it is not one
    of those (the caller names it rather than guess)."""
    return _UNITS.get(text.strip().lower()) if text else None


@dataclass(frozen=True)
class GasMeter:
    device_id: str
    mprn: str | None
    serial: str | None
    units: str | None = None  # consumptionUnits as the API said it: settled data's unit
    # (serial, consumptionUnits) of the point's other meters (a replaced one): the unit of
    # their settled data, for the half-hours only they report (not part of the identity)
    others: tuple[tuple[str, str | None], ...] = field(default=(), compare=False)

    def others_text(self) -> str | None:
        """``others`` as ``state.json`` keeps them: ``SERIAL=unit SERIAL=unit`` (None: none)."""
        said = [f"{serial}={units}" for serial, units in self.others if units and " " not in units]
        return " ".join(said) or None

    @staticmethod
    def others_from(text: str | None) -> tuple[tuple[str, str | None], ...]:
        """The inverse of :meth:`others_text`; a malformed pair is left out."""
        pairs = (item.partition("=") for item in (text or "").split())
        return tuple((serial, units) for serial, sep, units in pairs if serial and sep and units)

    def units_of(self, serial: str) -> str | None:
        """The consumptionUnits of this meter or another of its point, by serial."""
        if serial == self.serial:
            return self.units
        return dict(self.others).get(serial)


def smart_gas_meter(account: dict[str, Any]) -> GasMeter | None:
    """The first gas meter with a ``smartGasMeter.deviceId``, over every active agreement."""
    listed = list(meters(account, "gasAgreements"))
    for point, meter in listed:
        smart = meter.get("smartGasMeter")
        device = text_value(smart.get("deviceId")) if isinstance(smart, dict) else None
        if device:
            serial = text_value(meter.get("serialNumber"))
            others = tuple(
                (other, text_value(m.get("consumptionUnits")))
                for p, m in listed
                if p is point and (other := text_value(m.get("serialNumber"))) and other != serial
            )
            return GasMeter(
                device,
                text_value(point.get("mprn")),
                serial,
                text_value(meter.get("consumptionUnits")),
                others,
            )
    return None


def meters(
    account: dict[str, Any], agreements: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(meter point, meter) of every active agreement of one fuel in the account query's
    answer (``agreements``: ``electricityAgreements`` or ``gasAgreements``)."""
    for agreement in dict_items(account.get(agreements)):
        point = agreement.get("meterPoint")
        if isinstance(point, dict):
            for meter in dict_items(point.get("meters")):
                yield point, meter


def dict_items(value: Any) -> list[dict[str, Any]]:
    """The dicts of a JSON list (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text_value(value: Any) -> str | None:
    """A non-blank JSON string, stripped (anything else: None)."""
    return value.strip() if isinstance(value, str) and value.strip() else None
