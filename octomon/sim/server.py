"""The simulator on a loopback port, and ``python -m octomon.sim``."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from octomon.sim.graphql import SimHomeMini

# --------------------------------------------------------------------------- HTTP


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: SimHomeMini) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a pooled client expects
    disable_nagle_algorithm = True  # else small answers wait ~40 ms for a delayed ACK
    timeout = 60
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a per-request line on stderr would drown the demo and the test output."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp = self.server.sim.handle(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    do_POST = _answer
    do_GET = _answer


class SimServer:
    """The sim on a loopback port (bound at construction, so ``url`` is known at once)."""

    def __init__(
        self, sim: SimHomeMini | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("octomon.sim listens on loopback only")
        self.sim = sim or SimHomeMini()
        self._httpd = _HTTPServer(("127.0.0.1", port), self.sim)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/graphql/"
        self.rest_url = f"http://127.0.0.1:{self.port}/v1/"
        self.sim.rest.origin = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> SimServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="octomon-sim", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop kept-alive connections, so a stopped sim is really gone."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._httpd.connections_lock:
            for conn in list(self._httpd.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m octomon.sim``: serve until Ctrl-C or SIGTERM, exit 0."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m octomon.sim", description="Serve a simulated Octopus Home Mini on loopback."
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--seed", type=int, default=1, help="household seed (default 1)")
    parser.add_argument("--rate-limit-per-hour", type=int, default=100)
    parser.add_argument("--late-uploads", action="store_true", help="enable late upload bursts")
    parser.add_argument(
        "--gas-units",
        choices=("m3", "kWh"),
        default="m3",
        help="the gas meter's settled units: m3 (SMETS2, default) or kWh (SMETS1)",
    )
    parser.add_argument("--economy7", action="store_true", help="an E-2R- (day/night) import")
    parser.add_argument("--import-tariff", help="the import meter point on this tariff code")
    parser.add_argument("--export-tariff", help="an export meter point on this tariff code")
    args = parser.parse_args(argv)
    sim = SimHomeMini(seed=args.seed, rate_limit_per_hour=args.rate_limit_per_hour, record=False)
    sim.late_uploads = args.late_uploads
    sim.gas_units = "kWh" if args.gas_units == "kWh" else "m³"
    sim.rest.economy7 = args.economy7
    sim.rest.import_tariff = args.import_tariff
    sim.rest.export_tariff = args.export_tariff
    try:
        server = SimServer(sim, port=args.port)
    except OSError as err:
        print(
            f"octomon.sim: cannot listen on 127.0.0.1:{args.port}: {err.strerror}", file=sys.stderr
        )
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    server.start()
    print(
        f"octomon.sim serving a simulated Home Mini at {server.url}\n"
        f"OCTOPUS_API_URL={server.url}\nOCTOPUS_REST_URL={server.rest_url}\n"
        f"OCTOPUS_API_KEY={sim.api_key}\n"
        f"OCTOPUS_ACCOUNT_NUMBER={sim.account_number}\nOCTOPUS_DEVICE_ID={sim.device_id}\n"
        "Ctrl-C to stop.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("octomon.sim stopped.", flush=True)
    return 0
