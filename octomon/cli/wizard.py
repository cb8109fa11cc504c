"""The questions of `octomon configure`, asked with questionary, and the tests between them.

UI only: :mod:`octomon.cli.configure` is the command around it, :mod:`octomon.envfile`
reads and writes the file, and every answer is checked with the same
``config.FIELDS[name].parse`` that ``config.load`` uses, so the wizard never accepts what
`verify-config` would refuse. questionary is imported inside the prompts, so importing this
module stays cheap.

For tests, :func:`run_wizard` takes the connection tests, the console and the environment
as arguments; the prompts read from prompt_toolkit's current app session (a pipe in tests).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from octomon import config, envfile, redact
from octomon.checks import ConnectionTests as ConnectionTests  # used by the tests
from octomon.cli import ui
from octomon.config import FIELDS, Settings
from octomon.envfile import EnvFile
from octomon.errors import ConfigError, ExitCode, OctomonError

API_ACCESS_URL = "https://octopus.energy/dashboard/new/accounts/personal-details/api-access"
SLACK_WEBHOOK_DOCS = "https://api.slack.com/messaging/webhooks"

# What the wizard asks, in order.
QUESTIONS = (
    "OCTOPUS_API_KEY",
    "OCTOPUS_ACCOUNT_NUMBER",
    "INFLUXDB_URL",
    "INFLUXDB_TOKEN",
    "INFLUXDB_ORG",
    "INFLUXDB_BUCKET",
    "SLACK_WEBHOOK_URL",
    "POLL_INTERVAL_SECONDS",
    "CACHE_DIR",
)


def normalise(name: str, raw: str) -> str:
    """The value to write for ``raw``; raises ``ValueError(rule)`` like ``config.load``."""
    parsed = FIELDS[name].parse(raw)
    value = parsed if isinstance(parsed, str) else raw.strip()
    envfile.check_value(value)
    return value


def register_secret(name: str, value: str) -> None:
    """From now on ``redact.scrub`` masks this value wherever it shows up."""
    kind = FIELDS[name].secret if name in FIELDS else ""
    if kind == "url":
        redact.register_url(value)
    elif kind:
        redact.register(value)


# --- the wizard ---------------------------------------------------------------------


@contextmanager
def _empty_env_file() -> Iterator[Path]:
    """``config.load`` always reads a file; the wizard hands it the values itself."""
    with tempfile.TemporaryDirectory(prefix="octomon-") as tmp:
        empty = Path(tmp) / "empty.env"
        empty.touch()
        yield empty


@dataclass
class Wizard:
    env: EnvFile
    preset: Mapping[str, str] = field(default_factory=dict)
    tests: ConnectionTests = field(default_factory=ConnectionTests)
    console: Console = field(default_factory=lambda: ui.console)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    answers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.existing = self.env.values()
        for name, value in [*self.existing.items(), *self.preset.items()]:
            register_secret(name, value)

    # output

    def say(self, text: str, style: str | None = None) -> None:
        self.console.print(Text(redact.scrub(text), style=style or ""))

    def heading(self, text: str) -> None:
        self.console.print()
        self.say(text, "bold")

    # questions

    def known(self, name: str) -> str | None:
        """This run's answer, else the .env value, if it is valid."""
        value = self.answers.get(name, self.existing.get(name))
        if not value:
            return None
        try:
            normalise(name, value)
        except ValueError:
            return value if not FIELDS[name].secret else None
        return value

    def validator(self, name: str, keep: str | None = None) -> Callable[[str], bool | str]:
        def validate(text: str) -> bool | str:
            if text == "" and keep:
                return True
            try:
                normalise(name, text)
            except ValueError as exc:
                return str(exc)
            return True

        return validate

    def ask_secret(self, name: str, label: str, use_preset: bool) -> None:
        import questionary

        if use_preset and name in self.preset:
            self.answers[name] = self.preset[name]
            return
        pointer = self.environ.get(f"{name}_FILE") or self.existing.get(f"{name}_FILE")
        if pointer:  # SPEC §2: a secret from a file is left alone
            self.say(f"{label}: read from {name}_FILE ({pointer}), left as it is")
            return
        keep = self.known(name)
        hint = f" (Enter keeps {FIELDS[name].display(keep)})" if keep else ""
        answer = questionary.password(
            f"{label}{hint}:", validate=self.validator(name, keep)
        ).unsafe_ask()
        self.answers[name] = keep if (answer == "" and keep) else normalise(name, answer)
        register_secret(name, self.answers[name])

    def ask_text(self, name: str, label: str, use_preset: bool, suggestion: str = "") -> None:
        import questionary

        if use_preset and name in self.preset:
            self.answers[name] = self.preset[name]
            return
        default = self.known(name) or suggestion or FIELDS[name].default or ""
        answer = questionary.text(
            f"{label}:", default=default, validate=self.validator(name)
        ).unsafe_ask()
        self.answers[name] = normalise(name, answer)

    def confirm(self, question: str, default: bool = True) -> bool:
        import questionary

        return bool(questionary.confirm(question, default=default).unsafe_ask())

    def choose(self, question: str, choices: list[tuple[str, str]], default: str) -> str:
        import questionary

        options = [questionary.Choice(title, value) for title, value in choices]
        chosen = next(o for o in options if o.value == default)
        return str(questionary.select(question, choices=options, default=chosen).unsafe_ask())

    # settings as octomon would load them with these answers

    def settings(self, groups: list[str]) -> Settings:
        """Answers over the environment over the current .env, through ``config.load``.

        The environment is honoured (e.g. OCTOPUS_API_URL for a test server) the way the
        monitor will honour it; this run's answers are what the test is about, so they
        win over it.
        """
        environ = {**self.existing, **self.environ}
        with _empty_env_file() as empty:
            return config.load(groups=groups, env_file=empty, flags=self.answers, environ=environ)

    # connection tests

    def offer_test(
        self, label: str, group: str, run: Callable[[Settings], str], question: str
    ) -> bool:
        """Test right after a group's answers. False: the user wants to re-enter them."""
        if not self.confirm(question):
            return True
        while True:
            if self.run_test(label, group, run):
                return True
            choice = self.choose(
                "What now?",
                [
                    ("Re-enter these answers", "again"),
                    ("Test again", "retry"),
                    ("Keep them and go on", "keep"),
                ],
                default="again",
            )
            if choice != "retry":
                return choice == "keep"

    def run_test(self, label: str, group: str, run: Callable[[Settings], str]) -> bool:
        try:
            settings = self.settings([group])
        except ConfigError as exc:
            self.say(f"{label}: cannot test — " + "; ".join(exc.problems), "red")
            return False
        where = ""
        if group == "octopus" and settings.octopus_api_url != config.DEFAULT_API_URL:
            where = f" at {settings.octopus_api_url} (OCTOPUS_API_URL)"
        self.say(f"Testing {label}{where}…", "dim")
        try:
            summary = run(settings)
        except OctomonError as exc:
            ui.log.debug("%s test failed", label, exc_info=True)
            hint = f" — {exc.hint}" if exc.hint else ""
            self.say(f"{label}: failed — {exc.message}{hint}", "red")
            return False
        self.say(f"{label}: ok — {summary}", "green")
        return True

    # the groups

    def octopus(self) -> None:
        self.heading("Octopus (1 of 4)")
        self.say("Your API key is on the API-access page of your Octopus dashboard:")
        self.say(f"  {API_ACCESS_URL}")
        self.say("Your account number (A-XXXXXXXX) is at the top of the dashboard")
        self.say("and on your bills.")
        first = True
        while True:
            self.ask_secret("OCTOPUS_API_KEY", "Octopus API key", first)
            if not self.answers["OCTOPUS_API_KEY"].startswith("sk_live_"):
                self.say("note: Octopus API keys usually start with sk_live_", "yellow")
            self.ask_text("OCTOPUS_ACCOUNT_NUMBER", "Account number", first)
            if self.offer_test(
                "Octopus", "octopus", self.tests.octopus, "Test the Octopus API now?"
            ):
                return
            first = False

    def influx(self) -> None:
        self.heading("InfluxDB (2 of 4)")
        self.say("Readings go to InfluxDB 2.x (or 1.8+, 3.x, VictoriaMetrics).")
        self.say("Without it they are kept in the local cache; `octomon sync-cache`")
        self.say("sends them later.")
        first = True
        while True:
            if first and "INFLUXDB_URL" in self.preset:
                use = self.preset["INFLUXDB_URL"] != ""
            else:
                had = bool(self.known("INFLUXDB_URL")) or not self.env.existed
                use = (
                    self.choose(
                        "Send readings to InfluxDB now?",
                        [("Yes, to InfluxDB", "yes"), ("No, keep readings locally for now", "no")],
                        default="yes" if had else "no",
                    )
                    == "yes"
                )
            if not use:
                self.answers["INFLUXDB_URL"] = ""
                self.say("Local mode: readings wait in the cache until INFLUXDB_URL is set.")
                return
            self.ask_text("INFLUXDB_URL", "InfluxDB URL", first, "http://localhost:8086")
            self.ask_secret("INFLUXDB_TOKEN", "InfluxDB token", first)
            self.ask_text("INFLUXDB_ORG", "Organisation", first)
            self.ask_text("INFLUXDB_BUCKET", "Bucket", first)
            if self.offer_test("InfluxDB", "influx", self.tests.influx, "Test InfluxDB now?"):
                return
            first = False

    def slack(self) -> None:
        self.heading("Slack (3 of 4)")
        self.say("Alerts (API key refused, InfluxDB down, readings stuck) can go to a")
        self.say(f"Slack incoming webhook: {SLACK_WEBHOOK_DOCS}")
        first = True
        while True:
            if first and "SLACK_WEBHOOK_URL" in self.preset:
                use = self.preset["SLACK_WEBHOOK_URL"] != ""
            else:
                use = self.confirm("Send alerts to Slack?", bool(self.known("SLACK_WEBHOOK_URL")))
            if not use:
                self.answers["SLACK_WEBHOOK_URL"] = ""
                self.say("Alerts will go to the log only.")
                return
            self.ask_secret("SLACK_WEBHOOK_URL", "Slack webhook URL", first)
            if self.offer_test("Slack", "slack", self.tests.slack, "Send a test message now?"):
                return
            first = False

    def polling(self) -> None:
        self.heading("Polling and cache (4 of 4)")
        self.say("Each poll fetches 10-second readings, so 60 s loses nothing. Octopus")
        self.say("allows about 100 API calls an hour per account, shared with its app.")
        first = True
        while True:
            self.ask_text("POLL_INTERVAL_SECONDS", "Seconds between polls", first)
            first = False
            over = [w for w in self.notes() if w.startswith("POLL_INTERVAL_SECONDS")]
            if not over:
                break
            self.say(f"note: {over[0]}", "yellow")
            if self.confirm("Keep this interval?", default=False):
                break
        self.ask_text("CACHE_DIR", "Cache directory", True)

    def notes(self) -> list[str]:
        """What `verify-config` would warn about (or refuse) with these answers."""
        try:
            return list(self.settings(["all"]).warnings)
        except ConfigError as exc:
            return [f"verify-config will report: {p}" for p in exc.problems]

    def review(self, path: Path) -> bool:
        self.heading(f"To be written to {path}")
        width = max(len(n) for n in self.answers)
        for name in QUESTIONS:
            if name in self.answers:
                shown = FIELDS[name].display(self.answers[name]) or "(not set)"
                self.say(f"  {name:<{width}}  {shown}")
        for note in self.notes():
            self.say(f"note: {note}", "yellow")
        return self.confirm(f"Write {path}?")

    def write(self, path: Path) -> None:
        for name in QUESTIONS:
            if name in self.answers:
                help_text = FIELDS[name].help
                self.env.set(name, self.answers[name], help_text[:1].upper() + help_text[1:])
        self.env.write(path)

    def run(self) -> int:
        """Ask, test, review, write. Returns the exit code (SPEC §1)."""
        path = self.env.path or Path(".env")
        try:
            self.say(f"octomon configure — writes {path}. Ctrl-C stops, writing nothing.")
            self.octopus()
            self.influx()
            self.slack()
            self.polling()
            if not self.review(path):
                self.say("nothing written")
                return ExitCode.FAILED
        except (KeyboardInterrupt, EOFError):
            self.console.print()
            self.say("aborted, nothing written")
            return ExitCode.FAILED
        try:
            self.write(path)
        except OSError as exc:
            self.say(f"error: cannot write {path}: {exc.strerror or exc}", "red")
            return ExitCode.FAILED
        self.say(f"Wrote {path} (mode 0600).", "green")
        for name, value in self.answers.items():
            if name in self.environ and self.environ[name] != value:
                self.say(f"note: {name} is also set in your environment, and wins over {path}")
        self.say("Next: `octomon verify-config --online`, then `octomon run`.")
        return ExitCode.OK


def run_wizard(
    env: EnvFile,
    preset: Mapping[str, str] | None = None,
    *,
    tests: ConnectionTests | None = None,
    console: Console | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The interactive wizard over ``env`` (``env.path`` is written). Returns the exit code."""
    return Wizard(
        env,
        dict(preset or {}),
        tests or ConnectionTests(),
        console or ui.console,
        os.environ if environ is None else environ,
    ).run()
