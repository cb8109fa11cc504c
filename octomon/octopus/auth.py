"""Kraken tokens (SPEC §4.2): obtained with the API key, renewed early with the refresh
token, and renewed once when the API refuses the one held.

``obtainKrakenToken`` gives a token valid about an hour and a refresh token valid 7 days.
The token is renewed 5 minutes before it expires, with the refresh token while that is
valid, else (or when it is refused) with the API key. An expired-token error renews and
retries once; a refused token (revoked, garbled) is renewed with the API key itself, so that
only a key that is really refused ends as ``AuthError``. Every token is registered with
:mod:`octomon.redact` the moment it is known.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from octomon import redact
from octomon.clock import Clock
from octomon.errors import AuthError, OctopusUnavailable, TokenExpired

log = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(minutes=5)
TOKEN_LIFETIME = timedelta(minutes=60)  # when neither the answer nor the token says

TOKEN_QUERY = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}
"""

# Sends TOKEN_QUERY (unauthenticated) with these variables; the answer's ``data``.
Obtain = Callable[[Mapping[str, Any]], dict[str, Any]]
_T = TypeVar("_T")


def _unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc)


def _jwt_exp(token: str) -> Any:
    """``exp`` from the token's own payload (used when ``payload`` is missing)."""
    try:
        part = token.split(".")[1]
        obj = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    return obj.get("exp") if isinstance(obj, dict) else None


class Tokens:
    """One account's tokens. ``refresh_token``/``refresh_expires_at`` may change after any
    call (the monitor keeps them in ``state.json``)."""

    def __init__(
        self,
        api_key: str,
        obtain: Obtain,
        clock: Clock,
        refresh_token: str | None = None,
        refresh_expires_at: datetime | None = None,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.refresh_token = refresh_token
        self.refresh_expires_at = refresh_expires_at
        self.token: str | None = None
        self.expires_at: datetime | None = None
        self._obtain_with = obtain
        redact.register(api_key)
        redact.register(refresh_token)

    def renewal_due(self, within: timedelta = timedelta(0)) -> bool:
        """Is the token held still valid, but due for its early renewal now or within
        ``within``? (False before the first token, and once it has expired: the next call
        renews it then anyway.)"""
        if self.token is None or self.expires_at is None:
            return False
        now = self.clock()
        return self.expires_at - RENEW_BEFORE <= now + within and now < self.expires_at

    def renew(self) -> None:
        """Renew the token now (one request: the refresh token, else the API key)."""
        self.token = None
        self.current()

    def current(self) -> str:
        """A token valid for more than ``RENEW_BEFORE``, obtained first when needed."""
        now = self.clock()
        if (
            self.token is not None
            and self.expires_at is not None
            and now < self.expires_at - RENEW_BEFORE
        ):
            return self.token
        self.token = None
        if self.refresh_token and (
            self.refresh_expires_at is None or now < self.refresh_expires_at - RENEW_BEFORE
        ):
            try:
                return self._obtain({"refreshToken": self.refresh_token})
            except AuthError as exc:
                log.info("the refresh token was refused (%s); using the API key", exc.message)
        elif self.refresh_token:
            log.debug("the refresh token has expired; using the API key")
        self.refresh_token = None
        self.refresh_expires_at = None
        return self._obtain({"APIKey": self.api_key})

    def authorized(self, send: Callable[[str], _T]) -> _T:
        """``send(token)``, retried once with a new token if its token is refused.

        Expired (KT-CT-1124/1120): renew as usual. Refused by an auth code (a revoked or
        garbled token): renew with the API key itself -- never a daemon stopped by one bad
        token.
        """
        token = self.current()  # a key refused here is refused: no retry in a tight loop
        try:
            return send(token)
        except TokenExpired:
            log.info("the Kraken token expired early; renewing it and retrying once")
        except AuthError as exc:
            log.warning(
                "the Kraken token was refused (%s); obtaining a new one with the API key", exc
            )
            self.refresh_token = None
            self.refresh_expires_at = None
        self.token = None
        self.expires_at = None
        return send(self.current())

    def _obtain(self, given: dict[str, str]) -> str:
        data = self._obtain_with({"input": given})
        result = data.get("obtainKrakenToken")
        token = result.get("token") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(token, str) or not token:
            raise OctopusUnavailable("the Octopus API sent no token")
        redact.register(token)
        now = self.clock()
        payload = result.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = None
        exp = payload.get("exp") if isinstance(payload, dict) else None
        expires = _unix(exp) or _unix(_jwt_exp(token)) or now + TOKEN_LIFETIME
        refresh = result.get("refreshToken")
        if isinstance(refresh, str) and refresh:
            redact.register(refresh)
            self.refresh_token = refresh
            refresh_exp = _unix(result.get("refreshExpiresIn"))
            if refresh_exp is not None and refresh_exp.year < 2000:
                # A duration after all, not the Unix time the API documents.
                refresh_exp = now + (refresh_exp - datetime(1970, 1, 1, tzinfo=timezone.utc))
            self.refresh_expires_at = refresh_exp
        self.token = token
        self.expires_at = expires
        log.debug("Kraken token obtained, valid until %s", expires.isoformat())
        return token
