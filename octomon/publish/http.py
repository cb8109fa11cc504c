"""``/metrics``, ``/health`` and ``/ready`` (SPEC §13) on ``HTTP_LISTEN``.

The standard library's server in a daemon thread; ``prometheus_client`` only writes the
exposition format. A scrape reads the feed's newest :class:`~octomon.publish.feed.View`
(an immutable snapshot swapped in by the daemon), so it never waits for a cycle nor makes
one wait. Nothing served holds a secret: figures, device ids and outcomes only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from octomon.clock import Clock, utcnow
from octomon.errors import ConfigError
from octomon.publish.feed import View, watts
from octomon.readings import format_time

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ViewCollector(Collector):
    def __init__(self, output: HttpOutput) -> None:
        self.output = output

    def collect(self) -> Iterator[Metric]:
        v = self.output.view
        demand = GaugeMetricFamily(
            "octomon_demand_watts", "Demand of the newest stored reading, W", labels=_DEV
        )
        register = GaugeMetricFamily(
            "octomon_consumption_kwh", "The meter's register (cumulative), kWh", labels=_DEV
        )
        stamp = GaugeMetricFamily(
            "octomon_last_reading_timestamp_seconds",
            "Time of the newest stored reading, Unix seconds",
            labels=_DEV,
        )
        for fuel, r in (("electricity", v.electricity), ("gas", v.gas)):
            if r is None:
                continue
            labels = [fuel, r.device_id]
            stamp.add_metric(labels, r.read_at.timestamp())
            if r.consumption is not None:
                register.add_metric(labels, r.consumption)
            demand_kw = getattr(r, "demand", None)
            if demand_kw is not None:
                demand.add_metric(labels, watts(demand_kw))
        yield from (demand, register, stamp)
        stored = CounterMetricFamily(
            "octomon_readings_stored", "Readings stored since start", labels=["fuel"]
        )
        for fuel, n in sorted(v.stored.items()):
            stored.add_metric([fuel], n)
        yield stored
        yield GaugeMetricFamily(
            "octomon_cache_readings", "Readings waiting in the cache", v.backlog
        )
        yield GaugeMetricFamily(
            "octomon_api_calls_last_hour", "Octopus API calls in the last hour", v.calls_last_hour
        )
        yield GaugeMetricFamily(
            "octomon_api_calls_budget", "OCTOPUS_MAX_CALLS_PER_HOUR", v.call_budget
        )
        rate = GaugeMetricFamily(
            "octomon_unit_rate_gbp_per_kwh", "Unit rate now, GBP/kWh inc VAT", labels=["fuel"]
        )
        if v.unit_rate is not None:
            rate.add_metric(["electricity"], v.unit_rate)
        yield rate
        cycles = CounterMetricFamily(
            "octomon_cycles", "Poll cycles since start", labels=["outcome"]
        )
        for outcome, n in sorted(v.cycles.items()):
            cycles.add_metric([outcome], n)
        yield cycles


_DEV = ["fuel", "device_id"]


POLL = 2.0  # seconds


class HttpOutput:
    """The HTTP output: serves the newest view; :meth:`update` only swaps it in."""

    name = "http"

    def __init__(self, listen: str, clock: Clock = utcnow) -> None:
        self.listen = listen
        self.clock = clock
        self.view = View()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ViewCollector(self))
        ProcessCollector(registry=self.registry)
        host, _, port = listen.rpartition(":")
        self.server = _server(self, host, int(port), listen)
        # It wakes every POLL s to see whether it should stop (the standard library's default,
        # 0.5 s, is 7,200 wake-ups an hour on a Pi for nothing); close() waits that long at most.
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": POLL},
            name="octomon-http",
            daemon=True,
        )

    @classmethod
    def start(cls, listen: str, clock: Clock = utcnow) -> HttpOutput:
        out = cls(listen, clock)
        out.thread.start()
        log.info("serving /metrics, /health and /ready on http://%s", out.address)
        return out

    @property
    def address(self) -> str:
        host, port = self.listen.rpartition(":")[0], self.server.server_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def update(self, view: View) -> None:
        self.view = view

    def state(self) -> str:
        return f"serving http://{self.address}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the answers ---------------------------------------------------------------------------

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, CONTENT_TYPE, generate_latest(self.registry)
        if path == "/health":
            v = self.view
            body: dict[str, Any] = {
                "status": "ok",
                "last_cycle_at": format_time(v.at) if v.at else None,
                "last_good_cycle_at": _time(v.last_good_cycle_at),
            }
            return 200, "application/json", _json(body)
        if path == "/ready":
            ready, reason = self.view.ready(self.clock())
            body = {"status": "ready" if ready else "not ready", "reason": reason}
            return (200 if ready else 503), "application/json", _json(body)
        return 404, "application/json", _json({"status": "not found", "path": path[:100]})


def _time(value: Any) -> str | None:
    return format_time(value) if value is not None else None


def _json(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _server(output: HttpOutput, host: str, port: int, listen: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "octomon"
        sys_version = ""

        def do_GET(self) -> None:
            try:
                status, ctype, body = output.answer(self.path)
            except Exception:  # a scrape must never reach the daemon
                log.debug("error while answering %s", self.path, exc_info=True)
                status, ctype, body = 500, "text/plain", b"internal error\n"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = _family(host)

    try:
        return Server((host, port), Handler)
    except OSError as exc:
        raise ConfigError(
            [f"HTTP_LISTEN={listen}: cannot listen there ({exc.strerror or exc})"]
        ) from None


def _family(host: str) -> Any:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET
