"""Shared CLI plumbing: consoles, settings loading, and the one error translator.

Every command is registered through :func:`command`, which wraps it so that an
:class:`~octomon.errors.OctomonError` becomes one line on stderr (message and hint,
secrets scrubbed) and its exit code; the traceback goes to the DEBUG log only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand

from octomon import logs, redact
from octomon.errors import ExitCode, OctomonError

if TYPE_CHECKING:
    import threading

    from rich.console import Console

    from octomon.config import Settings

    console: Console
    err_console: Console

log = logging.getLogger("octomon")


def __getattr__(name: str) -> Any:
    """``ui.console`` / ``ui.err_console``, created on first use: importing rich.console
    costs ~30 ms that `octomon --help` and cron-invoked commands should not pay."""
    if name in ("console", "err_console"):
        from rich.console import Console

        made = Console(stderr=name == "err_console", highlight=False)
        globals()[name] = made
        return made
    raise AttributeError(name)


ENV_FILE_HELP = "Settings file to read (default ./.env). The environment wins over it."
EnvFileOption = Annotated[
    Path | None,
    typer.Option("--env-file", metavar="PATH", help=ENV_FILE_HELP, show_default=False),
]

SinceDayOption = Annotated[
    str | None,
    typer.Option("--since", metavar="DATE", help="First UK day (YYYY-MM-DD); default 7 days ago."),
]
UntilDayOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Last UK day (YYYY-MM-DD); default yesterday, or --since when that is today.",
    ),
]


def uk_days(since: str | None, until: str | None, now: datetime) -> tuple[date, date]:
    """``--since``/``--until`` as UK days (:func:`octomon.cli.dates.uk_days`)."""
    from octomon.cli import dates

    return dates.uk_days(since, until, now)


F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, hint: str | None = None, code: int = ExitCode.FAILED) -> NoReturn:
    """Print one clear line (never a traceback) and exit with ``code``."""
    line = f"error: {message}"
    if hint:
        line += f" — {hint}"
    typer.echo(redact.scrub(line), err=True)  # plain text: no rich import on error paths
    raise typer.Exit(int(code))


def warn(message: str) -> None:
    typer.echo(redact.scrub(f"warning: {message}"), err=True)


def translate_errors(func: F) -> F:
    """The single place where exceptions become messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OctomonError as exc:
            log.debug("%s failed", func.__name__, exc_info=True)
            fail(exc.message, exc.hint, exc.exit_code)
        except KeyboardInterrupt:
            log.debug("interrupted", exc_info=True)
            fail("interrupted", None, ExitCode.FAILED)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # the outermost layer: a bug, not an expected failure
            log.debug("unexpected error in %s", func.__name__, exc_info=True)
            fail(
                f"unexpected {type(exc).__name__}: {exc}",
                "run with LOG_LEVEL=debug for details, and please report it",
            )

    return wrapper  # type: ignore[return-value]


class _Command(TyperCommand):
    """Every command lists ``--env-file`` last, just before ``--help``: one place to find it,
    whatever the order of the function's parameters."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        env = [p for p in params if p.name == "env_file"]
        rest = [p for p in params if p.name != "env_file"]
        return rest[:-1] + env + rest[-1:] if env and rest else params


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """``@app.command`` with the error translator around it."""

    def decorate(func: F) -> F:
        app.command(name, cls=_Command, **kwargs)(translate_errors(func))
        return func

    return decorate


def global_env_file(ctx: typer.Context | None) -> Path | None:
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict):
        value = obj.get("env_file")
        return Path(value) if value else None
    return None


def load_settings(
    ctx: typer.Context | None,
    env_file: Path | None,
    groups: Iterable[str],
    *,
    require: Iterable[str] = (),
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    show_warnings: bool = True,
) -> Settings:
    """Resolve settings once for a command and set the log level from them."""
    from octomon.config import load
    from octomon.errors import ConfigError

    path = env_file or global_env_file(ctx)
    try:
        settings = load(groups=groups, env_file=path, flags=flags, environ=environ, require=require)
    except ConfigError as exc:
        if path is None and not Path(".env").exists():
            _no_env_file(exc, Path(".env").absolute())
        raise
    logs.setup(settings.log_level)
    if show_warnings:
        for message in settings.warnings:
            if "OCTOPUS_API_KEY" in message or "POLL_INTERVAL" in message:
                warn(message)
            else:
                log.info("%s", message)
    return settings


def _no_env_file(exc: Any, looked_at: Path) -> None:
    """When settings are missing and there is no .env, say where it was looked for and
    how to make one: that, not the variables, is what a newcomer needs to hear."""
    if any(" is required (" in p for p in exc.problems):
        exc.hint = (
            f"{looked_at} does not exist: run `octomon configure` to write it, "
            "or pass --env-file PATH"
        )


def quiet_info(settings: Settings) -> None:
    """A command that prints its own result logs warnings and errors only (unless
    LOG_LEVEL=debug): INFO lines would say the same thing twice."""
    logs.setup("debug" if settings.log_level == "debug" else "warning")


def early_log_level() -> str:
    """LOG_LEVEL before settings are resolved (so start-up problems are logged too)."""
    level = os.environ.get("LOG_LEVEL", "info").lower()
    return level if level in logs.LEVELS else "info"


def own_command(argv0: str | None = None) -> str:
    """How to run this octomon from another shell, for the commands it suggests: ``octomon``
    when that is what PATH finds, else the full path of the script running (``make demo``
    runs ``.venv/bin/octomon``, which a new terminal does not have on its PATH)."""
    import shlex
    import shutil

    script = Path(argv0 if argv0 is not None else sys.argv[0])
    if script.name == "__main__.py":  # python -m octomon
        return f"{shlex.quote(sys.executable)} -m octomon"
    if script.name != "octomon":
        return "octomon"
    found = shutil.which("octomon")
    if found and Path(found).resolve() == script.resolve():
        return "octomon"
    return shlex.quote(str(script.absolute()))


def print_unpadded(renderable: Any) -> None:
    """Print a rich table; piped, without the spaces rich pads each line with to the
    console's width (a script reading the output gets the text, not the padding)."""
    out: Console = globals().get("console") or __getattr__("console")  # made on first use
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def is_terminal() -> bool:
    return sys.stdout.isatty()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (`run`, `sync-cache`); a second Ctrl-C interrupts."""
    import signal

    def handle(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not stop.is_set():
            log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
