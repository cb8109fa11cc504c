"""Kraken's GraphQL errors (KRAKEN_API.md): its error codes, and the typed error of
:mod:`octomon.errors` each one means.

Kraken answers HTTP 200 even for errors: what went wrong is in ``errors[]``, with a code in
``extensions.errorCode``. The server's message is passed on as it came: whatever keeps or
shows it scrubs it (status.json, the logs, the CLI; tests/integration/test_run_disk.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from octomon.errors import (
    ApiError,
    AuthError,
    NoDevice,
    OctopusError,
    OctopusUnavailable,
    RangeTooOld,
    TokenExpired,
)
from octomon.octopus.http import ACCOUNT_HINT, KEY_HINT, RETRY_HINT

if TYPE_CHECKING:
    from octomon.octopus.http import Transport

DEVICE_HINT = (
    "check that the account has a smart electricity meter with a paired Home Mini "
    "(it shows live usage in the Octopus app), or set OCTOPUS_DEVICE_ID"
)

AUTH_CODES = frozenset(
    {"KT-CT-1139", "KT-CT-1111", "KT-CT-1112", "KT-CT-1134", "KT-CT-1135", "KT-CT-1143"}
)
EXPIRED_CODES = frozenset({"KT-CT-1124", "KT-CT-1120"})
RATE_LIMIT_CODES = frozenset({"KT-GB-4042", "KT-CT-1199"})
UNAVAILABLE_CODES = frozenset({"KT-GB-4039", "KT-GB-4043"})
NO_DEVICE_CODES = frozenset({"KT-GB-4050", "KT-GB-4056"})
TOO_OLD_CODES = frozenset({"KT-GB-4051"})
ACCOUNT_CODES = frozenset({"KT-CT-4123"})
KNOWN_CODES = (
    AUTH_CODES
    | EXPIRED_CODES
    | RATE_LIMIT_CODES
    | UNAVAILABLE_CODES
    | NO_DEVICE_CODES
    | TOO_OLD_CODES
    | ACCOUNT_CODES
)

NEW_FIELDS = ("costDeltaWithTax", "export")  # telemetry fields older servers do not know


class UnknownField(ApiError):
    """The server's schema lacks ``costDeltaWithTax``/``export``: ask without them."""


class Error(NamedTuple):
    code: str | None
    message: str
    path: tuple[str, ...]


def errors(body: Any) -> list[Error]:
    """The ``errors[]`` of a GraphQL answer (none when it has none or is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    out: list[Error] = []
    for raw in body["errors"]:
        if not isinstance(raw, dict):
            continue
        ext_raw = raw.get("extensions")
        ext: dict[str, Any] = ext_raw if isinstance(ext_raw, dict) else {}
        code = ext.get("errorCode")
        message = raw.get("message") or ext.get("errorDescription") or "unknown error"
        path_raw = raw.get("path")
        path: list[Any] = path_raw if isinstance(path_raw, list) else []
        out.append(
            Error(
                code=str(code) if code else None,
                message=str(message).strip(),
                path=tuple(str(p) for p in path),
            )
        )
    return out


def error_for(found: list[Error], http: Transport, account_number: str) -> OctopusError:
    """The typed error for a GraphQL ``errors[]`` (the first one that we recognise)."""
    err = next((e for e in found if e.code in KNOWN_CODES), found[0])
    code, text = err.code, f"{err.code}: {err.message}" if err.code else err.message
    if code in RATE_LIMIT_CODES:
        return http.rate_limited(code)
    if code in EXPIRED_CODES:
        return TokenExpired(f"the Kraken token has expired ({text})")
    if code in AUTH_CODES:
        return AuthError(f"authentication failed: the Octopus API said {text}", KEY_HINT)
    if code in UNAVAILABLE_CODES:
        return OctopusUnavailable(f"the Octopus API is unavailable ({text})", RETRY_HINT)
    if code in NO_DEVICE_CODES:
        return NoDevice(f"No smart devices found: the Octopus API said {text}", DEVICE_HINT)
    if code in TOO_OLD_CODES:
        return RangeTooOld(f"the start of the range is too far in the past ({text})")
    if code in ACCOUNT_CODES or (err.path[:1] == ("account",)):
        return ApiError(code, f"account {account_number} was refused: {err.message}", ACCOUNT_HINT)
    if not code and any(f in e.message for e in found for f in NEW_FIELDS):
        return UnknownField(None, err.message)
    return ApiError(code, err.message)
