"""A loopback InfluxDB v2 emulator for the answers VictoriaMetrics never gives (TESTING.md).

It answers ``/api/v2/write``, ``/ping`` and ``/api/v2/buckets`` like InfluxDB 2.x, with
switchable behaviour, and records what it was sent::

    with InfluxEmulator() as influx:
        influx.fail(503, retry_after="7")        # every write answers 503 + Retry-After
        influx.reject_containing("demand=666")   # 400 for any batch holding that text
        influx.script([429, 204])                # then these statuses in turn
        influx.html(413)                         # nginx's HTML page instead of InfluxDB's JSON
        influx.configure(listing="empty")        # a write-only token: "empty" or "forbidden"
        InfluxEmulator(tls=(cert, key))          # HTTPS with that certificate
        ...
        influx.points()                          # line-protocol lines it accepted
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BODIES: dict[int, dict[str, str]] = {
    400: {"code": "invalid", "message": "unable to parse 'x': invalid boolean"},
    401: {"code": "unauthorized", "message": "unauthorized access"},
    403: {"code": "forbidden", "message": "insufficient permissions for write"},
    404: {"code": "not found", "message": 'bucket "{bucket}" not found'},
    413: {
        "code": "request too large",
        "message": "unable to read data: points batch is too large",
    },
    422: {
        "code": "unprocessable entity",
        "message": "failure writing points to database: partial write: field type "
        'conflict: input field "demand" on measurement "energy_consumption" is type '
        "float, already exists as type integer dropped=1",
    },
    429: {"code": "too many requests", "message": "org exceeded quota"},
    500: {"code": "internal error", "message": "unexpected error writing points to database"},
    503: {"code": "unavailable", "message": "service unavailable"},
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class _Behaviour:
    status: int = 204
    body: dict[str, str] | None = None
    retry_after: str | None = None
    reject: str | None = None  # 400 for a batch containing this text
    reject_status: int = 400
    script: list[int] = field(default_factory=list)
    delay: float = 0.0
    token: str = "test-token"
    orgs: tuple[str, ...] = ("test-org",)
    buckets: tuple[str, ...] = ("octopus_energy",)
    buckets_api: bool = True  # False: no /api/v2/buckets (like VictoriaMetrics)
    listing: str = "all"  # "empty" / "forbidden": a write-only token lists no bucket
    html: bool = False  # error answers are an HTML page (a proxy in front of InfluxDB)


NGINX_413 = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PLAIN_HTTP_400 = (
    "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title>"
    "</head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain "
    "HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>"
    "\r\n</html>\r\n"
)


class InfluxEmulator:
    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.behaviour = _Behaviour()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                emulator._handle(self)

            def do_POST(self) -> None:
                emulator._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def token(self) -> str:
        return self.behaviour.token

    def start(self) -> InfluxEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> InfluxEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self, status: int, *, retry_after: str | None = None, body: dict[str, str] | None = None
    ) -> None:
        """Every write answers ``status`` from now on (204 = healthy again)."""
        with self._lock:
            self.behaviour.status = status
            self.behaviour.retry_after = retry_after
            self.behaviour.body = body

    def heal(self) -> None:
        self.fail(204)
        with self._lock:
            self.behaviour.reject = None
            self.behaviour.script = []
            self.behaviour.html = False

    def html(self, status: int) -> None:
        """Every write answers ``status`` with an HTML page, as nginx in front would."""
        self.fail(status)
        with self._lock:
            self.behaviour.html = True

    def reject_containing(self, text: str | None, status: int = 400) -> None:
        """Answer ``status`` (400/413/422) to any batch whose body contains ``text``."""
        with self._lock:
            self.behaviour.reject = text
            self.behaviour.reject_status = status

    def script(self, statuses: list[int]) -> None:
        """The next writes answer these statuses in turn, then the usual behaviour."""
        with self._lock:
            self.behaviour.script = list(statuses)

    def slow(self, seconds: float) -> None:
        with self._lock:
            self.behaviour.delay = seconds

    def configure(self, **kwargs: object) -> None:
        with self._lock:
            for key, value in kwargs.items():
                setattr(self.behaviour, key, value)

    # --- what was received -----------------------------------------------------------

    def writes(self, status: int | None = 204) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.endswith("/api/v2/write") and (status is None or r.status == status)
            ]

    def points(self) -> list[str]:
        """Line-protocol lines of the writes that were accepted (204, or 422's rest)."""
        out: list[str] = []
        for r in self.writes(None):
            if r.status not in (204, 422):
                continue
            for line in r.body.decode().splitlines():
                if line.strip() and (r.status == 204 or not self._rejected_line(line)):
                    out.append(line)
        return out

    def _rejected_line(self, line: str) -> bool:
        reject = self.behaviour.reject
        return reject is not None and reject in line

    # --- the handler -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self._lock:
            b = self.behaviour
            delay = b.delay
        if delay:
            time.sleep(delay)
        status, payload, headers = self._answer(
            parts.path, query, h.headers.get("Authorization"), body
        )
        with self._lock:
            self.requests.append(
                Request(h.command, parts.path, query, dict(h.headers.items()), body, status)
            )
        html = isinstance(payload, dict) and isinstance(payload.get("html"), str)
        if html:
            assert isinstance(payload, dict)
            data = str(payload["html"]).encode()
        else:
            data = json.dumps(payload).encode() if payload is not None else b""
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if data:
            kind = "text/html" if html else "application/json; charset=utf-8"
            h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if data:
            h.wfile.write(data)

    def _answer(
        self, path: str, query: dict[str, str], auth: str | None, body: bytes
    ) -> tuple[int, dict[str, object] | None, dict[str, str]]:
        with self._lock:
            b = self.behaviour
            if path == "/ping":
                return 204, None, {"X-Influxdb-Version": "v2.7.11"}
            authorised = auth == f"Token {b.token}"
            if path == "/api/v2/buckets":
                if not b.buckets_api:
                    return 404, None, {}
                if not authorised:
                    return 401, dict(BODIES[401]), {}
                org = query.get("org", "")
                if org not in b.orgs:
                    return (
                        404,
                        {"code": "not found", "message": f'organization name "{org}" not found'},
                        {},
                    )
                if b.listing == "forbidden":
                    return 403, {"code": "forbidden", "message": "read:buckets is unauthorized"}, {}
                name = query.get("name")
                found = [{"name": x, "orgID": "0123"} for x in b.buckets if name in (None, x)]
                return 200, {"buckets": [] if b.listing == "empty" else found}, {}
            if path != "/api/v2/write":
                return 404, {"code": "not found", "message": "path not found"}, {}
            if not authorised:
                return 401, dict(BODIES[401]), {}
            org = query.get("org")
            if org not in b.orgs:  # InfluxDB: the org, then the bucket, then the body
                return (
                    404,
                    {"code": "not found", "message": f'organization name "{org}" not found'},
                    {},
                )
            if query.get("bucket") not in b.buckets:
                message = f'bucket "{query.get("bucket")}" not found'
                return 404, {"code": "not found", "message": message}, {}
            if not body:
                return 204, None, {}  # an empty write: authorised, nothing to store
            if b.script:
                status = b.script.pop(0)
            elif b.reject is not None and b.reject.encode() in body:
                status = b.reject_status
            else:
                status = b.status
            if status == 404 and query.get("org") not in b.orgs:
                return (
                    404,
                    {
                        "code": "not found",
                        "message": f'organization name "{query.get("org")}" not found',
                    },
                    {},
                )
            headers = {}
            if status in (429, 503) and b.retry_after is not None:
                headers["Retry-After"] = b.retry_after
            if status == 204:
                return 204, None, headers
            if b.html:
                return status, {"html": NGINX_413 if status == 413 else PLAIN_HTTP_400}, headers
            payload = dict(b.body or BODIES.get(status, {"code": "error", "message": "error"}))
            payload["message"] = payload["message"].replace("{bucket}", query.get("bucket", ""))
            return status, payload, headers


@contextmanager
def influx_emulator() -> Iterator[InfluxEmulator]:
    with InfluxEmulator() as emulator:
        yield emulator
