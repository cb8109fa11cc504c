"""A tiny forwarding HTTP proxy on loopback (absolute-URI requests), for HTTP_PROXY tests.

Every request is sent on to ``upstream`` (host, port) whatever host it names, so a test
can use an unresolvable InfluxDB host (``influx.invalid``): only a proxy can reach it.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class ForwardingProxy:
    def __init__(self, upstream: tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay  # seconds added to every forwarded request (a slow link)
        self.seen: list[str] = []  # the absolute URIs it was asked for
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self)

            def do_POST(self) -> None:
                proxy._forward(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ForwardingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        self.seen.append(h.path)
        if self.delay:
            time.sleep(self.delay)
        parts = urlsplit(h.path)
        if not parts.scheme:  # not a proxy request
            h.send_response(400)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("proxy-connection",)}
        conn = http.client.HTTPConnection(*self.upstream, timeout=10)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(h.command, path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        h.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        conn.close()
