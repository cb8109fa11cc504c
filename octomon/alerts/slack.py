"""Slack incoming webhooks: posting, 429 handling, and the background sender.

The message itself (Block Kit) is laid out by :mod:`octomon.alerts.blocks`.

Alerting must never block or crash data collection (SPEC §4.6): :meth:`SlackNotifier.send`
never raises and returns a :class:`SendResult`; :class:`Alerter` logs every alert at once
and posts to Slack from a daemon thread, so the monitor pays only a queue put.

The webhook's path is the secret: it never appears in a reason, a log line or an
exception; the webhook is shown as its scheme and host only (``redact.mask_url``).
``requests`` is imported inside the functions that post.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octomon import __version__, redact
from octomon.alerts.blocks import build_payload
from octomon.alerts.messages import Alert, Level
from octomon.clock import utcnow
from octomon.errors import SlackError

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger("octomon.alerts.slack")
alert_log = logging.getLogger("octomon.alerts")

_LOG_LEVELS = {Level.INFO: logging.INFO, Level.WARNING: logging.WARNING, Level.ERROR: logging.ERROR}

_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # Slack's answers: ok, channel_not_found, …

HINTS = {
    "invalid_payload": "Slack could not read the message; please report this octomon bug",
    "invalid_blocks": "Slack refused the message layout; please report this octomon bug",
    "no_text": "Slack refused an empty message; please report this octomon bug",
    "invalid_token": "the webhook is no longer valid: create a new one and set SLACK_WEBHOOK_URL",
    "action_prohibited": "a Slack admin restricted this webhook: ask them, or use another one",
    "no_service": "the webhook was removed or revoked: create a new one and set SLACK_WEBHOOK_URL",
    "no_team": "the Slack workspace was not found: check SLACK_WEBHOOK_URL",
    "team_disabled": "the Slack workspace is disabled",
    "channel_not_found": "the webhook's channel was deleted: create a webhook for another channel",
    "channel_is_archived": "the webhook's channel is archived: unarchive it or make a new webhook",
    "posting_to_general_channel_denied": "only admins may post to this channel: pick another",
    "rate_limited": "Slack is rate-limiting this webhook: try again in a minute",
}


@dataclass(frozen=True)
class SendResult:
    ok: bool
    reason: str | None  # Slack's answer (``channel_not_found``) or what went wrong; no secret
    status: int | None  # the HTTP status, None when there was no answer

    def describe(self) -> str:
        """``channel_not_found (HTTP 404)`` / ``timeout after 5 s``."""
        if self.ok:
            return "ok"
        reason = self.reason or "failed"
        if self.status is not None and f"HTTP {self.status}" not in reason:
            return f"{reason} (HTTP {self.status})"
        return reason

    def hint(self) -> str:
        if self.reason in HINTS:
            return HINTS[self.reason]
        if self.status is not None and self.status >= 500:
            return "Slack is having trouble: try again later (https://slack-status.com)"
        if self.status == 403:
            return "the webhook may not post here: check the Slack app's permissions"
        if self.status == 404:
            return "the webhook was not found: check SLACK_WEBHOOK_URL or create a new one"
        if self.status is None:
            return "check network access to Slack and SLACK_WEBHOOK_URL"
        return "check SLACK_WEBHOOK_URL"


# --- posting ----------------------------------------------------------------------------


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0  # an HTTP date, or garbage: a short pause is still polite


def _connection_reason(exc: BaseException) -> str:
    """What failed, built from exception types only: requests' messages carry the URL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name not found"
        name = type(current).__name__
        if name == "NameResolutionError":
            return "host name not found"
        if "SSL" in name:
            return "TLS error"
        if isinstance(current, ConnectionResetError):
            return "connection reset"
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        if nxt is None:
            reason = getattr(current, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        current = nxt
    return "connection failed"


class SlackNotifier:
    """Posts to one incoming webhook. :meth:`send` never raises."""

    def __init__(
        self,
        webhook_url: str,
        *,
        host: str | None = None,
        timeout: float = 5.0,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        redact.register_url(webhook_url)
        self._url = webhook_url
        self.masked_url = redact.mask_url(webhook_url)
        self.host = host or socket.gethostname()
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self._sleep = sleep or time.sleep
        # A monotonic time after which nothing may start (set by Alerter.close()).
        self.deadline: float | None = None
        self._session: Any = None

    def send(self, alert: Alert) -> SendResult:
        try:
            payload = build_payload(alert, self.host)
        except Exception as exc:  # a malformed alert must not take the sender down
            return SendResult(False, f"cannot build the message ({type(exc).__name__})", None)
        return self.post(payload)

    def post(self, payload: dict[str, Any]) -> SendResult:
        """Post once; on 429 wait ``Retry-After`` (capped) and post once more."""
        try:
            result, retry_after = self._post_once(payload)
            if result.status != 429:
                return result
            wait = min(retry_after, self.max_retry_after)
            left = self._time_left()
            if left is not None and wait >= left:
                return result
            self._sleep(wait)
            if self._time_left() == 0:
                return result
            return self._post_once(payload)[0]
        except Exception as exc:  # never raise into the caller, whatever happens
            log.debug(
                "Slack post to %s failed unexpectedly: %s", self.masked_url, type(exc).__name__
            )
            return SendResult(False, f"unexpected {type(exc).__name__}", None)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def _post_once(self, payload: dict[str, Any]) -> tuple[SendResult, float]:
        import requests

        timeout = self.timeout
        left = self._time_left()
        if left is not None:
            if left <= 0:
                return SendResult(False, "not sent: shutting down", None), 0.0
            timeout = min(timeout, left)
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(
                self._url,
                json=payload,
                timeout=timeout,
                allow_redirects=False,
                headers={"User-Agent": f"octomon/{__version__}"},
            )
        except requests.Timeout:
            return SendResult(False, f"timeout after {timeout:.3g} s", None), 0.0
        except requests.exceptions.InvalidURL:
            return SendResult(False, "invalid webhook URL", None), 0.0
        except requests.RequestException as exc:
            return SendResult(False, _connection_reason(exc), None), 0.0
        status = response.status_code
        body = response.text.strip()
        response.close()
        token = body if _TOKEN.match(body) else None
        if 200 <= status < 300:
            # Slack says "ok"; Slack-compatible servers (Mattermost …) may say less.
            return SendResult(True, None, status), 0.0
        if status == 429:
            return (
                SendResult(False, token or "rate_limited", status),
                _retry_after(response.headers.get("Retry-After")),
            )
        if token is None:
            token = "server error" if status >= 500 else f"HTTP {status}"
        return SendResult(False, token, status), 0.0


def send_test(settings: Settings) -> None:
    """``octomon test-slack``: a clearly labelled test message; SlackError on failure."""
    url = settings.slack_webhook_url
    if not url:
        raise SlackError("SLACK_WEBHOOK_URL is not set", "set it to your incoming webhook URL")
    notifier = SlackNotifier(url)
    alert = Alert(
        Level.INFO,
        "octomon test message",
        "This is a test from `octomon test-slack`. If you can read it, octomon's alerts "
        "will arrive in this channel. No action needed.",
        "test-slack",
        {"webhook": notifier.masked_url},
        utcnow(),
        "test",
    )
    try:
        result = notifier.send(alert)
    finally:
        notifier.close()
    if not result.ok:
        raise SlackError(
            f"Slack did not accept the test message via {notifier.masked_url}: {result.describe()}",
            result.hint(),
        )


# --- the background sender --------------------------------------------------------------

_STOP = object()
_GRACE = 0.25  # for a sender cut off at the deadline to notice it and finish


class Alerter:
    """What the monitor uses: every alert is logged at once, and posted from a daemon thread.

    :meth:`emit` never blocks on Slack (it only puts on a queue). The sender spaces posts
    ``min_interval`` apart (Slack allows about one a second per webhook), logs a failed
    post at WARNING with the webhook's host only, and carries on.
    """

    def __init__(
        self,
        webhook_url: str | None,
        *,
        host: str | None = None,
        min_interval: float = 1.0,
        max_queue: int = 100,
        timeout: float = 5.0,
        max_retry_after: float = 10.0,
    ) -> None:
        self.last: Alert | None = None
        self.min_interval = min_interval
        self.max_queue = max_queue
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.notifier: SlackNotifier | None = None
        if webhook_url:
            self.notifier = SlackNotifier(
                webhook_url,
                host=host,
                timeout=timeout,
                max_retry_after=max_retry_after,
                sleep=self._sleep,
            )
            self._thread = threading.Thread(target=self._run, name="octomon-slack", daemon=True)
            self._thread.start()

    @property
    def slack_enabled(self) -> bool:
        return self.notifier is not None

    def describe(self) -> str:
        """Where alerts go, for the start-up line."""
        if self.notifier is None:
            return "alerts go to the log only (SLACK_WEBHOOK_URL is not set)"
        return f"alerts go to the log and to Slack ({self.notifier.masked_url})"

    def emit(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            alert_log.log(_LOG_LEVELS[alert.level], "alert: %s", alert.summary())
            self.last = alert
            if self.notifier is None or self._closed:
                continue
            if self._queue.qsize() >= self.max_queue:
                self.dropped += 1
                log.warning("Slack queue full (%d): alert kept in the log only", self.max_queue)
                continue
            self._queue.put_nowait(alert)

    def close(self, timeout: float = 3.0) -> None:
        """Give queued messages at most ``timeout`` seconds, then return (SPEC §4.7).

        The sender stops itself at the deadline; one stuck in a post that began before
        ``close`` is abandoned (a daemon thread: it dies with the process). Either way
        every alert is already in the log.
        """
        if self._closed:
            return
        self._closed = True
        if self._thread is None or self.notifier is None:
            return
        self._deadline = time.monotonic() + timeout
        self.notifier.deadline = self._deadline
        self._queue.put_nowait(_STOP)
        self._wake.set()
        self._thread.join(timeout + _GRACE)
        if self._thread.is_alive():
            log.warning("Slack sender did not stop within %g s; its alerts are in the log", timeout)

    @property
    def sender_alive(self) -> bool:
        """Whether the background sender is still running (after close: abandoned)."""
        return self._thread is not None and self._thread.is_alive()

    def _sleep(self, seconds: float) -> None:
        """Wait, but no later than the close deadline (close() wakes us)."""
        end = time.monotonic() + seconds
        while True:
            limit = end if self._deadline is None else min(end, self._deadline)
            left = limit - time.monotonic()
            if left <= 0:
                return
            if self._wake.wait(left):
                self._wake.clear()

    def _run(self) -> None:
        notifier = self.notifier
        assert notifier is not None
        last_post = -float("inf")
        late = 0
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, Alert)
            try:
                self._sleep(last_post + self.min_interval - time.monotonic())
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    late += 1
                    continue
                last_post = time.monotonic()
                result = notifier.send(item)
                if result.ok:
                    self.sent += 1
                else:
                    self.failed += 1
                    log.warning(
                        "Slack did not take the alert %r via %s: %s",
                        item.title,
                        notifier.masked_url,
                        result.describe(),
                    )
            except Exception as exc:  # the sender must outlive anything
                self.failed += 1
                log.warning(
                    "Slack sender error via %s: %s", notifier.masked_url, type(exc).__name__
                )
                log.debug("Slack sender error", exc_info=True)
        if late:
            self.dropped += late
            log.warning("%d alert(s) not sent to Slack before shutdown; they are in the log", late)
        notifier.close()


__all__ = ["Alerter", "SendResult", "SlackNotifier", "build_payload", "send_test"]
