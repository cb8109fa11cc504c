"""The one HTTP transport to Octopus, under both the GraphQL and the REST client.

Every request, whatever it asks, goes through :meth:`Transport.send`: a slot in the call
ledger first (SPEC §4.3, §4.9: GraphQL and REST count alike), then the request with a
timeout of at most 10 s and TLS verification on, then the answer decoded. What is the same
for both APIs is mapped here, onto the typed errors of :mod:`octomon.errors`:

=========================================  ==========================================
timeouts, connection and TLS failures       ``OctopusUnavailable`` (octomon retries)
HTTP 429                                    ``RateLimited`` (the shared backoff of §4.3)
HTTP 5xx                                    ``OctopusUnavailable``
=========================================  ==========================================

Each client maps the rest (GraphQL ``errors[]``; REST 401/403/404). Messages never carry a
secret (SPEC §5): ``requests`` puts URLs in its exception texts, so only the kind of a
failure is passed on; a REST answer's ``detail`` is scrubbed (:func:`server_text`).

``requests`` is imported when a transport is built, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from octomon import redact
from octomon.clock import Clock
from octomon.errors import OctopusError, OctopusUnavailable, RateLimited

if TYPE_CHECKING:
    import requests

    from octomon.octopus.budget import Budget

log = logging.getLogger(__name__)

MAX_TIMEOUT = 10.0
RETRY_HINT = "usually transient; octomon retries"
NETWORK_HINT = "check the network connection; octomon retries"
LIMIT_HINT = (
    "the limit (about 100 calls an hour) is shared with the Octopus app and other integrations"
)
KEY_HINT = "check OCTOPUS_API_KEY (Octopus account > Personal details > API access)"
ACCOUNT_HINT = "check OCTOPUS_ACCOUNT_NUMBER (A-XXXXXXXX, shown at the top of your account)"


class Answer(NamedTuple):
    status: int
    body: Any  # the decoded JSON, or None when the body is not JSON


class Transport:
    """One session with one Octopus host. Not thread-safe: one user at a time."""

    def __init__(
        self,
        url: str,
        budget: Budget,
        clock: Clock,
        timeout: float = MAX_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.budget = budget
        self.clock = clock
        self.timeout = min(max(timeout, 0.1), MAX_TIMEOUT)
        self.host = urlsplit(url).hostname or "the Octopus API"
        self.calls = 0  # requests sent (the commands report it)
        self._own_session = session is None
        if session is None:
            import requests

            session = requests.Session()
        self.session = session

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> Answer:
        """THE one HTTP request: a budget slot, then the request; ``what`` names it in the
        DEBUG log. Raises what the ledger raises, or ``OctopusUnavailable`` without an answer."""
        import requests

        self.budget.reserve(self.clock())
        self.calls += 1
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, timeout=self.timeout, verify=True, **kwargs
            )
        except requests.Timeout:
            log.debug("octopus %s: timed out after %.1f s", what, time.monotonic() - started)
            raise OctopusUnavailable(
                f"the Octopus API ({self.host}) did not answer within {self.timeout:g} s",
                RETRY_HINT,
            ) from None
        except requests.RequestException as exc:
            log.debug("octopus %s: %s", what, type(exc).__name__)
            raise OctopusUnavailable(
                f"could not reach the Octopus API ({self.host}): {_reason(exc)}", NETWORK_HINT
            ) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        elapsed = (time.monotonic() - started) * 1000
        log.debug("octopus %s: HTTP %d in %.0f ms", what, response.status_code, elapsed)
        return Answer(response.status_code, body)

    def rate_limited(self, code: str | None = None) -> RateLimited:
        """A rate-limit answer (HTTP 429, or Kraken's ``code``): the shared backoff starts
        or doubles (SPEC §4.3)."""
        seconds = self.budget.rate_limited(self.clock())
        said = f" ({code})" if code else " (HTTP 429)"
        return RateLimited(
            f"the Octopus API rate limit was hit{said}; backing off {seconds:.0f} s",
            LIMIT_HINT,
            retry_in=seconds,
        )

    def refused(self, status: int) -> OctopusError | None:
        """The error every Octopus API means by ``status`` (429, 5xx), else None."""
        if status == 429:
            return self.rate_limited()
        if status >= 500:
            return OctopusUnavailable(f"the Octopus API answered HTTP {status}", RETRY_HINT)
        return None

    def not_json(self, what: str) -> OctopusUnavailable:
        """A 200 whose body is not what the API sends (a CDN's page, a proxy's)."""
        return OctopusUnavailable(
            f"the Octopus API ({self.host}) sent an answer that is not {what}", RETRY_HINT
        )

    def close(self) -> None:
        if self._own_session:
            self.session.close()


def server_text(text: str, limit: int = 200) -> str:
    """What a server said, fit to keep: one line, bounded, every known secret masked."""
    return redact.scrub(" ".join(text.split()))[:limit]


def _reason(exc: Exception) -> str:
    """A short cause for a transport failure, without the URL requests puts in messages."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__
