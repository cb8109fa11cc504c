"""The GraphQL documents octomon sends to Kraken (KRAKEN_API.md): constant texts, every
value (account, device, times) only ever in ``variables`` (STYLE rule 9)."""

from __future__ import annotations

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
