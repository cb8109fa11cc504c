"""The connection test behind `test-influx` (and `verify-config --online`, the wizard):
is the server there, and may the token write to the bucket?

Through the sink's one call helper (:meth:`octomon.store.influx.InfluxSink.call`), so every
answer is classified as a write's is (:mod:`octomon.store.delivery`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octomon.clock import utcnow
from octomon.errors import InfluxConfigError, InfluxUnavailable
from octomon.store import points
from octomon.store.delivery import classify
from octomon.store.influx import InfluxSink

if TYPE_CHECKING:
    from octomon.config import Settings

TEST_MEASUREMENT = "octomon_test"


@dataclass(frozen=True)
class InfluxCheck:
    summary: str
    verified: bool
    wrote_point: bool


def ping(sink: InfluxSink) -> None:
    """Reachable: ``/ping`` answers 2xx (or 401/403 where even ping needs a token)."""
    from influxdb_client.service.ping_service import PingService

    service = PingService(sink.client.api_client)  # type: ignore[no-untyped-call]
    answer = sink.call(service.get_ping)
    if answer is None or 200 <= answer.status < 300 or answer.status in (401, 403):
        return
    if answer.status >= 500 or answer.status == 429:
        error = classify(answer, sink.where)
        assert error is not None
        raise error
    raise InfluxUnavailable(
        f"{sink.where} answered HTTP {answer.status} {answer.reason} to /ping: "
        "it does not look like InfluxDB",
        hint="check INFLUXDB_URL (the server's base URL, e.g. http://host:8086)",
    )


def list_buckets(sink: InfluxSink) -> list[str] | None:
    """Names of the buckets called ``sink.bucket`` in ``sink.org`` the token may read.

    None when this server has no buckets API (VictoriaMetrics, InfluxDB 1.8); an empty list
    also when listing is forbidden (403: a write-only token). Raises InfluxConfigError for a
    refused token or an unknown organisation.
    """
    box: list[Any] = []

    def get() -> None:
        response = sink.client.buckets_api().find_buckets(
            name=sink.bucket, org=sink.org, _preload_content=False
        )
        box.append(response.data)

    answer = sink.call(get)
    if answer is None:
        try:
            listed = json.loads(box[0]).get("buckets")
        except (ValueError, AttributeError):
            return None
        if not isinstance(listed, list):
            return None
        return [str(b.get("name")) for b in listed if isinstance(b, dict)]
    if answer.status == 403:
        return []
    is_influx = answer.influx_error() is not None
    if answer.status == 401 or (answer.status == 404 and is_influx):
        error = classify(answer, sink.where, bucket=sink.bucket, org=sink.org)
        assert error is not None
        raise error
    if answer.status >= 500 or answer.status == 429:
        error = classify(answer, sink.where)
        assert error is not None
        raise error
    return None


def check_write(sink: InfluxSink) -> None:
    """Prove the token may write to the bucket without storing anything: an empty write.

    InfluxDB 2.x (``http/write_handler.go``) resolves the org (404), the bucket (404) and the
    token's write permission on it (403) before it reads the body, and an empty body holds
    no point: 204, nothing written.
    """
    sink.post(b"")


def check(
    settings: Settings, *, write_test_point: bool = False, environ: Mapping[str, str] | None = None
) -> InfluxCheck:
    """Reachability, then token/org/bucket; with ``write_test_point`` one real write.

    A token that cannot list buckets (an empty list, or 403) is checked with an empty
    write. The test point goes to ``octomon_test``, never ``energy_consumption``.
    """
    sink = InfluxSink.from_settings(settings, environ)
    try:
        ping(sink)
        names = list_buckets(sink)
        org, bucket = sink.org, sink.bucket
        if names is None:
            verified = False
            summary = "reachable; org and bucket cannot be verified on this server"
        elif bucket in names:
            verified = True
            summary = f"reachable; token, organisation {org!r} and bucket {bucket!r} verified"
        else:
            try:
                check_write(sink)
            except InfluxConfigError as exc:
                if not names:
                    exc.message = f"cannot list buckets with this token, and {exc.message}"
                raise
            verified = True
            summary = (
                f"reachable; cannot list buckets with this token; it may write to bucket "
                f"{bucket!r} in organisation {org!r} (checked with an empty write: nothing "
                "stored)"
            )
        if write_test_point:
            point = points.point(TEST_MEASUREMENT, {"source": "octomon"}, {"value": 1.0}, utcnow())
            sink.write_lines(point, 1)
            summary += f"; wrote a test point ({TEST_MEASUREMENT}) to bucket {bucket!r}"
        elif not verified:
            summary += " (--write-test-point proves that writing works)"
        return InfluxCheck(summary, verified, write_test_point)
    finally:
        sink.close()
