"""`octomon sync-cache` and `octomon cache status|export|requeue`: parse, call, render."""

import enum
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from octomon.cli import ui
from octomon.errors import ExitCode, InfluxRefused
from octomon.readings import FIELDS, format_time

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable

    from octomon.readings import AnyReading
    from octomon.store.cache import Cache, CacheStatus
    from octomon.store.influx import InfluxSink
    from octomon.store.sync import SyncResult


# SPEC §1's columns first and in place (scripts that index them keep working), then the
# fuel of each row and gas's one extra field (SPEC §11).
CSV_HEADER = ("read_at", "device_id", *FIELDS, "fuel", "volume_delta")
LOCK_WAIT = 30.0  # seconds sync-cache waits for the cache lock (SPEC §1)


def register(app: typer.Typer, only: str | None = None) -> None:
    """Register `sync-cache` and the `cache` group (or just the one named by ``only``)."""
    if only in (None, "sync-cache"):
        ui.command(app, "sync-cache")(sync_cache)
    if only in (None, "cache"):
        cache_app = typer.Typer(help="Inspect and export the local cache.", no_args_is_help=True)
        ui.command(cache_app, "status")(status)
        ui.command(cache_app, "export")(export)
        ui.command(cache_app, "requeue")(requeue)
        app.add_typer(cache_app, name="cache")


# --- sync-cache ---------------------------------------------------------------------------


def sync_cache(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Push all cached readings to InfluxDB, oldest first (safe to run while `run` runs)."""
    settings = ui.load_settings(ctx, env_file, ["influx", "cache"], require=["INFLUXDB_URL"])
    from octomon.store.cache import Cache

    cache = Cache(settings.cache_dir, settings.cache_max_mb)
    if cache.is_empty():
        typer.echo(f"nothing to sync: the cache in {settings.cache_dir} is empty")
        return
    import threading

    from octomon.store.influx import InfluxSink
    from octomon.store.sync import sync, tune_allocator

    tune_allocator()
    sink = InfluxSink.from_settings(settings)
    stop = threading.Event()
    try:
        with ui.stop_on_signals(stop):
            if ui.is_terminal():
                result = _sync_with_bar(cache, sink, stop)
            else:
                printer = _PlainProgress(sys.stdout)
                result = sync(
                    cache, sink, lock_timeout=LOCK_WAIT, progress=printer, stop=stop.is_set
                )
    finally:
        sink.close()
    _report(result, settings.cache_dir)


def _sync_with_bar(cache: "Cache", sink: "InfluxSink", stop: "threading.Event") -> "SyncResult":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from octomon.store.sync import sync

    total = cache.status().readings
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=ui.console, transient=False) as bar:
        task = bar.add_task("syncing", total=total or None)
        return sync(
            cache,
            sink,
            lock_timeout=LOCK_WAIT,
            progress=lambda n: bar.advance(task, n),
            stop=stop.is_set,
        )


class _PlainProgress:
    """Not on a terminal: one line every few seconds, never a bar."""

    def __init__(self, out: TextIO, every: float = 5.0) -> None:
        self.out = out
        self.every = every
        self.done = 0
        self.last = time.monotonic()

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(f"synced {self.done:,} readings so far", file=self.out, flush=True)


def _report(result: "SyncResult", cache_dir: Path) -> None:
    error = result.error
    line = f"synced {result.synced:,} readings to InfluxDB"
    if result.files_done:
        line += f" ({result.files_done} day file{'s' if result.files_done != 1 else ''} done)"
    typer.echo(line)
    if result.quarantined:
        typer.echo(f"{result.quarantined:,} unreadable line(s) moved to {cache_dir / 'quarantine'}")
    if result.rejected:
        ui.warn(
            f"InfluxDB refused {result.rejected:,} readings; they are set aside in "
            f"{cache_dir / 'rejected'}"
            + (f" ({error.server_message})" if isinstance(error, InfluxRefused) else "")
        )
    if result.evicted_files:
        ui.warn(
            f"the cache went over CACHE_MAX_MB: {result.evicted_files} oldest file(s) dropped, "
            f"{result.evicted_readings:,} readings lost"
        )
    if error is not None and not isinstance(error, InfluxRefused):
        ui.fail(f"{result.left:,} readings left in the cache: {error.message}", error.hint)
    if result.stopped:
        ui.fail(
            f"stopped on request; {result.left:,} readings left in the cache",
            "run `octomon sync-cache` again to send them",
        )
    if result.rejected:
        raise typer.Exit(int(ExitCode.FAILED))
    if result.left:
        typer.echo(
            f"{result.left:,} readings arrived in the cache while syncing; "
            "they go with the next sync"
        )


# --- cache status ---------------------------------------------------------------------------


def status(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (files, readings, …).")
    ] = False,
) -> None:
    """Show what is waiting in the cache."""
    settings = ui.load_settings(ctx, env_file, ["cache"])
    from octomon.store.cache import Cache

    st = Cache(settings.cache_dir).status()
    if as_json:
        import json

        typer.echo(json.dumps(st.to_json_obj()))
        return
    _status_table(st, settings.cache_dir)


def _status_table(st: "CacheStatus", cache_dir: Path) -> None:
    # Plain text, not a rich table: `cache status` is run from cron and scripts, and rich's
    # console and table would double its start-up time (SPEC §7).
    rows = [
        ("readings waiting", f"{st.readings:,}"),
        ("day files", f"{st.files:,}"),
        ("size", _size(st.bytes)),
        ("oldest", format_time(st.oldest) if st.oldest else "–"),
        ("newest", format_time(st.newest) if st.newest else "–"),
        ("quarantined lines", f"{st.quarantined:,}"),
        ("rejected readings", f"{st.rejected:,}"),
    ]
    lines = [f"cache {cache_dir}"]
    lines += [f"  {label:<18} {value}" for label, value in rows]
    typer.echo("\n".join(lines))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# --- cache export ---------------------------------------------------------------------------


class ExportFormat(str, enum.Enum):
    jsonl = "jsonl"
    csv = "csv"
    line_protocol = "line-protocol"


def export(
    ctx: typer.Context,
    env_file: ui.EnvFileOption = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", metavar="FORMAT", help="jsonl, csv or line-protocol."),
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="PATH", help="Write to this file instead of stdout."
        ),
    ] = None,
) -> None:
    """Write cached readings to stdout or a file (oldest day first)."""
    settings = ui.load_settings(ctx, env_file, ["cache"])
    from octomon.store.cache import Cache

    cache = Cache(settings.cache_dir)
    bad = 0

    def skipped(source: str, offset: int, reason: str) -> None:
        nonlocal bad
        bad += 1
        ui.log.debug("export: skipped line at %s:%d (%s)", source, offset, reason)

    readings = cache.iter_readings(on_bad=skipped)
    if output is None:
        count = _write(readings, fmt, sys.stdout)
        sys.stdout.flush()
    else:
        tmp = output.with_name(f".{output.name}.partial")
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                count = _write(readings, fmt, out)
            tmp.replace(output)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            ui.fail(f"cannot write {output}: {exc.strerror or exc}", "check --output")
    where = "stdout" if output is None else str(output)
    note = f" ({bad} unreadable line(s) skipped)" if bad else ""
    ui.err_console.print(f"exported {count:,} readings to {where}{note}", markup=False)


def _write(readings: "Iterable[AnyReading]", fmt: ExportFormat, out: TextIO) -> int:
    count = 0
    if fmt is ExportFormat.csv:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for r in readings:
            writer.writerow(_csv_row(r))
            count += 1
        return count
    for r in readings:
        out.write((r.to_json() if fmt is ExportFormat.jsonl else r.to_line_protocol()) + "\n")
        count += 1
    return count


def _csv_row(r: "AnyReading") -> list[str]:
    fields = r.fields()
    numbers = [fields.get(name) for name in (*FIELDS, "volume_delta")]
    row = [format_time(r.read_at), r.device_id]
    row += ["" if v is None else repr(float(v)) for v in numbers]
    row.insert(-1, r.fuel)  # before volume_delta
    return row


# --- cache requeue --------------------------------------------------------------------------


def requeue(ctx: typer.Context, env_file: ui.EnvFileOption = None) -> None:
    """Put readings set aside under CACHE_DIR/rejected/ back into the cache for the next sync."""
    settings = ui.load_settings(ctx, env_file, ["cache"])
    from octomon.clock import utcnow
    from octomon.store.cache import Cache

    result = Cache(settings.cache_dir, settings.cache_max_mb).requeue(utcnow())
    if not result.files:
        typer.echo(f"nothing to requeue: {settings.cache_dir / 'rejected'} holds no readings")
        return
    line = (
        f"requeued {result.readings:,} readings from {result.files} rejected "
        f"file{'s' if result.files != 1 else ''}; the next sync sends them"
    )
    if result.archive is not None:
        line += f" (reasons kept in {result.archive})"
    typer.echo(line)
    if result.quarantined:
        typer.echo(
            f"{result.quarantined:,} line(s) that were no reading moved to "
            f"{settings.cache_dir / 'quarantine'}"
        )
