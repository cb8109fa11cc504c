"""`octomon run --once` and `octomon run --demo`: exit codes and what a user sees."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from octomon.cli import app
from octomon.sim import SimHomeMini, SimServer
from octomon.state import StateStore
from tests.helpers.daemon import OCTOMON, compare_db, daemon_env, expected
from tests.helpers.services import VictoriaMetrics
from tests.helpers.sim_faults import FaultySim

runner = CliRunner()


@pytest.fixture
def sim() -> Iterator[tuple[SimHomeMini, SimServer]]:
    sim = FaultySim()
    with SimServer(sim) as server:
        yield sim, server


def once(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["run", "--once"], env=env)


@pytest.mark.integration
def test_once_stores_a_window_and_exits_0(
    tmp_path: Path, victoria: VictoriaMetrics, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    env = daemon_env(
        sim=the_sim, api_url=server.url, cache_dir=tmp_path / "cache", influx_url=victoria.url
    )
    result = once(env)
    assert result.exit_code == 0, result.output
    match = re.search(r"stored (\d+) readings", result.output)
    assert match and int(match.group(1)) > 300, result.output
    assert "mode influxdb" in result.output
    compare_db(victoria, expected(the_sim), fields=("demand", "consumption"))
    state = StateStore(tmp_path / "cache").load()
    assert state.cursor == max(expected(the_sim))
    assert state.device_id == the_sim.device_id
    again = once(env)  # nothing new (or a reading or two): still 0
    assert again.exit_code == 0, again.output
    assert "API calls" in again.output


@pytest.mark.integration
def test_once_exits_1_when_the_cycle_fails(
    tmp_path: Path, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    the_sim.service_errors = 10
    env = daemon_env(sim=the_sim, api_url=server.url, cache_dir=tmp_path / "cache")
    result = once(env)
    assert result.exit_code == 1, result.output
    assert result.output.count("error: ") == 1
    assert "Octopus API" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_once_exits_2_when_the_key_is_refused(
    tmp_path: Path, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    env = daemon_env(sim=the_sim, api_url=server.url, cache_dir=tmp_path / "cache")
    env["OCTOPUS_API_KEY"] = "sk_live_wrongwrongwrongwrong1234"
    result = once(env)
    assert result.exit_code == 2, result.output
    assert "error: authentication failed" in result.output
    assert "sk_live_wrongwrongwrongwrong1234" not in result.output
    assert "Traceback" not in result.output


def test_run_with_bad_config_exits_2_naming_every_problem(tmp_path: Path) -> None:
    env = {"POLL_INTERVAL_SECONDS": "0", "CACHE_DIR": str(tmp_path / "cache")}
    result = runner.invoke(app, ["run"], env=env)
    assert result.exit_code == 2
    assert "OCTOPUS_API_KEY is required" in result.output
    assert "POLL_INTERVAL_SECONDS='0'" in result.output
    assert not (tmp_path / "cache").exists()


@pytest.mark.integration
def test_daemon_refused_key_alerts_and_exits_2(
    tmp_path: Path, sim: tuple[SimHomeMini, SimServer]
) -> None:
    the_sim, server = sim
    env = daemon_env(sim=the_sim, api_url=server.url, cache_dir=tmp_path / "cache")
    env["OCTOPUS_API_KEY"] = "sk_live_wrongwrongwrongwrong1234"
    out = subprocess.run(
        [OCTOMON, "run"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "alert: Octopus API key refused" in out.stderr
    assert "error: authentication failed" in out.stderr
    assert len(the_sim.calls) == 1  # no tight retry loop on a refused key
    assert "sk_live_wrongwrongwrongwrong1234" not in out.stdout + out.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_demo_shows_readings_at_once_and_exits_0_on_sigterm_leaving_nothing(
    tmp_path: Path,
) -> None:
    cwd = tmp_path / "cwd-demo"
    cwd.mkdir()
    (cwd / ".env").write_text("OCTOPUS_API_KEY=sk_live_from_dotenv_must_be_ignored\n")
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"), INFLUXDB_URL="http://x:1")
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(
        [OCTOMON, "run", "--demo"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    began = time.monotonic()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if re.search(r"stored [1-9]\d* readings", line):
                break
            if time.monotonic() - began > 15:
                break
        shown = time.monotonic() - began
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert shown < 15, output
    assert proc.returncode == 0, output
    assert "octomon demo" in output and "simulated Home Mini" in output
    assert "mode local" in output
    # Off a terminal (a pipe, as `make demo | cat`), each cycle's line names the newest
    # reading: its time and its demand in kW (SPEC §4.8).
    stored = [line for line in lines if re.search(r"stored [1-9]\d* readings", line)]
    assert stored, output
    assert re.search(
        r"stored \d+ readings; newest reading \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \d+\.\d{3} kW;",
        stored[0],
    ), stored[0]
    assert "from_dotenv" not in output
    assert sorted(p.name for p in cwd.iterdir()) == [".env"]  # nothing written here
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary cache is gone
