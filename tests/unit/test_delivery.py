"""store.delivery: THE classification of InfluxDB answers, Retry-After, and the splitting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from octomon.errors import CacheError, InfluxConfigError, InfluxRefused, InfluxUnavailable
from octomon.store.delivery import SPLIT_REQUESTS, Answer, classify, deliver, retry_after

NOW = datetime(2026, 11, 27, 14, 0, 0, tzinfo=timezone.utc)
JSON_400 = '{"code":"invalid","message":"unable to parse \'x\': invalid boolean"}'
HTML_413 = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body>"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(" 2.5 ") == 2.5
    assert retry_after("-3") == 0.0
    when = format_datetime(datetime(2026, 11, 27, 14, 1, 30, tzinfo=timezone.utc), usegmt=True)
    assert retry_after(when, now=NOW.timestamp()) == 90.0
    assert retry_after(when, now=NOW.timestamp() + 1000) == 0.0  # already past
    assert retry_after(None) is None and retry_after("") is None and retry_after("soon") is None


@pytest.mark.parametrize("status", [400, 413, 422])
def test_only_influxdbs_json_error_refuses_the_data(status: int) -> None:
    refused = classify(Answer(status, "Bad", {}, JSON_400), "http://db")
    assert isinstance(refused, InfluxRefused) and refused.status == status
    assert refused.server_message == "unable to parse 'x': invalid boolean"
    v1 = classify(Answer(status, "Bad", {}, '{"error":"partial write: dropped=1"}'), "http://db")
    assert isinstance(v1, InfluxRefused) and v1.server_message == "partial write: dropped=1"
    for body in (HTML_413, "", "Bad Request", '{"message":"no code"}', "[1]"):
        other = classify(Answer(status, "Bad", {}, body), "http://db")
        assert isinstance(other, InfluxUnavailable), body
        assert "not InfluxDB's answer" in other.message


def test_the_other_answers() -> None:
    def kind(status: int, body: str = "", headers: dict[str, str] | None = None) -> object:
        return classify(Answer(status, "R", headers or {}, body), "http://db", bucket="b", org="o")

    assert kind(204) is None
    assert isinstance(kind(401), InfluxConfigError) and kind(401).cause == "token"  # type: ignore[union-attr]
    assert kind(403).cause == "token"  # type: ignore[union-attr]
    org = kind(404, '{"code":"not found","message":"organization name \\"o\\" not found"}')
    assert isinstance(org, InfluxConfigError) and org.cause == "org"
    assert kind(404, '{"code":"not found","message":"bucket \\"b\\" not found"}').cause == "bucket"  # type: ignore[union-attr]
    busy = kind(503, "", {"retry-after": "12"})
    assert isinstance(busy, InfluxUnavailable) and busy.retry_after == 12.0
    assert isinstance(kind(429), InfluxUnavailable)
    for status in (301, 405, 409, 418):
        assert isinstance(kind(status, "<html>"), InfluxUnavailable)
    html = kind(413, HTML_413)
    assert "413 Request Entity Too Large" in html.message  # type: ignore[union-attr]


class Sink:
    def __init__(self, bad: set[int], fail_after: int | None = None) -> None:
        self.bad = bad
        self.fail_after = fail_after
        self.requests: list[list[int]] = []

    def write_lines(self, body: bytes | str, count: int) -> None:
        items = [int(x) for x in (body.decode() if isinstance(body, bytes) else body).split()]
        self.requests.append(items)
        assert len(items) == count
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            raise InfluxUnavailable("down")
        if self.bad & set(items):
            raise InfluxRefused("refused", 400, "bad value")


class Rejected:
    def __init__(self, fail: bool = False) -> None:
        self.kept: list[tuple[list[str | bytes], str]] = []
        self.fail = fail

    def write_rejected(self, lines: Sequence[str | bytes], message: str, now: datetime) -> None:
        if self.fail:
            raise CacheError("disk full")
        self.kept.append((list(lines), message))


def run(items: list[int], sink: Sink, rejected: Rejected):  # type: ignore[no-untyped-def]
    return deliver(
        sink, items, line=lambda i: str(i).encode(), record=str, rejected=rejected, now=NOW
    )


def test_one_bad_reading_among_5000_is_all_that_is_set_aside() -> None:
    sink, rejected = Sink({3210}), Rejected()
    done = run(list(range(5000)), sink, rejected)
    assert done.set_aside == [3210] and len(done.acknowledged) == 4999
    assert rejected.kept == [(["3210"], "HTTP 400: bad value")]
    assert len(sink.requests) <= 1 + 2 * 13


def test_a_batch_bad_as_a_whole_costs_a_bounded_number_of_requests() -> None:
    sink, rejected = Sink(set(range(5000))), Rejected()
    done = run(list(range(5000)), sink, rejected)
    assert len(done.set_aside) == 5000 and not done.acknowledged
    assert len(sink.requests) <= 1 + SPLIT_REQUESTS
    assert sorted(int(x) for lines, _ in rejected.kept for x in lines) == list(range(5000))


def test_a_single_refused_reading_is_sent_once_more() -> None:
    sink, rejected = Sink({7}), Rejected()
    done = run([7], sink, rejected)
    assert done.set_aside == [7] and sink.requests == [[7], [7]]


def test_influxdb_lost_while_splitting_keeps_the_rest_undelivered() -> None:
    sink = Sink({1}, fail_after=2)  # the whole, the first half (refused), then down
    done = run(list(range(8)), sink, Rejected())
    assert isinstance(done.failure, InfluxUnavailable)
    every = sorted(done.acknowledged + done.set_aside + done.undelivered + done.unstored)
    assert every == list(range(8))  # each reading in exactly one place
    assert done.undelivered and not done.unstored


def test_rejected_that_cannot_be_written_is_unstored_not_lost() -> None:
    done = run([1, 2], Sink({1, 2}), Rejected(fail=True))
    assert sorted(done.unstored) == [1, 2] and isinstance(done.cache_error, CacheError)
    assert done.stored == 0


def test_a_batch_refused_in_several_halves_is_set_aside_in_one_file() -> None:
    sink, rejected = Sink({1, 6}), Rejected()
    done = run(list(range(8)), sink, rejected)
    assert sorted(done.set_aside) == [1, 6] and sorted(done.acknowledged) == [0, 2, 3, 4, 5, 7]
    assert rejected.kept == [(["1", "6"], "HTTP 400: bad value")]  # one pair, one message
