"""SPEC §7: `octomon --help` and `octomon cache status` start within 1.2× a bare Typer app.

The baseline is a Typer app with the same command names and nothing else, run the same way
(a fresh interpreter each time), measured side by side in alternating order. Prints the
ratio of medians; exits 1 when a ratio is above the target.

Also `cache status` with 10,000 readings set aside under ``rejected/`` (``--rejected N``;
0 to skip), as an InfluxDB that keeps refusing leaves them: one ``.jsonl`` + ``.txt`` pair
per refused cycle of six readings (``--per-file``). Its count must be exact and within the
same target: the files' newlines are counted, no line is parsed.

    python bench/startup.py [--runs N] [--rejected 10000] [--per-file 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.2
COMMANDS = [
    "run",
    "configure",
    "verify-config",
    "test-octopus",
    "test-influx",
    "test-slack",
    "sync-cache",
    "backfill",
    "status",
    "tariff",
    "reconcile",
    "costs",
]

BARE_APP = """
import typer

app = typer.Typer(name="octomon", no_args_is_help=True)
cache_app = typer.Typer(no_args_is_help=True)
for _name in {commands!r}:
    app.command(_name)(lambda: None)


@cache_app.command("status")
def _status(json: bool = False) -> None:
    print("files 0")


@cache_app.command("export")
def _export() -> None:
    pass


@cache_app.command("requeue")
def _requeue() -> None:
    pass


app.add_typer(cache_app, name="cache")
app()
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def compare(
    label: str, octomon: list[str], bare: list[str], env: dict[str, str], runs: int
) -> float:
    for _ in range(2):  # warm the page cache for both
        timed(octomon, env)
        timed(bare, env)
    ours: list[float] = []
    base: list[float] = []
    for i in range(runs):
        pair = [(ours, octomon), (base, bare)]
        if i % 2:
            pair.reverse()
        for sink, argv in pair:
            sink.append(timed(argv, env))
    ratio = statistics.median(ours) / statistics.median(base)
    print(
        f"{label:<46} octomon {statistics.median(ours) * 1000:6.1f} ms   "
        f"bare typer {statistics.median(base) * 1000:6.1f} ms   ratio {ratio:.2f}"
        f"  (target <= {TARGET})"
    )
    return ratio


LINE = (
    '{"read_at":"2026-11-27T14:00:10Z","device_id":"00-11-22-33-44-55-66-77",'
    '"consumption_delta":0.0005,"demand":0.2,"cost_delta":0.0001,"consumption":5038.4145}\n'
)


def set_aside(cache_dir: Path, readings: int, per_file: int, *, indexed: bool = True) -> None:
    """``readings`` refused readings under ``rejected/`` as octomon's writer leaves them
    (the readings, the reason, and the line ``rejected/.counts`` gets), without its fsyncs;
    ``indexed=False``: files put there by hand (or an older octomon), counted by reading."""
    from octomon.store.lines import note_count

    rdir = cache_dir / "rejected"
    rdir.mkdir(mode=0o700, parents=True)
    for n in range(0, readings, per_file):
        stem = f"rejected_20261127T{n // 60 % 24:02d}{n % 60:02d}00Z_{n}"
        body = (LINE * min(per_file, readings - n)).encode()
        (rdir / f"{stem}.jsonl").write_bytes(body)
        (rdir / f"{stem}.txt").write_text("HTTP 422: field type conflict\n")
        if indexed:
            note_count(rdir, f"{stem}.jsonl", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=41)
    parser.add_argument("--rejected", type=int, default=10_000, help="0: skip that variant")
    parser.add_argument("--per-file", type=int, default=6, help="readings per rejected file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_octomon.py"
        bare.write_text(BARE_APP.format(commands=COMMANDS))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OCTOPUS_", "INFLUXDB_", "SLACK_"))
        }
        env["CACHE_DIR"] = str(Path(tmp) / "cache")
        py = sys.executable
        # Measure an installed octomon: pip byte-compiles a regular install, but an editable
        # one under PYTHONDONTWRITEBYTECODE would recompile every module on every start.
        package = Path(__file__).resolve().parents[1] / "octomon"
        subprocess.run(
            [py, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL
        )
        # The console script `octomon` is `from octomon.cli import main; main()`; run it the
        # same way as the bare app (python -c) so both pay the same interpreter start-up.
        octo = [py, "-c", "from octomon.cli import main; main()"]
        ratios = [
            compare("octomon --help", [*octo, "--help"], [py, str(bare), "--help"], env, args.runs),
            compare(
                "octomon cache status",
                [*octo, "cache", "status"],
                [py, str(bare), "cache", "status"],
                env,
                args.runs,
            ),
        ]
        if args.rejected:
            aside = Path(tmp) / "aside"
            set_aside(aside, args.rejected, max(1, args.per_file))
            shown = subprocess.run(
                [*octo, "cache", "status", "--json"],
                env={**env, "CACHE_DIR": str(aside)},
                capture_output=True,
                check=True,
            )
            counted = json.loads(shown.stdout)["rejected"]
            if counted != args.rejected:
                sys.exit(f"cache status counted {counted} rejected readings, not {args.rejected}")
            files = -(-args.rejected // max(1, args.per_file))
            ratios.append(
                compare(
                    f"cache status, {args.rejected:,} rejected in {files:,} files",
                    [*octo, "cache", "status"],
                    [py, str(bare), "cache", "status"],
                    {**env, "CACHE_DIR": str(aside)},
                    args.runs,
                )
            )
    worst = max(ratios)
    print(f"worst ratio {worst:.2f} — {'OK' if worst <= TARGET else 'ABOVE TARGET'}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
