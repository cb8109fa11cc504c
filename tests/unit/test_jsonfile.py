"""octomon.jsonfile: versioned, locked, atomic 0600, lenient; a damaged file set aside once."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from octomon import jsonfile, redact
from octomon.jsonfile import JsonFile, Kind


def _decode(obj: dict[str, Any]) -> dict[str, int]:
    return {k: jsonfile.integer(v) for k, v in jsonfile.mapping(obj["counts"]).items()}


KIND: Kind[dict[str, int]] = Kind(
    name="counts.json",
    version=2,
    decode=_decode,
    encode=lambda counts: {"counts": counts},
    empty=dict,
    held=jsonfile.days_held("counts"),
    then="counting starts again",
)


def counts(tmp_path: Path, kind: Kind[dict[str, int]] = KIND) -> JsonFile[dict[str, int]]:
    return JsonFile(tmp_path, kind, "counts.lock")


def test_missing_is_empty_and_a_write_is_private_versioned_and_read_back(tmp_path: Path) -> None:
    f = counts(tmp_path)
    assert f.load() == {}
    value, _ = f.update(lambda c: c.update(a=1))
    assert value == {"a": 1}
    assert json.loads(f.path.read_text()) == {"version": 2, "counts": {"a": 1}}
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert counts(tmp_path).load() == {"a": 1}


def test_unchanged_bytes_are_not_written_again(tmp_path: Path) -> None:
    f = counts(tmp_path)
    f.update(lambda c: c.update(a=1))
    before = f.path.stat()
    f.update(lambda c: c.update(a=1))
    assert f.save({"a": 1}) is False
    after = f.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert f.save({"a": 2}) is True
    assert f.load() == {"a": 2}


DAMAGE = {
    "truncated": b'{"version":2,"counts":{"a":1',
    "not an object": b"[1, 2]",
    "wrong type": b'{"version":2,"counts":{"2026-12-01T00:00:00Z":"7"}}',
    "unknown version": b'{"version":3,"counts":{"a":1}}',
    "no version": b'{"counts":{"a":1}}',
    "a boolean version": b'{"version":true,"counts":{}}',
    "binary": b"\x00\xff\xfe",
    "nested deep": b"[" * 100_000,
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_file_is_set_aside_once_without_secrets_and_reads_empty(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    gc.collect()  # an earlier test's garbage finalised mid-recursion ("nested deep") fails it
    secret = "sk_live_" + "0123456789abcdef" * 2
    redact.register(secret)
    raw = DAMAGE[case] + f' "{secret}"'.encode()
    f = counts(tmp_path)
    f.path.write_bytes(raw)
    (tmp_path / "neighbour.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        assert f.load() == {}
        assert f.load() == {}  # the second reader finds nothing: no second warning
        assert counts(tmp_path).load() == {}
    copies = list(tmp_path.glob("counts.json.corrupt-*"))
    assert len(copies) == 1 and f.set_aside == copies[0]
    assert stat.S_IMODE(copies[0].stat().st_mode) == 0o600
    assert secret.encode() not in copies[0].read_bytes()
    assert copies[0].read_bytes() == DAMAGE[case] + b' "sk_l\xe2\x80\xa6cdef"'
    assert not f.path.exists() and (tmp_path / "neighbour.json").exists()
    said = [r.getMessage() for r in caplog.records if "counts.json" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("counts.json was damaged (")
    assert copies[0].name in said[0] and said[0].endswith("; counting starts again")
    f.update(lambda c: c.update(b=2))  # and the next write makes a good file
    assert counts(tmp_path).load() == {"b": 2}


def test_the_warning_says_what_the_file_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = counts(tmp_path)
    days = {f"2026-11-{d:02d}T10:30:00Z": "x" for d in range(1, 31)}
    f.path.write_text(json.dumps({"version": 2, "counts": days})[:-3])
    with caplog.at_level(logging.WARNING):
        f.load()
    (message,) = [r.getMessage() for r in caplog.records]
    assert "it held 30 days of counts (2026-11-01 to 2026-11-30)" in message


def test_an_unversioned_file_of_an_older_octomon_is_read(tmp_path: Path) -> None:
    older = Kind(**{**KIND.__dict__, "unversioned": True})
    f = counts(tmp_path, older)
    f.path.write_text('{"counts":{"a":1}}')
    assert f.load() == {"a": 1}
    f.path.write_text('{"version":1,"counts":{"a":1}}')
    assert f.load() == {}  # a version, and not this one


@pytest.mark.parametrize("value", ["n/a", "NaN", "Infinity", 0.25, None])
def test_a_decimal_is_text_and_finite(value: Any) -> None:
    with pytest.raises(jsonfile.DAMAGE):
        jsonfile.decimal(value)
    assert str(jsonfile.decimal("0.2451")) == "0.2451"


def test_strict_readers_refuse_booleans_and_infinities() -> None:
    for read, bad in [
        (jsonfile.integer, True),
        (jsonfile.integer, 1.0),
        (jsonfile.number, float("inf")),
        (jsonfile.number, False),
        (jsonfile.text, 3),
        (jsonfile.mapping, []),
        (jsonfile.array, {}),
        (jsonfile.instant, "yesterday"),
        (jsonfile.day, "2026-13-01"),
    ]:
        with pytest.raises(jsonfile.DAMAGE):
            read(bad)


def test_a_failed_mutation_or_write_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = counts(tmp_path)
    f.update(lambda c: c.update(a=1))
    before = f.path.read_bytes()

    def boom(c: dict[str, int]) -> None:
        c["a"] = 2
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        f.update(boom)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonfile.fsutil, "atomic_write", full)
    with pytest.raises(OSError):
        f.update(lambda c: c.update(a=3))
    assert f.path.read_bytes() == before


def _add(directory: str, worker: int) -> None:
    f = counts(Path(directory))
    for i in range(40):
        f.update(lambda c, i=i: c.update({f"{worker}-{i}": i}))


def test_updates_from_several_processes_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(counts(tmp_path).load()) == 120
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_damaged_file_that_cannot_be_set_aside_still_reads_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    f = counts(tmp_path)
    f.path.write_bytes(b"{torn")

    def read_only(path: Path) -> Any:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(jsonfile.fsutil, "flocked", read_only)
    with caplog.at_level(logging.WARNING):
        assert f.load() == {}
        assert f.load() == {}
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "counts.json is damaged (not valid JSON: truncated or hand-edited) and could not be set "
        "aside (Read-only file system); counting starts again"
    ]
    assert f.path.read_bytes() == b"{torn"
