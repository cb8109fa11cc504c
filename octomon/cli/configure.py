"""`octomon configure`: the command around the wizard, and its flag-only form.

Every question of the wizard (:mod:`octomon.cli.wizard`) has a flag. Flags are checked
first (exit 2 naming every bad one); with `--non-interactive` the flags and the existing
file's values are all there is (exit 2 naming everything missing or invalid); otherwise
the flags pre-answer their questions and the wizard asks the rest, on a terminal only.
"""

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from octomon import logs
from octomon.cli import ui
from octomon.config import FIELDS
from octomon.errors import ConfigError, ExitCode

# The flag that pre-answers each question (SPEC §2 spelling; --poll-interval-seconds too).
FLAGS: dict[str, str] = {
    "OCTOPUS_API_KEY": "--octopus-api-key",
    "OCTOPUS_ACCOUNT_NUMBER": "--octopus-account-number",
    "INFLUXDB_URL": "--influxdb-url",
    "INFLUXDB_TOKEN": "--influxdb-token",
    "INFLUXDB_ORG": "--influxdb-org",
    "INFLUXDB_BUCKET": "--influxdb-bucket",
    "SLACK_WEBHOOK_URL": "--slack-webhook-url",
    "POLL_INTERVAL_SECONDS": "--poll-interval",
    "CACHE_DIR": "--cache-dir",
}
REQUIRED = ("OCTOPUS_API_KEY", "OCTOPUS_ACCOUNT_NUMBER")
NEEDED_WITH_INFLUX = ("INFLUXDB_TOKEN", "INFLUXDB_ORG")
FLAG_HINT = "pass the missing or corrected values as flags (`octomon configure --help`)"


def _shown(name: str, raw: str) -> str:
    f = FIELDS[name]
    return f.display(raw) if f.secret else raw


def check_given(
    values: Mapping[str, str], where: Callable[[str], str]
) -> tuple[dict[str, str], list[str]]:
    """Normalise ``values``; an empty optional one means "not set". Returns (values, problems)."""
    from octomon.cli.wizard import normalise

    good: dict[str, str] = {}
    problems: list[str] = []
    for name in FLAGS:
        if name not in values:
            continue
        raw = values[name]
        if raw.strip() == "" and FIELDS[name].default is None and name not in REQUIRED:
            good[name] = ""
            continue
        try:
            good[name] = normalise(name, raw)
        except ValueError as exc:
            problems.append(f"{name}={_shown(name, raw)!r} ({where(name)}): {exc}")
    return good, problems


def _file_backed(env_values: Mapping[str, str]) -> dict[str, str]:
    """{secret: its NAME_FILE path} for the secrets given as files (environment or .env)."""
    out = {}
    for name, f in FIELDS.items():
        pointer = os.environ.get(f"{name}_FILE") or env_values.get(f"{name}_FILE")
        if f.secret and pointer:
            out[name] = pointer
    return out


def check_complete(values: Mapping[str, str], problems: list[str]) -> list[str]:
    """Every required setting that is still missing from ``values``."""
    named = {p.split("=", 1)[0] for p in problems}
    missing = []
    for name in REQUIRED:
        if not values.get(name) and name not in named:
            missing.append(f"{name} is required ({FLAGS[name]})")
    if values.get("INFLUXDB_URL"):
        for name in NEEDED_WITH_INFLUX:
            if not values.get(name) and name not in named:
                missing.append(f"{name} is needed with INFLUXDB_URL ({FLAGS[name]})")
    return missing


METAVARS = {  # the placeholder --help shows for each flag's value
    "OCTOPUS_API_KEY": "KEY",
    "OCTOPUS_ACCOUNT_NUMBER": "A-NUMBER",
    "INFLUXDB_URL": "URL",
    "INFLUXDB_TOKEN": "TOKEN",
    "INFLUXDB_ORG": "ORG",
    "INFLUXDB_BUCKET": "BUCKET",
    "SLACK_WEBHOOK_URL": "URL",
    "POLL_INTERVAL_SECONDS": "SECONDS",
    "CACHE_DIR": "PATH",
}


def _flag(name: str, *decls: str, hidden: bool = False) -> Any:
    f = FIELDS[name]
    text = f.help[:1].upper() + f.help[1:] + (" (secret)" if f.secret else "") + "."
    return typer.Option(
        *decls, help=text, show_default=False, metavar=METAVARS[name], hidden=hidden
    )


def register(app: typer.Typer, only: str | None = None) -> None:
    ui.command(app, "configure")(configure)


def configure(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    octopus_api_key: Annotated[str | None, _flag("OCTOPUS_API_KEY", "--octopus-api-key")] = None,
    octopus_account_number: Annotated[
        str | None, _flag("OCTOPUS_ACCOUNT_NUMBER", "--octopus-account-number")
    ] = None,
    influxdb_url: Annotated[str | None, _flag("INFLUXDB_URL", "--influxdb-url")] = None,
    influxdb_token: Annotated[str | None, _flag("INFLUXDB_TOKEN", "--influxdb-token")] = None,
    influxdb_org: Annotated[str | None, _flag("INFLUXDB_ORG", "--influxdb-org")] = None,
    influxdb_bucket: Annotated[str | None, _flag("INFLUXDB_BUCKET", "--influxdb-bucket")] = None,
    slack_webhook_url: Annotated[
        str | None, _flag("SLACK_WEBHOOK_URL", "--slack-webhook-url")
    ] = None,
    poll_interval: Annotated[str | None, _flag("POLL_INTERVAL_SECONDS", "--poll-interval")] = None,
    poll_interval_long: Annotated[  # the variable's own spelling: works, not listed (80 cols)
        str | None, _flag("POLL_INTERVAL_SECONDS", "--poll-interval-seconds", hidden=True)
    ] = None,
    cache_dir: Annotated[str | None, _flag("CACHE_DIR", "--cache-dir")] = None,
    non_interactive: Annotated[
        bool,
        typer.Option(
            "--non-interactive",
            help="Ask nothing: take the flags (and the existing file's values), write, exit.",
        ),
    ] = False,
) -> None:
    """Ask for the settings (or take them as flags) and write .env, mode 0600."""
    from octomon.cli.wizard import register_secret, run_wizard
    from octomon.envfile import EnvFile

    level = ui.early_log_level()
    logs.setup("debug" if level == "debug" else "warning")  # INFO chatter is the daemon's
    given = {
        "OCTOPUS_API_KEY": octopus_api_key,
        "OCTOPUS_ACCOUNT_NUMBER": octopus_account_number,
        "INFLUXDB_URL": influxdb_url,
        "INFLUXDB_TOKEN": influxdb_token,
        "INFLUXDB_ORG": influxdb_org,
        "INFLUXDB_BUCKET": influxdb_bucket,
        "SLACK_WEBHOOK_URL": slack_webhook_url,
        "POLL_INTERVAL_SECONDS": poll_interval if poll_interval is not None else poll_interval_long,
        "CACHE_DIR": cache_dir,
    }
    flags = {name: value for name, value in given.items() if value is not None}
    for name, value in flags.items():
        register_secret(name, value)

    path = env_file or ui.global_env_file(ctx) or Path(".env")
    try:
        env = EnvFile.read(path)
    except (OSError, UnicodeDecodeError) as exc:
        ui.fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    checked, problems = check_given(flags, lambda name: FLAGS[name])
    from_files = _file_backed(env.values())  # SPEC §2: NAME_FILE is left alone
    problems += [
        f"{name} comes from {name}_FILE: leave out {FLAGS[name]}, or remove {name}_FILE"
        for name in flags
        if name in from_files
    ]

    if non_interactive:
        from_file, file_problems = check_given(
            {k: v for k, v in env.values().items() if k in FLAGS and k not in flags},
            lambda name: f"from {path}",
        )
        problems += file_problems
        problems += check_complete({**from_file, **checked, **from_files}, problems)
        if problems:
            raise ConfigError(problems, FLAG_HINT)
        if not checked:
            ui.console.print(f"Nothing to change in {path}.")
            return
        for name, value in checked.items():
            help_text = FIELDS[name].help
            env.set(name, value, help_text[:1].upper() + help_text[1:])
        try:
            env.write(path)
        except OSError as exc:
            ui.fail(f"cannot write {path}: {exc.strerror or exc}")
        ui.console.print(f"Wrote {path} (mode 0600): " + ", ".join(checked) + ".")
        return

    if problems:
        raise ConfigError(problems, FLAG_HINT)
    if not sys.stdin.isatty():
        ui.fail(
            "configure asks its questions on a terminal, and stdin is not one",
            "give the settings as flags with --non-interactive (see `octomon configure --help`)",
            ExitCode.CONFIG,
        )
    raise typer.Exit(run_wizard(env, checked))
