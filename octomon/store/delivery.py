"""What becomes of a batch sent to InfluxDB (SPEC §4.4), decided here and nowhere else.

An answer is one of four things:

* **acknowledged** (2xx);
* **refused** — a 400/413/422 *with InfluxDB's own JSON error body*: the data itself was
  refused. The batch is split in halves and each half sent once more; a half refused
  again is split the same way, so that only the readings InfluxDB refuses end up under
  ``CACHE_DIR/rejected/`` (with the server's message beside them), in one file per
  batch. The splitting is bounded (:data:`SPLIT_REQUESTS` extra requests per batch): when a
  whole batch is bad (a field type conflict, a retention limit) the rest is set aside in
  the halves reached;
* **unavailable** — no answer, 5xx, 429, or any answer that is not InfluxDB's verdict (an
  HTML 400 from a proxy that was spoken plain HTTP on its HTTPS port, nginx's HTML 413 for
  ``client_max_body_size``, a redirect): the readings stay cached, ``Retry-After`` is kept;
* **configuration** — 401/403/404: the token, the org or the bucket.

`run` (``daemon/writer.py``), `sync-cache` (``store/sync.py``) and `backfill`
(``daemon/backfill.py``) all hand their batches to :func:`deliver`. Standard library only:
the transport (``store/influx.py``, influxdb-client) maps its exceptions to an
:class:`Answer` or to :class:`~octomon.errors.InfluxUnavailable`, and asks :func:`classify`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Generic, Protocol, TypeVar

from octomon.errors import (
    CacheError,
    InfluxConfigError,
    InfluxError,
    InfluxRefused,
    InfluxUnavailable,
)
from octomon.readings import AnyReading
from octomon.store.aside import RejectedFile

log = logging.getLogger(__name__)

SPLIT_REQUESTS = 64  # extra requests one refused batch may cost (one bad reading in 5,000: 26)
T = TypeVar("T")


# --- answers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the transport saw it (headers with lower-case names)."""

    status: int
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""

    def influx_error(self) -> str | None:
        """The message of an InfluxDB JSON error body, else None.

        InfluxDB 2.x answers ``{"code": …, "message": …}``; InfluxDB 1.8 (its v2
        compatibility endpoint included) and InfluxDB 3 answer ``{"error": …}``.
        """
        try:
            obj = json.loads(self.body)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        if isinstance(obj.get("code"), str) and isinstance(obj.get("message"), str):
            return str(obj["message"])
        if isinstance(obj.get("error"), str):
            return str(obj["error"])
        return None

    def text(self, limit: int = 300) -> str:
        """The server's message (InfluxDB's JSON ``message``), else the body's start."""
        raw = self.influx_error()
        if raw is None:
            raw = self.body.strip()
            if raw.startswith("<"):  # an HTML page: its title says enough
                start, end = raw.lower().find("<title>"), raw.lower().find("</title>")
                raw = raw[start + 7 : end] if 0 <= start < end else "an HTML page"
        raw = " ".join(raw.split())
        return raw if len(raw) <= limit else raw[: limit - 1] + "…"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date), else None."""
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
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(
    answer: Answer, where: str, *, bucket: str = "", org: str = "", now: float | None = None
) -> InfluxError | None:
    """THE mapping of an HTTP answer to an error (SPEC §4.4); None when it was taken."""
    status = answer.status
    if 200 <= status < 300:
        return None
    message = answer.text()
    said = f": {message}" if message else ""
    influx = answer.influx_error() is not None
    if status in (400, 413, 422) and influx:
        return InfluxRefused(
            f"InfluxDB refused the data (HTTP {status}){said}", status, message or answer.reason
        )
    if status in (400, 413, 422):
        return InfluxUnavailable(
            f"{where} answered HTTP {status} {answer.reason}{said} — not InfluxDB's answer "
            "(a proxy in front of it?); the readings stay in the cache",
            hint="check INFLUXDB_URL (https:// for a TLS port) and any proxy's limits "
            "(nginx: client_max_body_size)",
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
        lowered = message.lower()
        if "org" in lowered and "bucket" not in lowered:
            return InfluxConfigError(
                f"InfluxDB does not know the organisation {org!r} (HTTP 404){said}",
                cause="org",
                status=status,
            )
        hint = "" if influx else " (is INFLUXDB_URL the server's base URL?)"
        return InfluxConfigError(
            f"{where} has no bucket {bucket!r} (HTTP 404){said}{hint}",
            cause="bucket",
            status=status,
        )
    wait = retry_after(answer.headers.get("retry-after"), now)
    if status == 429 or status >= 500 or status == 408:
        after = f"; retry after {wait:.0f} s" if wait is not None else ""
        return InfluxUnavailable(
            f"InfluxDB is unavailable (HTTP {status} {answer.reason}){said}{after}",
            retry_after=wait,
        )
    # Anything else (a redirect, 405, …) is not InfluxDB's write API answering.
    where_to = ""
    if 300 <= status < 400 and answer.headers.get("location"):
        where_to = f" to {safe_url(answer.headers['location'])}"
    return InfluxUnavailable(
        f"{where} answered HTTP {status} {answer.reason}{where_to}{said} "
        "(is INFLUXDB_URL the InfluxDB base URL?)",
        retry_after=wait,
    )


def safe_url(url: str) -> str:
    """scheme://host[:port]/path without user, password or query (for messages)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}"


# --- delivering a batch -----------------------------------------------------------------------


class LineSink(Protocol):
    """What delivery needs of :class:`octomon.store.influx.InfluxSink`."""

    def write_lines(self, body: bytes | str, count: int) -> None: ...


class RejectedStore(Protocol):
    """What delivery needs of :class:`octomon.store.cache.Cache`."""

    def write_rejected(
        self, lines: Sequence[str | bytes], message: str, now: datetime
    ) -> object: ...


@dataclass
class Delivery(Generic[T]):
    """What became of a batch; every item is in exactly one of the four lists."""

    acknowledged: list[T] = field(default_factory=list)
    set_aside: list[T] = field(default_factory=list)  # refused: now under rejected/
    undelivered: list[T] = field(default_factory=list)  # unavailable / configuration
    unstored: list[T] = field(default_factory=list)  # refused, and rejected/ failed
    failure: InfluxUnavailable | InfluxConfigError | None = None  # why ``undelivered``
    refusal: InfluxRefused | None = None  # the last refusal (the server's message)
    cache_error: CacheError | None = None  # why ``unstored``
    acknowledged_count: int = 0  # == len(acknowledged) unless the batch went whole
    evicted_files: int = 0  # setting aside took the cache over CACHE_MAX_MB: files dropped
    evicted_readings: int = 0  # … and the readings they held

    @property
    def stored(self) -> int:
        """Readings durably somewhere: acknowledged or set aside."""
        return self.acknowledged_count + len(self.set_aside)

    @property
    def refused_message(self) -> str:
        refusal = self.refusal
        return f"HTTP {refusal.status}: {refusal.server_message}" if refusal else ""


def deliver(
    sink: LineSink,
    items: Sequence[T] | Callable[[], Sequence[T]],
    *,
    line: Callable[[T], bytes],
    record: Callable[[T], str | bytes],
    rejected: RejectedStore,
    now: datetime,
    body: bytes | None = None,
    count: int | None = None,
) -> Delivery[T]:
    """Send ``items`` (one request), splitting and setting aside what InfluxDB refuses.

    ``line`` gives an item's line protocol, ``record`` its cache line (for rejected/).
    ``items`` may be a callable when the caller has ``body`` (and ``count``) ready: it is
    then called only if the batch has to be split; while the whole batch is taken,
    ``acknowledged`` stays empty and ``acknowledged_count`` says how many (and when it
    fails as a whole, ``undelivered`` stays empty: the caller keeps it all). Never raises
    for an InfluxDB or cache failure: the result says what happened.
    """
    run = _Delivery(sink, line, record, rejected, now)
    if body is None or count is None:
        listed = items() if callable(items) else items
        run.send(listed, b"\n".join(map(line, listed)), 0)
    else:
        try:
            sink.write_lines(body, count)
        except InfluxRefused as exc:
            run.refused(items() if callable(items) else items, exc, 0)
        except (InfluxUnavailable, InfluxConfigError) as exc:
            run.result.failure = exc
            if not callable(items):
                run.result.undelivered.extend(items)
        else:
            run.result.acknowledged_count += count
            if not callable(items):
                run.result.acknowledged.extend(items)
    run.set_aside()
    return run.result


def deliver_readings(
    sink: LineSink, readings: Sequence[AnyReading], *, rejected: RejectedStore, now: datetime
) -> Delivery[AnyReading]:
    """:func:`deliver` for readings of either fuel (the writer's and backfill's batches)."""
    return deliver(sink, readings, line=_reading_line, record=_record, rejected=rejected, now=now)


def _reading_line(reading: AnyReading) -> bytes:
    return reading.to_line_protocol().encode()


def _record(reading: AnyReading) -> str:
    return reading.to_json()


class _Delivery(Generic[T]):
    def __init__(
        self,
        sink: LineSink,
        line: Callable[[T], bytes],
        record: Callable[[T], str | bytes],
        rejected: RejectedStore,
        now: datetime,
    ) -> None:
        self.sink = sink
        self.line = line
        self.record = record
        self.rejected = rejected
        self.now = now
        self.budget = SPLIT_REQUESTS
        self.result: Delivery[T] = Delivery()
        self.refused_items: list[T] = []  # refused for good, set aside at the end
        self.messages: dict[str, None] = {}  # the server's messages, in order, once each

    def send(self, items: Sequence[T], body: bytes, depth: int) -> None:
        if not items:
            return
        if self.result.failure is not None:  # InfluxDB went away meanwhile: keep them
            self.result.undelivered.extend(items)
            return
        try:
            self.sink.write_lines(body, len(items))
        except InfluxRefused as exc:
            self.refused(items, exc, depth)
        except (InfluxUnavailable, InfluxConfigError) as exc:
            self.result.failure = exc
            self.result.undelivered.extend(items)
        else:
            self.result.acknowledged.extend(items)
            self.result.acknowledged_count += len(items)

    def refused(self, items: Sequence[T], exc: InfluxRefused, depth: int) -> None:
        self.result.refusal = exc
        if depth == 0:
            log.warning(
                "InfluxDB refused a batch of %d readings (%s): splitting it",
                len(items),
                exc.message,
            )
        # One reading is sent once more; a bigger batch is halved while the budget lasts.
        mid = len(items) // 2
        halves = [items] if len(items) == 1 else [items[:mid], items[mid:]]
        if (len(items) == 1 and depth > 0) or self.budget < len(halves):
            self.refused_for_good(items, exc)
            return
        self.budget -= len(halves)
        for half in halves:
            self.send(half, b"\n".join(map(self.line, half)), depth + 1)

    def refused_for_good(self, items: Sequence[T], exc: InfluxRefused) -> None:
        """Refused again: to be set aside, with the other halves of this batch."""
        self.refused_items.extend(items)
        self.messages.setdefault(f"HTTP {exc.status}: {exc.server_message}", None)

    def set_aside(self) -> None:
        """The batch's refused readings in one file under rejected/ (a pair of files per
        batch, however many halves were refused: a Pi's card and `cache status` count
        files), its ``.txt`` holding each distinct message of the server."""
        items = self.refused_items
        if not items:
            return
        message = "\n".join(self.messages)
        try:
            kept = self.rejected.write_rejected([self.record(x) for x in items], message, self.now)
        except CacheError as err:
            log.error("could not set aside %d refused readings: %s", len(items), err.message)
            self.result.unstored.extend(items)
            self.result.cache_error = err
            return
        where = kept.path if isinstance(kept, RejectedFile) else kept
        said = "; ".join(self.messages)
        log.error("InfluxDB refused %d readings (%s); set aside in %s", len(items), said, where)
        self.result.set_aside.extend(items)
        if isinstance(kept, RejectedFile) and kept.evicted.files:
            self.result.evicted_files += len(kept.evicted.files)
            self.result.evicted_readings += kept.evicted.readings


__all__ = [
    "Answer",
    "Delivery",
    "LineSink",
    "classify",
    "deliver",
    "deliver_readings",
    "retry_after",
    "safe_url",
]
