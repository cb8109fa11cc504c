"""The monitor with CACHE_DIR on a full disk, and an API that echoes the access token.

A real tmpfs of a few kilobytes, filled to the last byte, is CACHE_DIR while a real
VictoriaMetrics takes the readings (SPEC §4.9: polling and direct writes go on, the
ledger in memory). The simulator is over real HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from octomon.daemon.outcome import OK
from octomon.sim import SimHomeMini, SimResponse, SimServer
from octomon.state import StateStore
from tests.helpers.cli import invoke
from tests.helpers.daemon import compare_db
from tests.helpers.services import VictoriaMetrics
from tests.helpers.sim_faults import FaultySim
from tests.integration.test_run_clock import FIRST, existing, influx, make_rig

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def full_tmpfs(where: Path, size_kb: int = 64) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` and filled up; unmounted afterwards."""
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the disk is full (ENOSPC)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_cache_disk_with_influxdb_up_loses_nothing_and_alerts_once(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    sim = SimHomeMini(rate_limit_per_hour=200)
    with SimServer(sim) as server, full_tmpfs(tmp_path / "cache") as cache_dir:
        rig = make_rig(tmp_path, sim, server, **influx(victoria))
        assert Path(rig.settings.cache_dir) == cache_dir
        filler = fill(cache_dir)
        monitor = rig.start()
        results = rig.cycles(20)
        assert all(r.outcome == OK for r in results), [r.summary() for r in results]
        assert all(r.mode == "influxdb" and r.stored > 0 for r in results[1:])
        assert monitor.budget.calls_last_hour(rig.clock()) >= 20  # the ledger, in memory
        end = rig.real()
        problems = [a for a in rig.alerts.sent if a.level.value != "info"]
        assert [a.title for a in problems] == ["Cannot save state.json"]  # one alert
        compare_db(victoria, existing(sim, FIRST, end))  # every reading reached InfluxDB

        filler.unlink()  # space again: the state and the ledger reach the disk
        rig.cycle()
        state = StateStore(cache_dir).load()
        assert state.cursor == monitor.cursor and len(state.calls) >= 21
        assert [a.title for a in rig.alerts.sent if a.key == "state_write"] == [
            "Cannot save state.json"
        ]
        rig.stop()


class EchoingSim(FaultySim):
    """An API whose telemetry errors quote the Authorization header (the access token)."""

    echo = 0

    def handle(self, method: str, path: str, authorization: str | None, body: bytes) -> SimResponse:
        if self.echo > 0 and b"smartMeterTelemetry" in body and authorization:
            self.echo -= 1
            message = f"Unable to process request for token {authorization}; retry later."
            error = {"message": message, "extensions": {"errorCode": "KT-CT-9999"}}
            payload = {"errors": [error], "data": {"smartMeterTelemetry": None}}
            return SimResponse(200, json.dumps(payload).encode())
        return super().handle(method, path, authorization, body)


def test_an_api_echoing_the_access_token_leaves_no_secret_on_disk_or_in_status(
    tmp_path: Path,
) -> None:
    sim = EchoingSim(rate_limit_per_hour=200)
    with SimServer(sim) as server:
        rig = make_rig(tmp_path, sim, server)
        monitor = rig.start()
        rig.cycles(2)
        sim.echo = 4
        failed = rig.cycles(4)
        assert all(r.outcome != OK for r in failed)
        assert failed[-1].error is not None
        assert "Unable to process request for token" in failed[-1].error.message
        refresh = monitor.client.refresh_token
        raw = failed[-1].error.message
        echoed = [t for t in sim.issued_secrets() if t in raw]
        rig.stop()  # status.json is written last at the stop

    cache_dir = tmp_path / "cache"
    tokens = [t for t in sim.issued_secrets() if t != refresh]
    assert echoed and set(echoed) <= set(tokens)  # the server's text did quote the token
    status_text = (cache_dir / "status.json").read_text()
    assert "Unable to process request for token" in status_text  # the message is kept ...
    outputs = {}
    for level in ("info", "debug"):
        for args in (["status"], ["status", "--json"]):
            result = invoke(*args, env={"CACHE_DIR": str(cache_dir), "LOG_LEVEL": level})
            outputs[f"{level} {' '.join(args)}"] = result.output
    assert "Unable to process request" in outputs["debug status --json"]
    for path in [p for p in cache_dir.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        for secret in [*tokens, sim.api_key]:  # ... but no access token, nor the key
            assert secret.encode() not in data, path.name
            assert secret[-12:].encode() not in data, path.name
        if path.name not in ("state.json", "state.journal"):  # the refresh token: 0600 only
            assert refresh is None or refresh.encode() not in data, path.name
    for name, text in outputs.items():
        for secret in [*tokens, sim.api_key, refresh or "-" * 20]:
            assert secret[-12:] not in text, name
    assert os.stat(cache_dir / "status.json").st_mode & 0o777 == 0o600
