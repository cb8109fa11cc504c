"""The InfluxDB transport: influxdb-client's synchronous write API (the connection test's
ping and buckets calls are :mod:`octomon.store.probe`'s, through :meth:`InfluxSink.call`).

octomon builds its own line protocol and hands the client pre-built **bytes** at second
precision (``Point`` objects would cost 7×; SPEC §7). The client is told everything
explicitly, because it reads nothing from the environment by itself: 10 s timeouts, no
retries of its own (octomon's cache is the retry), TLS verification always on with
``INFLUXDB_CA_CERT`` as the CA bundle, and the proxy that ``HTTPS_PROXY``/``HTTP_PROXY``
/``NO_PROXY`` name for this URL (:func:`proxy_for`, with ``urllib``'s rules, as
``requests`` and ``curl`` users expect). One client — one urllib3 connection pool — per
process and server (:func:`_client`).

This module imports influxdb_client when a sink is made: only commands that talk to
InfluxDB do that. Every answer is classified by :mod:`octomon.store.delivery`; transport
failures (no answer) are always *unavailable*. Messages never contain the token.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from octomon import redact
from octomon.errors import ConfigError, InfluxError, InfluxUnavailable
from octomon.readings import AnyReading
from octomon.store import points
from octomon.store.delivery import Answer, classify, safe_url

if TYPE_CHECKING:
    from octomon.config import Settings

log = logging.getLogger(__name__)

MAX_BATCH = points.BATCH  # readings per write request
TIMEOUT = 10.0  # seconds, connect and read (SPEC §4.7: a stop never waits longer)
_R = TypeVar("_R")


# --- proxies ----------------------------------------------------------------------------------


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy for ``url`` from ``environ`` (``urllib.request``'s rules), or None.

    ``https_proxy``/``http_proxy`` by the URL's scheme (lower-case names win over
    upper-case), unless ``no_proxy`` names the host (a suffix, ``host:port``, or ``*``).
    """
    from urllib.parse import urlsplit
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

    proxies: dict[str, str] = {}
    for key in sorted(environ, key=lambda k: k.islower()):  # upper-case first: lower wins
        value = environ[key]
        if value and key.lower().endswith("_proxy"):
            proxies[key.lower()[:-6]] = value
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme or "")
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if proxy_bypass_environment(host, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _split_proxy(proxy: str) -> tuple[str, dict[str, str] | None]:
    """(proxy URL without credentials, Proxy-Authorization headers); credentials masked."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(proxy)
    if not parts.username:
        return proxy, None
    import base64

    creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    redact.register(parts.password)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = parts._replace(netloc=netloc).geturl()
    token = base64.b64encode(creds.encode()).decode()
    redact.register(token)
    return bare, {"Proxy-Authorization": f"Basic {token}"}


# --- one client per process -------------------------------------------------------------------

_CLIENTS: dict[tuple[object, ...], list[Any]] = {}  # key -> [InfluxDBClient, write_api, users]
_CLIENTS_LOCK = threading.Lock()
_AT_EXIT: list[bool] = []


def _client(key: tuple[object, ...], make: Callable[[], Any]) -> tuple[Any, Any]:
    with _CLIENTS_LOCK:
        entry = _CLIENTS.get(key)
        if entry is None:
            from influxdb_client.client.write_api import SYNCHRONOUS

            if not _AT_EXIT:
                import atexit

                _AT_EXIT.append(True)

                # A client still open at exit closes now, while the modules its __del__
                # needs are alive (else Python prints "Exception ignored …" on shutdown).
                atexit.register(_close_all)

            client = make()
            entry = _CLIENTS[key] = [client, client.write_api(write_options=SYNCHRONOUS), 0]
        entry[2] += 1
        return entry[0], entry[1]


def _close_all() -> None:
    with _CLIENTS_LOCK:
        entries = list(_CLIENTS.values())
        _CLIENTS.clear()
    for entry in entries:
        entry[0].close()


def _release(key: tuple[object, ...]) -> None:
    with _CLIENTS_LOCK:
        entry = _CLIENTS.get(key)
        if entry is None:
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _CLIENTS[key]
            entry[0].close()


# --- the sink -----------------------------------------------------------------------------------


class InfluxSink:
    """Synchronous writes of line protocol (second precision) through influxdb-client.

    Thread-safe; sinks for the same server, token and settings share one client.
    """

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        ca_cert: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError([f"INFLUXDB_URL={safe_url(url)!r}: must be an http(s) URL"])
        if ca_cert is not None and not os.access(ca_cert, os.R_OK):
            raise ConfigError([f"INFLUXDB_CA_CERT={os.fspath(ca_cert)!r}: cannot be read"])
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.where = safe_url(url)
        self.proxy = proxy
        redact.register(token)
        proxy_url, proxy_headers = _split_proxy(proxy) if proxy else (None, None)
        ca = os.fspath(ca_cert) if ca_cert is not None else None
        self._key: tuple[object, ...] = (self.url, token, org, ca, proxy, timeout)

        def make() -> Any:
            from influxdb_client.client.influxdb_client import InfluxDBClient

            return InfluxDBClient(
                url=self.url,
                token=token,
                org=org,
                timeout=int(timeout * 1000),
                verify_ssl=True,
                ssl_ca_cert=ca,
                proxy=proxy_url,
                proxy_headers=proxy_headers,
                retries=False,
                enable_gzip=False,
                connection_pool_maxsize=2,
            )

        self.client, self._write_api = _client(self._key, make)
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> InfluxSink:
        """The sink of the INFLUXDB_ settings; the proxy from ``environ`` (the process's)."""
        if not settings.influxdb_url:
            raise ConfigError(["INFLUXDB_URL is required (this command talks to InfluxDB)"])
        env = os.environ if environ is None else environ
        return cls(
            settings.influxdb_url,
            settings.influxdb_token or "",
            settings.influxdb_org or "",
            settings.influxdb_bucket,
            ca_cert=settings.influxdb_ca_cert,
            proxy=proxy_for(settings.influxdb_url, env),
        )

    # --- writing ---------------------------------------------------------------------------

    def write(self, readings: Sequence[AnyReading]) -> None:
        """One request per 5,000 readings; raises the classified error of the first failure."""
        points.write(self, [r.to_line_protocol() for r in readings], MAX_BATCH)

    def write_lines(self, body: bytes | str, count: int) -> None:
        """Post pre-built line protocol (second precision) holding ``count`` points.

        Raises InfluxUnavailable, InfluxConfigError or InfluxRefused (SPEC §4.4).
        """
        if not body:
            return
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.post(data)
        log.debug("wrote %d points", count)

    def post(self, data: bytes) -> None:
        """One write request of ``data``; raises the classified error of a refusal."""
        answer = self.call(
            lambda: self._write_api.write(
                bucket=self.bucket, org=self.org, record=data, write_precision="s"
            )
        )
        if answer is not None:
            error = classify(answer, self.where, bucket=self.bucket, org=self.org)
            if error is not None:
                log.debug("write failed: %s", error.message)
                raise error

    # --- the one call helper ------------------------------------------------------------------

    def call(self, func: Callable[[], object]) -> Answer | None:
        """Run one client call: None when it succeeded, its Answer when InfluxDB said no.

        Raises InfluxUnavailable when no answer came (connection, TLS, timeout, proxy).
        """
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        if self._closed:
            raise InfluxUnavailable("the InfluxDB connection was closed")
        try:
            func()
        except ApiException as exc:
            if not exc.status:  # influxdb-client's wrapping of urllib3's SSLError
                raise self._unreachable(exc, str(exc.reason or "")) from None
            return _answer_of(exc)
        except (HTTPError, OSError, UnicodeDecodeError) as exc:
            raise self._unreachable(exc, str(exc)) from None
        return None

    def _unreachable(self, exc: BaseException, text: str) -> InfluxError:
        """THE mapping of a failure without an HTTP answer: always *unavailable*."""
        from urllib3 import exceptions as u3

        hint = None
        lowered = text.lower()
        via = f" through the proxy {safe_url(self.proxy)}" if self.proxy else ""
        if "certificate" in lowered or isinstance(exc, u3.SSLError) or "ssl" in lowered:
            detail = _ssl_detail(text)
            why = f"its TLS certificate could not be verified ({detail})"
            if "certificate" not in lowered:
                why = f"TLS failed ({detail})"
            hint = (
                "set INFLUXDB_CA_CERT to the PEM file of the CA that signed the server's "
                "certificate (verification stays on), or check INFLUXDB_URL"
            )
        elif isinstance(exc, u3.ProxyError):
            why = f"the proxy {safe_url(self.proxy or '')} failed ({_last_reason(exc)})"
            hint = "check HTTPS_PROXY / HTTP_PROXY (and NO_PROXY)"
            via = ""
        elif isinstance(exc, u3.NameResolutionError):
            why = "host name could not be resolved"
        elif isinstance(exc, u3.NewConnectionError):
            why = "connection refused" if "refused" in lowered else _last_reason(exc)
        elif isinstance(exc, u3.TimeoutError | TimeoutError):
            why = f"timed out (no answer within {TIMEOUT:g} s)"
        elif isinstance(exc, u3.ProtocolError):
            why = "the server closed the connection without answering"
        elif isinstance(exc, UnicodeDecodeError):
            why = "the server answered with a body that is not UTF-8 text"
        elif isinstance(exc, OSError) and exc.strerror:
            why = exc.strerror.lower()
        else:
            why = type(exc).__name__
        error = InfluxUnavailable(f"cannot reach InfluxDB at {self.where}{via}: {why}", hint=hint)
        log.debug("%s", error.message)
        return error

    # --- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._key)

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer_of(exc: Any) -> Answer:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    return Answer(int(exc.status), str(exc.reason or ""), headers, str(body or ""))


def _ssl_detail(text: str) -> str:
    """The useful part of an OpenSSL message: ``self-signed certificate`` and the like."""
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED] "):
        at = text.find(marker)
        if at >= 0:
            rest = text[at + len(marker) :]
            return rest.split("(")[0].split(")")[0].strip() or "verify failed"
    if "wrong version number" in text.lower():
        return "the server does not speak TLS on this port: try http://"
    return " ".join(text.split("\n")[-1].split())[:200] or "TLS error"


def _last_reason(exc: BaseException) -> str:
    inner: BaseException | None = exc
    while inner is not None and inner.__context__ is not None:
        inner = inner.__context__
    text = str(inner or exc)
    if isinstance(inner, OSError) and inner.strerror:
        text = inner.strerror
    return " ".join(text.split())[:200]
