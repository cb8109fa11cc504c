"""The InfluxDB sink: the v2 write API over one keep-alive HTTP connection.

Every answer and every connection failure is classified in one place,
:func:`classify` / :func:`_unreachable`, following SPEC §4.4: *unavailable* (keep the
readings cached, retry; carries ``Retry-After``), *configuration* (401/403/404: token, org
or bucket) and *refused* (400/413/422: the data itself).

The transport is the standard library's ``http.client`` rather than influxdb-client:
importing influxdb-client costs about 0.5 s here, a quarter of the whole time a 500,000
reading ``sync-cache`` takes (SPEC §7 measures the command as a whole process), and the
write API is one POST of line protocol. Writes are synchronous by construction (a write
returns only once the server answered), never batched in memory: the durable buffer is
octomon's own cache. Messages never contain the token (nor a password in the URL).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from octomon import __version__, redact
from octomon.errors import (
    ConfigError,
    InfluxConfigError,
    InfluxError,
    InfluxRefused,
    InfluxUnavailable,
)
from octomon.readings import Reading

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # readings per write request
TEST_MEASUREMENT = "octomon_test"
_MAX_BODY = 64 * 1024  # of an error answer, kept for its message


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def text(self, limit: int = 300) -> str:
        """The server's message: InfluxDB's JSON ``message``, else the body's start."""
        raw = self.body.decode("utf-8", "replace").strip()
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("message"), str):
            raw = obj["message"]
        raw = " ".join(raw.split())
        return raw if len(raw) <= limit else raw[: limit - 1] + "…"

    def influx_json(self) -> dict[str, object] | None:
        try:
            obj = json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(answer: Answer, where: str, *, bucket: str = "", org: str = "") -> InfluxError | None:
    """THE mapping of an HTTP answer to an error (SPEC §4.4); ``None`` when it succeeded."""
    status = answer.status
    if 200 <= status < 300:
        return None
    message = answer.text()
    said = f": {message}" if message else ""
    if status in (400, 413, 422):
        return InfluxRefused(
            f"InfluxDB refused the data (HTTP {status}){said}", status, message or answer.reason
        )
    if status == 401:
        return InfluxConfigError(
            f"InfluxDB refused the token (HTTP 401){said}", cause="token", status=status
        )
    if status == 403:
        return InfluxConfigError(
            f"the token is not allowed to write to bucket {bucket!r} (HTTP 403){said}",
            cause="token",
            status=status,
        )
    if status == 404:
        if "org" in message.lower() and "bucket" not in message.lower():
            return InfluxConfigError(
                f"InfluxDB does not know the organisation {org!r} (HTTP 404){said}",
                cause="org",
                status=status,
            )
        hint = "" if answer.influx_json() else " (is INFLUXDB_URL the server's base URL?)"
        return InfluxConfigError(
            f"{where} has no bucket {bucket!r} (HTTP 404){said}{hint}",
            cause="bucket",
            status=status,
        )
    if status == 429 or status >= 500 or status == 408:
        wait = retry_after(answer.headers.get("retry-after"))
        after = f"; retry after {wait:.0f} s" if wait is not None else ""
        return InfluxUnavailable(
            f"InfluxDB is unavailable (HTTP {status} {answer.reason}){said}{after}",
            retry_after=wait,
        )
    # Anything else (a redirect, 405, …) is not InfluxDB's write API answering: keep the
    # readings cached and retry, with a message that says what came back.
    target = _safe_url(answer.headers.get("location", ""))
    where_to = f" to {target}" if 300 <= status < 400 and target else ""
    return InfluxUnavailable(
        f"{where} answered HTTP {status} {answer.reason}{where_to}{said} "
        "(is INFLUXDB_URL the InfluxDB base URL?)"
    )


def _unreachable(exc: BaseException, where: str) -> InfluxError:
    """THE mapping of a connection failure (no HTTP answer) to an error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return InfluxUnavailable(
            f"the TLS certificate of {where} could not be verified ({exc.verify_message})",
            hint="check INFLUXDB_URL and the server's certificate",
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        why = "timed out"
    elif isinstance(exc, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(exc, socket.gaierror):
        why = "host name could not be resolved"
    elif isinstance(exc, http.client.RemoteDisconnected):
        why = "the server closed the connection without answering"
    elif isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror.lower()
    else:
        why = type(exc).__name__
    return InfluxUnavailable(f"cannot reach InfluxDB at {where}: {why}")


def _safe_url(url: str) -> str:
    """scheme://host[:port]/path without user, password or query (for messages)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}"


_WRITE_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass
class _Exchange:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    reused: bool = False


def _stale(exc: BaseException) -> bool:
    """The failure of a reused keep-alive connection that the server had closed."""
    return isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)


class PendingWrite:
    """A write request on the wire; :meth:`result` reads and classifies the answer."""

    def __init__(self, sink: InfluxSink, exchange: _Exchange, count: int) -> None:
        self._sink = sink
        self._exchange: _Exchange | None = exchange
        self.count = count

    def result(self) -> None:
        exchange, self._exchange = self._exchange, None
        if exchange is None:
            raise RuntimeError("the answer of this write was already read")
        sink = self._sink
        try:
            answer = sink._finish(exchange)
        finally:
            sink._lock.release()
        error = classify(answer, sink.where, bucket=sink.bucket, org=sink.org)
        if error is not None:
            log.debug("write of %d points failed: %s", self.count, error.message)
            raise error
        log.debug("wrote %d points", self.count)

    def abandon(self) -> None:
        """Give up on the answer (the connection is closed); the data may have been taken."""
        if self._exchange is not None:
            self._exchange = None
            self._sink._drop()
            self._sink._lock.release()


class InfluxSink:
    """Synchronous writes of line protocol (second precision) to ``/api/v2/write``.

    One connection, reused; a request on a reused connection that the server had
    closed is sent once more on a new one. Thread-safe (one request at a time).
    """

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError([f"INFLUXDB_URL={_safe_url(url)!r}: must be an http(s) URL"])
        self.url = url
        self.org = org
        self.bucket = bucket
        self.timeout = timeout
        self.where = _safe_url(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        redact.register(token)
        self._auth = {"Authorization": f"Token {token}"}
        self._write_path = f"{self._base}/api/v2/write?" + urlencode(
            {"org": org, "bucket": bucket, "precision": "s"}, quote_via=quote
        )
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxSink:
        if not settings.influxdb_url:
            raise ConfigError(["INFLUXDB_URL is required (this command talks to InfluxDB)"])
        return cls(
            settings.influxdb_url,
            settings.influxdb_token or "",
            settings.influxdb_org or "",
            settings.influxdb_bucket,
        )

    # --- writing ---------------------------------------------------------------------

    def write(self, readings: Sequence[Reading]) -> None:
        """One request per 5,000 readings; raises the classified error of the first failure."""
        for i in range(0, len(readings), MAX_BATCH):
            chunk = readings[i : i + MAX_BATCH]
            self.write_lines("\n".join(r.to_line_protocol() for r in chunk), len(chunk))

    def write_lines(self, body: str | bytes, count: int) -> None:
        """Post pre-built line protocol (second precision) holding ``count`` points."""
        if body:
            self.send(body, count).result()

    def send(self, body: str | bytes, count: int) -> PendingWrite:
        """Send a write and return before its answer is read (see :class:`PendingWrite`).

        The sink is held until ``result()`` (or ``abandon()``) is called: a sync prepares
        its next batch meanwhile, while the server digests this one.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        self._lock.acquire()
        try:
            exchange = self._start("POST", self._write_path, data, _WRITE_HEADERS, True)
        except BaseException:
            self._lock.release()
            raise
        return PendingWrite(self, exchange, count)

    # --- checks ----------------------------------------------------------------------

    def ping(self) -> None:
        """Reachable: ``/ping`` answers 2xx (or 401/403 where even ping needs a token)."""
        answer = self._request("GET", f"{self._base}/ping", None, {}, auth=False)
        if 200 <= answer.status < 300 or answer.status in (401, 403):
            return
        if answer.status >= 500 or answer.status == 429:
            error = classify(answer, self.where)
            assert error is not None
            raise error
        raise InfluxUnavailable(
            f"{self.where} answered HTTP {answer.status} {answer.reason} to /ping: "
            "it does not look like InfluxDB",
            hint="check INFLUXDB_URL (the server's base URL, e.g. http://host:8086)",
        )

    def verify(self) -> bool:
        """Token, org and bucket through ``/api/v2/buckets``.

        ``True`` when verified; ``False`` when this server cannot tell (no such endpoint,
        as on VictoriaMetrics or InfluxDB 1.8, or a write-only token); raises
        :class:`InfluxConfigError` naming the token, the org or the bucket.
        """
        query = urlencode({"name": self.bucket, "org": self.org}, quote_via=quote)
        answer = self._request("GET", f"{self._base}/api/v2/buckets?{query}", None, {})
        found = answer.influx_json() if answer.status == 200 else None
        listed = found.get("buckets") if found is not None else None
        if isinstance(listed, list):
            names = [b.get("name") for b in listed if isinstance(b, dict)]
            if self.bucket in names:
                return True
            raise InfluxConfigError(
                f"InfluxDB has no bucket {self.bucket!r} in organisation {self.org!r}",
                cause="bucket",
                status=404,
            )
        if answer.status == 401:
            error = classify(answer, self.where)
            assert error is not None
            raise error
        if answer.status == 404 and answer.influx_json() is not None:
            lowered = answer.text().lower()
            if "org" in lowered:
                raise InfluxConfigError(
                    f"InfluxDB does not know the organisation {self.org!r} (HTTP 404): "
                    f"{answer.text()}",
                    cause="org",
                    status=404,
                )
            if "bucket" in lowered:
                raise InfluxConfigError(
                    f"InfluxDB has no bucket {self.bucket!r} (HTTP 404): {answer.text()}",
                    cause="bucket",
                    status=404,
                )
        if answer.status >= 500 or answer.status == 429:
            error = classify(answer, self.where)
            assert error is not None
            raise error
        return False

    # --- the one HTTP helper -----------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        auth: bool = True,
    ) -> Answer:
        with self._lock:
            return self._finish(self._start(method, path, body, headers, auth))

    def _start(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], auth: bool
    ) -> _Exchange:
        """Send a request (the lock is held); a closed keep-alive connection is renewed."""
        all_headers = {"User-Agent": f"octomon/{__version__}", **headers}
        if auth:
            all_headers.update(self._auth)
        exchange = _Exchange(method, path, body, all_headers)
        for attempt in (1, 2):
            exchange.reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                return exchange
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt == 1 and exchange.reused and _stale(exc):
                    continue
                raise self._failed(exc, method) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish(self, exchange: _Exchange) -> Answer:
        """Read the answer of the request in flight (the lock is held)."""
        for attempt in (1, 2):
            conn = self._conn
            try:
                if conn is None:
                    raise http.client.RemoteDisconnected("connection lost")
                response = conn.getresponse()
                error_answer = response.status >= 300
                data = response.read(_MAX_BODY) if error_answer else response.read()
                if (error_answer and not response.isclosed()) or response.will_close:
                    self._drop()  # an unread rest of an error body, or the server says so
                return Answer(
                    response.status,
                    response.reason,
                    {k.lower(): v for k, v in response.getheaders()},
                    data,
                )
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt == 1 and exchange.reused and _stale(exc):
                    log.debug("InfluxDB had closed the idle connection; sending again")
                    exchange.reused = False
                    self._conn = self._connect()
                    try:
                        self._conn.request(
                            exchange.method, exchange.path, exchange.body, exchange.headers
                        )
                    except (OSError, http.client.HTTPException) as again:
                        self._drop()
                        raise self._failed(again, exchange.method) from None
                    continue
                raise self._failed(exc, exchange.method) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed(self, exc: BaseException, method: str) -> InfluxError:
        error = _unreachable(exc, self.where)
        log.debug("%s %s failed: %s", method, self.where, error.message)
        return error

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- test-influx -----------------------------------------------------------------------


@dataclass(frozen=True)
class InfluxCheck:
    summary: str
    verified: bool
    wrote_point: bool


def check(settings: Settings, *, write_test_point: bool = False) -> InfluxCheck:
    """Reachability, then token/org/bucket; with ``write_test_point`` one real write.

    The test point goes to measurement ``octomon_test`` (never ``energy_consumption``).
    """
    sink = InfluxSink.from_settings(settings)
    try:
        sink.ping()
        verified = sink.verify()
        if verified:
            summary = (
                f"reachable; token, organisation {sink.org!r} and bucket {sink.bucket!r} verified"
            )
        else:
            summary = "reachable; org and bucket cannot be verified on this server"
        if write_test_point:
            now = int(time.time())
            sink.write_lines(f"{TEST_MEASUREMENT},source=octomon value=1 {now}", 1)
            summary += f"; wrote a test point ({TEST_MEASUREMENT}) to bucket {sink.bucket!r}"
        elif not verified:
            summary += " (--write-test-point proves that writing works)"
        return InfluxCheck(summary, verified, write_test_point)
    finally:
        sink.close()
