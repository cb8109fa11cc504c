"""The simulated Octopus: a loopback server speaking octomon's subset of Kraken.

``graphql`` answers the GraphQL API (the account; ``tokens`` and ``telemetry`` the rest) from
the household model of ``household``, in the words of ``protocol`` (the query text, Kraken's
errors); ``rest`` (with ``products`` and ``consumption``) the REST API; ``server`` puts it on a
loopback port. See :mod:`octomon.sim.graphql` for the operations and switches; the faults only
tests inject are in ``tests/helpers/sim_faults.py``.
"""

from octomon.sim.graphql import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_KEY,
    DEFAULT_DEVICE_ID,
    DEFAULT_RETENTION,
    SimHomeMini,
)
from octomon.sim.protocol import SimResponse
from octomon.sim.server import SimServer, main
from octomon.sim.telemetry import GROUPINGS, TELEMETRY_FIELDS

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_API_KEY",
    "DEFAULT_DEVICE_ID",
    "DEFAULT_RETENTION",
    "GROUPINGS",
    "TELEMETRY_FIELDS",
    "SimHomeMini",
    "SimResponse",
    "SimServer",
    "main",
]
