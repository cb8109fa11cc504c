"""Kraken's GraphQL as the simulator reads and answers it: the query text, the errors, the body.

Arguments must be variables or plain literals; the selected fields are read from the query
text. GraphQL errors come with HTTP 200 and ``data: {field: null}`` (``_ERRORS`` holds the
codes the simulator gives); schema validation problems get HTTP 400 and no ``data``.

Error codes (GraphQL errors come with HTTP 200 and ``data: {field: null}``):

====================  =====================================================================
KT-CT-1139            bad API key ("Authentication failed.")
KT-CT-1135            refresh token unknown or expired ("Invalid data.")
KT-CT-1112            no ``Authorization`` header (raw token; ``JWT <token>`` accepted)
KT-CT-1111            unknown token ("Unauthorized.")
KT-CT-1124            expired token ("Signature of the JWT has expired.")
KT-CT-4123            wrong account number ("Unauthorized.")
KT-GB-4040            a range without all of start, end and grouping
KT-GB-4041            end <= start
KT-GB-4042            rate limited, telemetry ("Too many requests.")
KT-CT-1199            rate limited, other operations ("Too many requests.")
KT-GB-4039            service fault on telemetry ("Unable to query telemetry.")
KT-GB-4050            unknown device id, or ``no_device`` ("Smart meter not found.")
KT-GB-4051            start older than now - retention
SIM-LITERAL-SECRET    the query text contains the API key, a token, a device id or the
                      account number: octomon must pass them as variables (sim-only code)
====================  =====================================================================

Schema validation problems (unknown field, bad enum or variable, unknown operation) get HTTP 400
with ``errors[]`` and no ``data``, as a GraphQL server does before executing anything.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from octomon.sim.household import UTC

COMMENT = re.compile(r"#[^\n]*")
_ARG = re.compile(r'([_A-Za-z]\w*)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|\{[^{}]*\}|[-\w.+:]+)')
NAME_TOKEN = re.compile(r"[_A-Za-z]\w*|[{}()]")


_ERRORS: dict[str, tuple[str, str, str]] = {  # code -> (message, errorType, errorDescription)
    "KT-CT-1111": ("Unauthorized.", "AUTHORIZATION", "The token is not recognised."),
    "KT-CT-1112": ("'Authorization' header not provided.", "AUTHORIZATION", ""),
    "KT-CT-1124": ("Signature of the JWT has expired.", "AUTHORIZATION", ""),
    "KT-CT-1135": ("Invalid data.", "VALIDATION", "The refresh token is invalid or has expired."),
    "KT-CT-1139": ("Authentication failed.", "VALIDATION", ""),
    "KT-CT-1199": ("Too many requests.", "THROTTLING", ""),
    "KT-CT-4123": ("Unauthorized.", "AUTHORIZATION", "No such account for this user."),
    "KT-GB-4039": ("Unable to query telemetry.", "SERVICE_AVAILABILITY", ""),
    "KT-GB-4040": ("Invalid telemetry query.", "VALIDATION", "Needs start, end and grouping."),
    "KT-GB-4041": ("Invalid telemetry query.", "VALIDATION", "The end must be after the start."),
    "KT-GB-4042": ("Too many requests.", "THROTTLING", ""),
    "KT-GB-4050": ("Smart meter not found.", "NOT_FOUND", ""),
    "KT-GB-4051": ("The start of the range is too far in the past.", "VALIDATION", ""),
    "SIM-LITERAL-SECRET": (
        "octomon.sim refuses secrets and ids written into the query text: use variables.",
        "VALIDATION",
        "",
    ),
}


class GraphQLError(Exception):
    """A Kraken-style GraphQL error (HTTP 200) on one top-level field; see ``_ERRORS``."""

    def __init__(self, code: str) -> None:
        self.message, self.error_type, description = _ERRORS[code]
        super().__init__(self.message)
        self.code, self.description = code, description or self.message


class Invalid(Exception):
    """A schema validation failure: HTTP 400, nothing executed."""


def operation(query: str) -> str:
    if re.search(r"\bobtainKrakenToken\b", query):
        return "token"
    if re.search(r"\bsmartMeterTelemetry\b", query):
        return "telemetry"
    if re.search(r"\baccount\s*\(", query):
        return "account"
    return "other"


def field_args(query: str, name: str) -> tuple[dict[str, str], list[str]]:
    """The raw arguments and the top-level selected names of field ``name``."""
    m = re.search(rf"\b{name}\b\s*", query)
    if m is None:
        raise Invalid(f'Cannot query field "{name}".')
    pos, args = m.end(), ""
    if query.startswith("(", pos):
        close = query.find(")", pos)
        if close < 0:
            raise Invalid("Syntax Error: Expected Name, found <EOF>.")
        args, pos = query[pos + 1 : close], close + 1
    names: list[str] = []
    depth = 0
    for tok in NAME_TOKEN.finditer(query, pos):
        t = tok.group()
        if t in ("{", "("):
            depth += 1
        elif t in ("}", ")"):
            depth -= 1
            if depth <= 0:
                break
        elif depth == 1:
            names.append(t)
        elif depth == 0:
            break
    return dict(_ARG.findall(args)), names


def value(raw: str | None, variables: dict[str, Any]) -> Any:
    if raw is None or raw == "null":
        return None
    if raw.startswith("$"):
        return variables.get(raw[1:])
    if raw.startswith('"'):
        return json.loads(raw)
    if raw.startswith("{"):
        return {k: value(v, variables) for k, v in _ARG.findall(raw[1:-1])}
    return raw


def parse_datetime(name: str, value: Any) -> float:
    try:
        text = str(value).strip()
        ts = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except (ValueError, IndexError):
        raise Invalid(
            f'Variable "${name}" got invalid value {json.dumps(value)}; '
            "DateTime cannot represent value."
        ) from None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def prune(obj: Any, names: set[str]) -> Any:
    """Keep only fields named somewhere in the query (good enough for the account query)."""
    if isinstance(obj, dict):
        return {k: prune(v, names) for k, v in obj.items() if k in names}
    if isinstance(obj, list):
        return [prune(v, names) for v in obj]
    return obj


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_answer(status: int, payload: Any) -> SimResponse:
    return SimResponse(status, json.dumps(payload, separators=(",", ":")).encode())


def html_answer(status: int, title: str) -> SimResponse:
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
    return SimResponse(status, body.encode(), "text/html")


def invalid_error(message: str) -> dict[str, Any]:
    """The body of a schema validation failure (HTTP 400)."""
    return {
        "message": message,
        "extensions": {
            "errorType": "VALIDATION",
            "errorCode": None,
            "errorDescription": message,
        },
    }


def error_answer(field: str | None, err: GraphQLError) -> SimResponse:
    """A Kraken error on ``field``: HTTP 200, ``errors[]`` and ``data: {field: null}``."""
    error: dict[str, Any] = {
        "message": err.message,
        "extensions": {
            "errorType": err.error_type,
            "errorCode": err.code,
            "errorDescription": err.description,
            "errorClass": err.error_type,
        },
    }
    if field:
        error["path"] = [field]
    return json_answer(200, {"errors": [error], "data": {field: None} if field else None})
