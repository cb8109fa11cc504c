"""The `configure` wizard, driven through its real questionary prompts.

prompt_toolkit draws into a fake terminal (a VT100 output writing to memory) and reads
keys from a pipe. A feeder thread plays a script of (text to wait for, keys to type):
it types only once the prompt it answers is on the screen, so a validation message is
really shown before the correction is typed. The wizard runs in the main thread, as it
does for a user.
"""

from __future__ import annotations

import io
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output
from rich.console import Console
from typer.testing import CliRunner

from octomon import config
from octomon.cli import app
from octomon.cli.wizard import API_ACCESS_URL, ConnectionTests, run_wizard
from octomon.config import Settings
from octomon.envfile import EnvFile
from octomon.errors import AuthError, InfluxUnavailable
from tests.helpers.services import VictoriaMetrics, free_port

KEY = "sk_live_abcdefghijklmnopqrstuvwx1234"
KEY2 = "sk_live_zyxwvutsrqponmlkjihgfedc9876"
TOKEN = "influx-token-0123456789abcdefSECRET"
HOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"

ENTER, DOWN, CTRL_C, CLEAR = "\r", "\x1b[B", "\x03", "\x15"  # CLEAR: Ctrl-U, empty the line

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def squash(text: str) -> str:
    """Screen text without escape sequences or whitespace (the renderer skips blanks)."""
    return re.sub(r"\s+", "", _ANSI.sub("", text))


class Screen:
    """Where prompt_toolkit draws; the feeder waits here for a prompt to appear."""

    encoding = "utf-8"

    def __init__(self) -> None:
        self._raw: list[str] = []
        self._cond = threading.Condition()
        self._pos = 0

    def write(self, data: str) -> int:
        with self._cond:
            self._raw.append(data)
            self._cond.notify_all()
        return len(data)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._cond:
            return _ANSI.sub("", "".join(self._raw))

    def expect(self, needle: str, timeout: float = 10.0) -> None:
        """Wait until ``needle`` appears after the previous match."""
        target = squash(needle)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = squash("".join(self._raw)).find(target, self._pos)
                if found >= 0:
                    self._pos = found + len(target)
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the screen never showed {needle!r}")
                self._cond.wait(left)


Step = tuple[str, str]


@dataclass
class Run:
    code: int
    screen: str
    said: str


@dataclass
class FakeTests:
    """Connection tests that record what they were given and answer from a script."""

    results: dict[str, list[Exception | str]] = field(default_factory=dict)
    seen: dict[str, list[Settings]] = field(default_factory=dict)

    def _run(self, name: str, settings: Settings) -> str:
        self.seen.setdefault(name, []).append(settings)
        queue = self.results.get(name) or [f"{name} fine"]
        result = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(result, Exception):
            raise result
        return result

    def tests(self) -> ConnectionTests:
        return ConnectionTests(
            octopus=lambda s: self._run("octopus", s),
            influx=lambda s: self._run("influx", s),
            slack=lambda s: self._run("slack", s),
        )


def drive(
    steps: list[Step],
    env_path: Path = Path(".env"),
    preset: dict[str, str] | None = None,
    tests: ConnectionTests | None = None,
    environ: dict[str, str] | None = None,
    wizard: Callable[..., int] = run_wizard,
) -> Run:
    """Run the wizard with ``steps`` typed into it; fail clearly if it goes off-script."""
    screen = Screen()
    output = Vt100_Output(
        screen,
        lambda: Size(rows=40, columns=100),
        term="xterm",
        enable_cpr=False,
    )
    said = io.StringIO()
    problems: list[BaseException] = []
    finished = threading.Event()
    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=output):

        def feed() -> None:
            try:
                for expected, keys in steps:
                    screen.expect(expected)
                    keyboard.send_text(keys)
                if not finished.wait(10):
                    raise AssertionError("the wizard still waits for input after the script")
            except BaseException as exc:
                problems.append(exc)
                keyboard.close()  # EOF: the wizard stops instead of hanging the test

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            code = wizard(
                EnvFile.read(env_path),
                preset or {},
                tests=tests or FakeTests().tests(),
                console=Console(file=said, width=100, color_system=None),
                environ=environ if environ is not None else {},
            )
        finally:
            finished.set()
            feeder.join(15)
    if problems:
        raise AssertionError(
            f"{problems[0]}\n--- screen ---\n{screen.text()}\n--- said ---\n{said.getvalue()}"
        )
    return Run(code, screen.text(), said.getvalue())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_happy_path_fresh_file() -> None:
    fake = FakeTests()
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "a-1234abcd" + ENTER),
            ("Test the Octopus API now?", "y"),
            ("Send readings to InfluxDB now?", ENTER),  # "Yes, to InfluxDB"
            ("InfluxDB URL", CLEAR + "http://127.0.0.1:8428" + ENTER),
            ("InfluxDB token", TOKEN + ENTER),
            ("Organisation", "home" + ENTER),
            ("Bucket", ENTER),  # the default, octopus_energy
            ("Test InfluxDB now?", "y"),
            ("Send alerts to Slack?", "y"),
            ("Slack webhook URL", HOOK + ENTER),
            ("Send a test message now?", "y"),
            ("Seconds between polls", CLEAR + "120" + ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ],
        tests=fake.tests(),
    )
    assert run.code == 0, run.said
    env = Path(".env")
    assert mode(env) == 0o600
    assert config.read_env_file(env) == {
        "OCTOPUS_API_KEY": KEY,
        "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
        "INFLUXDB_URL": "http://127.0.0.1:8428",
        "INFLUXDB_TOKEN": TOKEN,
        "INFLUXDB_ORG": "home",
        "INFLUXDB_BUCKET": "octopus_energy",
        "SLACK_WEBHOOK_URL": HOOK,
        "POLL_INTERVAL_SECONDS": "120",
        "CACHE_DIR": "./cache",
    }
    # each connection test got the answers just typed
    assert fake.seen["octopus"][0].octopus_api_key == KEY
    assert fake.seen["octopus"][0].octopus_account_number == "A-1234ABCD"
    assert fake.seen["influx"][0].influxdb_token == TOKEN
    assert fake.seen["slack"][0].slack_webhook_url == HOOK
    assert "Octopus: ok — octopus fine" in run.said
    assert "InfluxDB: ok — influx fine" in run.said
    assert "Slack: ok — slack fine" in run.said
    # the help the issue asks for, and no secret ever on screen or in the summary
    assert API_ACCESS_URL in run.said
    assert "at the top of the dashboard" in run.said and "bills" in run.said
    for secret in (KEY, TOKEN, "XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert secret not in run.screen and secret not in run.said
    assert "sk_l…1234" in run.said and "https://hooks.slack.com/…" in run.said
    assert "Wrote .env (mode 0600)." in run.said
    # and what it wrote is a valid configuration
    result = CliRunner().invoke(app, ["verify-config"])
    assert result.exit_code == 0, result.output


def test_invalid_account_number_is_corrected_at_the_prompt() -> None:
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "B-12" + ENTER),
            ("must be A- followed by 8 letters or digits, e.g. A-1234ABCD", CLEAR + "A-9876ZYXW"),
            ("A-9876ZYXW", ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", DOWN + ENTER),  # keep readings locally
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ]
    )
    assert run.code == 0, run.said
    values = config.read_env_file(Path(".env"))
    assert values["OCTOPUS_ACCOUNT_NUMBER"] == "A-9876ZYXW"
    assert values["INFLUXDB_URL"] == "" and values["SLACK_WEBHOOK_URL"] == ""
    assert "Local mode" in run.said
    assert "note: INFLUXDB_URL is not set: local mode" in run.said
    assert CliRunner().invoke(app, ["verify-config"]).exit_code == 0


def test_an_empty_secret_is_refused_when_there_is_none_to_keep() -> None:
    run = drive(
        [
            ("Octopus API key", ENTER),
            ("must not be empty", KEY + ENTER),
            ("Account number", CTRL_C),
        ]
    )
    assert run.code == 1


EXISTING = f"""\
# my octomon settings
OCTOPUS_API_KEY={KEY}
OCTOPUS_ACCOUNT_NUMBER=A-1234ABCD

# mine, not octomon's
MY_NOTE="keep me"
INFLUXDB_URL=http://db.local:8086
INFLUXDB_TOKEN={TOKEN}
INFLUXDB_ORG=home
INFLUXDB_BUCKET=power
export SLACK_WEBHOOK_URL={HOOK}
LOG_LEVEL=debug
POLL_INTERVAL_SECONDS=90
"""


START = [("Octopus API key", KEY + ENTER), ("Account number", ENTER)]


@pytest.mark.parametrize(
    "steps",
    [
        [("Octopus API key", CTRL_C)],
        [*START, ("Test the Octopus API now?", CTRL_C)],
        [
            *START,
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", DOWN),
            ("» No, keep readings locally", CTRL_C),  # half-way through a select
        ],
        [
            *START,
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", ENTER),
            ("InfluxDB URL", "http://half-typed"),
            ("half-typed", CTRL_C),
        ],
    ],
    ids=["first-prompt", "confirm", "select", "half-typed"],
)
def test_ctrl_c_writes_nothing(steps: list[Step]) -> None:
    env = Path(".env")
    env.write_text(EXISTING)
    env.chmod(0o640)
    before = env.stat().st_mtime_ns
    run = drive(steps)
    assert run.code == 1
    assert "aborted, nothing written" in run.said
    assert "Traceback" not in run.said
    assert env.read_text() == EXISTING and env.stat().st_mtime_ns == before
    assert mode(env) == 0o640
    assert [p.name for p in Path().iterdir()] == [".env"]  # no temp file either


def test_ctrl_c_on_the_write_question_and_no_file_yet() -> None:
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", DOWN + ENTER),
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", CTRL_C),
        ]
    )
    assert run.code == 1
    assert not Path(".env").exists()


def test_answering_no_to_write_writes_nothing() -> None:
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", DOWN + ENTER),
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", "n"),
        ]
    )
    assert run.code == 1 and "nothing written" in run.said
    assert not Path(".env").exists()


def test_defaults_come_from_the_existing_file_and_its_other_lines_stay() -> None:
    env = Path(".env")
    env.write_text(EXISTING)
    run = drive(
        [
            ("Octopus API key (Enter keeps sk_l…1234)", ENTER),
            ("Account number", ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", ENTER),  # default: yes, as the file has a URL
            ("InfluxDB URL", ENTER),
            ("InfluxDB token (Enter keeps infl…CRET)", ENTER),
            ("Organisation", ENTER),
            ("Bucket", ENTER),
            ("Test InfluxDB now?", "n"),
            ("Send alerts to Slack?", ENTER),  # default: yes, as the file has a webhook
            ("Slack webhook URL (Enter keeps https://hooks.slack.com/…)", ENTER),
            ("Send a test message now?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ]
    )
    assert run.code == 0, run.said
    # the defaults were shown pre-filled (non-secrets) and masked (secrets)
    for shown in ("A-1234ABCD", "http://db.local:8086", "home", "power", "90"):
        assert shown in run.screen
    for secret in (KEY, TOKEN, "XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert secret not in run.screen
    # same values, comments, unknown lines, order and `export`; only CACHE_DIR is new
    assert env.read_text() == EXISTING + "# Where readings wait for InfluxDB\nCACHE_DIR=./cache\n"
    assert mode(env) == 0o600


def test_a_failed_test_can_be_reentered_or_kept() -> None:
    fake = FakeTests(
        results={
            "octopus": [AuthError("API key refused", "check OCTOPUS_API_KEY"), "device 1"],
            "influx": [InfluxUnavailable("InfluxDB is not reachable")],
        }
    )
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "y"),
            ("What now?", ENTER),  # Re-enter these answers
            ("Octopus API key (Enter keeps sk_l…1234)", KEY2 + ENTER),
            ("Account number", ENTER),
            ("Test the Octopus API now?", "y"),
            ("Send readings to InfluxDB now?", ENTER),
            ("InfluxDB URL", CLEAR + "http://127.0.0.1:1" + ENTER),
            ("InfluxDB token", TOKEN + ENTER),
            ("Organisation", "home" + ENTER),
            ("Bucket", ENTER),
            ("Test InfluxDB now?", "y"),
            ("What now?", DOWN),  # Test again
            ("Test again", ENTER),
            ("What now?", DOWN + DOWN + ENTER),  # Keep them and go on
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ],
        tests=fake.tests(),
    )
    assert run.code == 0, run.said
    assert "Octopus: failed — API key refused — check OCTOPUS_API_KEY" in run.said
    assert "Octopus: ok — device 1" in run.said
    assert [s.octopus_api_key for s in fake.seen["octopus"]] == [KEY, KEY2]
    assert len(fake.seen["influx"]) == 2  # the first test and "Test again"
    assert run.said.count("InfluxDB: failed — InfluxDB is not reachable") == 2
    values = config.read_env_file(Path(".env"))
    assert values["OCTOPUS_API_KEY"] == KEY2
    assert values["INFLUXDB_URL"] == "http://127.0.0.1:1"  # kept despite the failed test


def test_flags_pre_answer_their_questions() -> None:
    run = drive(
        [
            ("Test the Octopus API now?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ],
        preset={
            "OCTOPUS_API_KEY": KEY,
            "OCTOPUS_ACCOUNT_NUMBER": "A-1234ABCD",
            "INFLUXDB_URL": "",
            "SLACK_WEBHOOK_URL": "",
        },
    )
    assert run.code == 0, run.said
    assert "Octopus API key" not in run.screen and "Account number" not in run.screen
    assert "Send readings to InfluxDB now?" not in run.screen
    values = config.read_env_file(Path(".env"))
    assert values["OCTOPUS_API_KEY"] == KEY and values["INFLUXDB_URL"] == ""


def test_the_environment_reaches_the_connection_test_and_is_pointed_out() -> None:
    fake = FakeTests()
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "y"),
            ("Send readings to InfluxDB now?", DOWN + ENTER),
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ],
        tests=fake.tests(),
        environ={"OCTOPUS_API_URL": "http://127.0.0.1:9/graphql/", "OCTOPUS_API_KEY": KEY2},
    )
    assert run.code == 0
    used = fake.seen["octopus"][0]
    assert used.octopus_api_url == "http://127.0.0.1:9/graphql/"  # honoured, as run would
    assert used.octopus_api_key == KEY  # the answer is what is being tested
    assert "Testing Octopus at http://127.0.0.1:9/graphql/ (OCTOPUS_API_URL)…" in run.said
    assert "OCTOPUS_API_KEY is also set in your environment, and wins over .env" in run.said


@pytest.mark.integration
def test_real_connection_tests_against_the_simulator_and_a_loopback_slack() -> None:
    """The default connection tests: octopus.check over HTTP, slack.send_test to a webhook."""
    from octomon.sim import DEFAULT_ACCOUNT, DEFAULT_API_KEY, SimServer
    from tests.helpers.slack_server import SlackWebhookServer

    with SimServer() as sim, SlackWebhookServer() as slack:
        hook = slack.webhook_url("s3cr3tPATHs3cr3t")
        run = drive(
            [
                ("Octopus API key", "sk_live_wrong_wrong_wrong_0000" + ENTER),
                ("Account number", DEFAULT_ACCOUNT + ENTER),
                ("Test the Octopus API now?", "y"),
                ("What now?", ENTER),  # Re-enter these answers
                ("Octopus API key (Enter keeps sk_l…0000)", DEFAULT_API_KEY + ENTER),
                ("Account number", ENTER),
                ("Test the Octopus API now?", "y"),
                ("Send readings to InfluxDB now?", DOWN + ENTER),
                ("Send alerts to Slack?", "y"),
                ("Slack webhook URL", hook + ENTER),
                ("Send a test message now?", "y"),
                ("Seconds between polls", ENTER),
                ("Cache directory", ENTER),
                ("Write .env?", ENTER),
            ],
            tests=ConnectionTests(),  # the real ones
            environ={"OCTOPUS_API_URL": sim.url},
        )
        posts = slack.wait_for_posts(1)
    assert run.code == 0, run.said
    assert "Octopus: failed — " in run.said
    assert re.search(r"Octopus: ok — device 00-11-22-33-44-55-66-77, latest reading \S+Z", run.said)
    assert "Slack: ok — test message sent" in run.said
    assert "octomon test message" in posts[0].body.decode()
    assert "s3cr3tPATHs3cr3t" not in run.said and "s3cr3tPATHs3cr3t" not in run.screen
    assert config.read_env_file(Path(".env"))["OCTOPUS_API_KEY"] == DEFAULT_API_KEY


def test_an_interval_over_the_call_budget_is_pointed_out_and_can_be_changed() -> None:
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", DOWN + ENTER),
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", CLEAR + "30" + ENTER),
            ("Keep this interval?", ENTER),  # default: no
            ("Seconds between polls: 30", CLEAR + "90" + ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ]
    )
    assert run.code == 0, run.said
    assert "note: POLL_INTERVAL_SECONDS=30 needs about 122 API calls an hour" in run.said
    assert config.read_env_file(Path(".env"))["POLL_INTERVAL_SECONDS"] == "90"


@pytest.mark.integration
def test_real_influxdb_test_fails_on_a_dead_port_then_passes_on_victoria_metrics(
    victoria: VictoriaMetrics,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run = drive(
        [
            ("Octopus API key", KEY + ENTER),
            ("Account number", "A-1234ABCD" + ENTER),
            ("Test the Octopus API now?", "n"),
            ("Send readings to InfluxDB now?", ENTER),
            ("InfluxDB URL", CLEAR + dead + ENTER),
            ("InfluxDB token", TOKEN + ENTER),
            ("Organisation", "home" + ENTER),
            ("Bucket", ENTER),
            ("Test InfluxDB now?", "y"),
            ("What now?", ENTER),  # Re-enter these answers
            ("Send readings to InfluxDB now?", ENTER),  # asked again: local mode is a way out
            ("InfluxDB URL", CLEAR + victoria.url + ENTER),
            ("InfluxDB token (Enter keeps infl…CRET)", ENTER),
            ("Organisation", ENTER),
            ("Bucket", ENTER),
            ("Test InfluxDB now?", "y"),
            ("Send alerts to Slack?", "n"),
            ("Seconds between polls", ENTER),
            ("Cache directory", ENTER),
            ("Write .env?", ENTER),
        ],
        tests=ConnectionTests(),
    )
    assert run.code == 0, run.said
    assert f"InfluxDB: failed — cannot reach InfluxDB at {dead}" in run.said
    assert "InfluxDB: ok — reachable" in run.said
    values = config.read_env_file(Path(".env"))
    assert values["INFLUXDB_URL"] == victoria.url and values["INFLUXDB_TOKEN"] == TOKEN
    assert TOKEN not in run.said and TOKEN not in run.screen
