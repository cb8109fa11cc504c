"""The simulated account's identifiers and tariffs, shared by the GraphQL and REST faces.

One place, so the REST account (``sim.rest``), the GraphQL account (``sim.graphql``), the
settled consumption and the tests agree on every MPAN, serial, MPRN and device id.
"""

from __future__ import annotations

from datetime import timedelta

# Electricity import: the meter point the Home Mini reads (GraphQL device DEFAULT_DEVICE_ID).
MPAN = "1900051510123"
EXPORT_MPAN = "1170001510123"  # an export meter point (SimRest.export_tariff)
ELECTRICITY_SERIAL = "21E5151012"

# Gas: one meter point listing two meters, only the second one smart (BottlecapDave#1672).
MPRN = "8872014510"
GAS_SERIAL_OLD = "E6S10451511961"  # the replaced meter: no smartGasMeter, no readings
GAS_SERIAL = "E6S15151012345"  # the smart gas meter (SMETS2)
GAS_DEVICE_ID = "00-11-22-33-44-55-66-88"

# A property the account moved out of (REST only): must never be picked.
OLD_MPAN = "1900051599999"
OLD_ELECTRICITY_SERIAL = "19L4151999"

# Tariffs. Region C (London). The import tariff switches from a fixed tariff to an
# Agile-like one SWITCH_AGO before the sim's "now" (at a UK midnight); gas is fixed.
REGION = "C"
FIXED_IMPORT_TARIFF = "E-1R-OE-FIX-12M-25-09-01-C"
AGILE_IMPORT_TARIFF = "E-1R-AGILE-24-10-01-C"
GAS_TARIFF = "G-1R-OE-FIX-12M-25-09-01-C"
SWITCH_AGO = timedelta(days=10)

# The Economy 7 variant (``SimRest.economy7 = True``): the import meter point is on a
# dual-register fixed tariff for the whole time, with DAY/NIGHT registers.
ECONOMY7_IMPORT_TARIFF = "E-2R-OE-FIX-12M-25-09-01-C"
# The moved-out property's tariff (its agreement ended when the account moved).
OLD_IMPORT_TARIFF = "E-1R-VAR-22-11-01-C"
