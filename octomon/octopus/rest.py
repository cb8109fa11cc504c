"""The Octopus REST client (OCTOPUS_REST.md): account, products, rates, settled consumption.

Every request goes through :meth:`RestClient._request` and the one transport
(:mod:`octomon.octopus.http`: a slot in the shared call ledger first -- SPEC §4.3/§4.9, REST
calls count like GraphQL ones --, a 10 s timeout, 429/5xx), with HTTP Basic (the API key as
the user, an empty password); the answer is mapped onto :mod:`octomon.errors`:

=========================================  ==========================================
401, or 403 with a JSON ``detail``          ``AuthError`` (the key, or the account, refused)
404                                         ``NotFound``
429                                         ``RateLimited`` (the shared backoff of §4.3)
5xx, timeouts, connection errors            ``OctopusUnavailable`` (octomon retries)
403 or 200 whose body is not JSON           ``OctopusUnavailable`` (the CDN's HTML page)
400 and any other 4xx                       ``ApiError`` with the server's ``detail``
=========================================  ==========================================

Messages never carry the key: requests' own exception texts hold URLs, so they are not
passed on (only the kind of failure is), and what the server said is scrubbed.
``requests`` is imported when a client is built, so importing this module is cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

from octomon import redact
from octomon.clock import Clock, utcnow
from octomon.errors import ApiError, AuthError, NotFound, OctopusUnavailable
from octomon.octopus.budget import Budget
from octomon.octopus.http import (
    ACCOUNT_HINT,
    KEY_HINT,
    MAX_TIMEOUT,
    RETRY_HINT,
    Transport,
    server_text,
)

if TYPE_CHECKING:
    import requests

    from octomon.config import Settings

log = logging.getLogger(__name__)

MAX_PAGES = 1000  # a guard against a server whose `next` never ends

Params = dict[str, str | int]


class RestClient:
    """One API key's session with the REST API. Not thread-safe: one user at a time."""

    @classmethod
    def from_settings(cls, settings: Settings, budget: Budget, clock: Clock = utcnow) -> RestClient:
        """The account's client: OCTOPUS_API_KEY on OCTOPUS_REST_URL, in ``budget``'s ledger."""
        return cls(
            api_key=settings.octopus_api_key or "",
            base_url=settings.octopus_rest_url,
            budget=budget,
            clock=clock,
        )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        budget: Budget,
        clock: Clock = utcnow,
        timeout: float = MAX_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.budget = budget
        self.clock = clock
        self.http = Transport(self.base_url, budget, clock, timeout, session)
        self.http.session.auth = (api_key, "")
        self._host = self.http.host
        redact.register(api_key)

    @property
    def calls(self) -> int:
        """Requests sent by this client (the commands report it)."""
        return self.http.calls

    @property
    def timeout(self) -> float:
        return self.http.timeout

    # --- public API ----------------------------------------------------------------------

    def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        """One GET of ``path`` (relative to OCTOPUS_REST_URL); the decoded JSON object."""
        return self._request(urljoin(self.base_url, path.lstrip("/")), params)

    def get_all(self, path: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Every ``results`` row of a list endpoint, following ``next`` until it is null.

        Each page is its own request (and ledger entry). The page number is taken from
        ``next`` and our own parameters are sent again with it (OCTOPUS_REST.md §0: it is
        not known whether ``next`` carries the filters), to our own base URL.
        """
        url = urljoin(self.base_url, path.lstrip("/"))
        query: Params = dict(params or {})
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self._request(url, query)
            results = body.get("results")
            if not isinstance(results, list):
                raise OctopusUnavailable(
                    f"the Octopus API ({self._host}) sent a list without results", RETRY_HINT
                )
            rows.extend(r for r in results if isinstance(r, dict))
            page = _next_page(body.get("next"))
            if page is None or page in seen:
                return rows
            seen.add(page)
            query = {**query, "page": page}
        raise OctopusUnavailable(
            f"the Octopus API ({self._host}) sent more than {MAX_PAGES} pages", RETRY_HINT
        )

    def account(self, number: str) -> dict[str, Any]:
        """``GET accounts/{number}/``: properties, meter points and agreements."""
        try:
            return self.get(f"accounts/{number}/")
        except NotFound:
            raise NotFound(
                f"account {number} was not found by the Octopus API", ACCOUNT_HINT
            ) from None

    def close(self) -> None:
        self.http.close()

    # --- the one HTTP helper ---------------------------------------------------------------

    def _request(self, url: str, params: Params | None) -> dict[str, Any]:
        path = urlsplit(url).path
        status, body = self.http.send(
            "GET", url, f"GET {path}", params=params, headers={"Accept": "application/json"}
        )
        if status == 200:
            if not isinstance(body, dict):
                raise self.http.not_json("JSON")
            self.budget.clear_backoff()
            return body
        detail = _detail(body)
        said = f": {detail}" if detail else ""
        if status == 401 or (status == 403 and isinstance(body, dict)):
            hint = ACCOUNT_HINT if "permission" in detail else KEY_HINT
            raise AuthError(f"the Octopus API refused the key (HTTP {status}{said})", hint)
        if status == 403:
            raise OctopusUnavailable(
                f"the Octopus API ({self._host}) answered HTTP 403 with a page that is not "
                "the API's (its CDN)",
                RETRY_HINT,
            )
        if status == 404:
            raise NotFound(f"not found by the Octopus API: {path}")
        refused = self.http.refused(status)
        if refused is not None:
            raise refused
        raise ApiError(None, f"the Octopus API answered HTTP {status} for {path}{said}")


def _detail(body: Any) -> str:
    """The server's ``detail`` text (scrubbed, one line, bounded), or ""."""
    if not isinstance(body, dict):
        return ""
    text = body.get("detail")
    return server_text(text) if isinstance(text, str) else ""


def _next_page(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    pages = parse_qs(urlsplit(value).query).get("page")
    return pages[0] if pages else None
