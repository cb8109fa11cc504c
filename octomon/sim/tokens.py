"""The simulator's Kraken tokens: ``obtainKrakenToken`` and the ``Authorization`` check.

An access token lives 60 min of sim clock; a refresh token 7 days (refreshing does not
extend it, and returns the same refresh token). Tokens are HS256 JWTs signed with a secret
derived from the seed, so a run is reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from octomon.sim.household import _DAY
from octomon.sim.protocol import GraphQLError, Invalid, b64, value

TOKEN_LIFETIME = 3600
REFRESH_LIFETIME = 7 * _DAY
_ISSUER = "https://api.octopus.energy/v1/graphql/"


class Tokens:
    """The tokens issued for one account (called under the simulator's lock)."""

    def __init__(self, seed: int, api_key: str) -> None:
        self.api_key = api_key
        self.access: dict[str, int] = {}  # access token -> exp (Unix seconds)
        self.refresh: dict[str, int] = {}  # refresh token -> expiry
        self._secret = hashlib.sha256(f"octomon.sim:{seed}:jwt".encode()).digest()
        self._issued = 0

    def authorise(self, header: str | None, now: float) -> None:
        if not header or not header.strip():
            raise GraphQLError("KT-CT-1112")
        token = header.strip()
        if token[:4].upper() == "JWT ":
            token = token[4:].strip()
        exp = self.access.get(token)
        if exp is None:
            raise GraphQLError("KT-CT-1111")
        if exp <= now:
            raise GraphQLError("KT-CT-1124")

    def obtain(
        self, args: dict[str, str], selection: list[str], variables: dict[str, Any], now: int
    ) -> dict[str, Any]:
        """The ``obtainKrakenToken`` answer for the API key or a refresh token."""
        given = value(args.get("input"), variables)
        if not isinstance(given, dict):
            raise Invalid(
                'Argument "input" of required type "ObtainJSONWebTokenInput!" was not provided.'
            )
        if given.get("APIKey") is not None:
            if not hmac.compare_digest(str(given["APIKey"]), self.api_key):
                raise GraphQLError("KT-CT-1139")
            self._issued += 1
            refresh = hashlib.sha256(self._secret + f"refresh:{self._issued}".encode()).hexdigest()
            self.refresh[refresh] = now + REFRESH_LIFETIME
            grant = "API_KEY"
        else:
            refresh = str(given.get("refreshToken") or "")
            if self.refresh.get(refresh, 0) <= now:
                raise GraphQLError("KT-CT-1135")
            grant = "REFRESH_TOKEN"
        self._issued += 1
        payload = {
            "sub": "kraken|account-user:5151",
            "gty": grant,
            "tokenUse": "access",
            "iss": _ISSUER,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "origIat": now,
            "jti": self._issued,
        }
        head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
        token = head + "." + b64(hmac.new(self._secret, head.encode(), "sha256").digest())
        self.access = {t: e for t, e in self.access.items() if e > now - REFRESH_LIFETIME}
        self.access[token] = now + TOKEN_LIFETIME
        result = {
            "token": token,
            "refreshToken": refresh,
            "refreshExpiresIn": self.refresh[refresh],
            "payload": payload,
        }
        return {k: v for k, v in result.items() if k in selection} if selection else result
