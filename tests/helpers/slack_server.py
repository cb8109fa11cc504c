"""A loopback Slack incoming-webhook server for tests: records posts, answers as scripted.

Slack answers a webhook post with a short text body: ``ok`` (200), or an error token with
a status: ``invalid_payload``/``no_text``/``invalid_blocks`` (400), ``invalid_token`` /
``action_prohibited`` (403), ``channel_not_found``/``no_service`` (404),
``channel_is_archived`` (410), 429 with ``Retry-After``, or a 5xx. This server gives the
same answers, checks the payload the way Slack does (JSON with ``text`` or ``blocks``,
Block Kit size limits), and can hang to simulate an outage.

    with SlackWebhookServer() as server:
        server.respond(Answer.rate_limited(1), Answer.ok())   # one per request, in order
        server.always(Answer.channel_not_found())             # after the script runs out
        url = server.webhook_url("s3cr3t")                    # .../services/T000/B000/s3cr3t
        ...
        server.posts  # [Post(path, headers, body, json, at)], in arrival order
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (stop() ends the wait)

    @classmethod
    def ok(cls) -> Answer:
        return cls()

    @classmethod
    def rate_limited(cls, retry_after: float = 1) -> Answer:
        return cls(429, "rate_limited", {"Retry-After": f"{retry_after:g}"})

    @classmethod
    def invalid_payload(cls) -> Answer:
        return cls(400, "invalid_payload")

    @classmethod
    def forbidden(cls, token: str = "action_prohibited") -> Answer:
        return cls(403, token)

    @classmethod
    def channel_not_found(cls) -> Answer:
        return cls(404, "channel_not_found")

    @classmethod
    def no_service(cls) -> Answer:
        return cls(404, "no_service")

    @classmethod
    def archived(cls) -> Answer:
        return cls(410, "channel_is_archived")

    @classmethod
    def server_error(cls, status: int = 500) -> Answer:
        return cls(status, "<html><body>Internal Server Error</body></html>")

    @classmethod
    def hanging(cls, seconds: float) -> Answer:
        return cls(200, "ok", hang=seconds)


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any  # the decoded payload, or None when it was not JSON
    at: float  # time.monotonic() when it arrived
    answered: int  # the status it got


def check_payload(payload: Any) -> str | None:
    """Slack's own validation, as far as octomon relies on it: the error token, or None."""
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    if not payload.get("text") and not blocks:
        return "no_text"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return "invalid_blocks"
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                return "invalid_blocks"
            if text is not None and not 0 < len(text.get("text", "")) <= 3000:
                return "invalid_blocks"
            if fields is not None and (
                len(fields) > 10 or any(not 0 < len(f.get("text", "")) <= 2000 for f in fields)
            ):
                return "invalid_blocks"
        elif kind == "context":
            elements = block.get("elements")
            if not elements or len(elements) > 10:
                return "invalid_blocks"
        else:
            return "invalid_blocks"
    return None


class SlackWebhookServer:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self._script: deque[Answer] = deque()
        self._default = Answer.ok()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests_started = 0
        self._connections: set[socket.socket] = set()

    # --- control ------------------------------------------------------------------------

    def respond(self, *answers: Answer) -> SlackWebhookServer:
        """Answer the next requests with these, in order (then the default)."""
        with self._lock:
            self._script.extend(answers)
        return self

    def always(self, answer: Answer) -> SlackWebhookServer:
        """The answer once the script has run out (initially 200 ``ok``)."""
        with self._lock:
            self._default = answer
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def webhook_url(self, secret: str = "XXXXXXXXXXXXXXXXXXXXXXXX") -> str:
        return f"{self.url}/services/T000/B000/{secret}"

    def wait_for_posts(self, n: int, timeout: float = 5.0) -> list[Post]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.posts) >= n:
                    return list(self.posts)
            time.sleep(0.01)
        with self._lock:
            return list(self.posts)

    # --- life ---------------------------------------------------------------------------

    def start(self) -> SlackWebhookServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # http.server's naming
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (later posts get connection refused) and end any hang at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # kept-alive connections die with the server, as in an outage
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> SlackWebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the handler --------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            self.requests_started += 1
            answer = self._script.popleft() if self._script else self._default
        if answer.hang:
            self._stopping.wait(answer.hang)
            if self._stopping.is_set():
                request.close_connection = True
                return  # the connection closes without an answer
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = None
        status, text, headers = answer.status, answer.body, dict(answer.headers)
        if status == 200:
            if not request.path.startswith("/services/"):
                status, text = 404, "no_service"
            else:
                problem = check_payload(payload)
                if problem is not None:
                    status, text = 400, problem
        with self._lock:
            self.posts.append(
                Post(request.path, dict(request.headers), body, payload, time.monotonic(), status)
            )
        data = text.encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "text/html")
            request.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test)
