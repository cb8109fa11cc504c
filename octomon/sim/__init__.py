"""The simulated Octopus: a loopback server speaking octomon's subset of Kraken.

``graphql`` answers the GraphQL API (tokens, the account, telemetry) from the household model of
``household``; ``server`` puts it on a loopback port. See :mod:`octomon.sim.graphql` for the
operations, error codes and switchable faults.
"""

from octomon.sim.graphql import (
    DEFAULT_ACCOUNT,
    DEFAULT_API_KEY,
    DEFAULT_DEVICE_ID,
    DEFAULT_RETENTION,
    GROUPINGS,
    TELEMETRY_FIELDS,
    SimHomeMini,
    SimResponse,
)
from octomon.sim.server import SimServer, main

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
