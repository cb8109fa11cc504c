"""SPEC §7: `octomon --help` and `octomon cache status` start within 1.2× a bare Typer app.

The baseline is a Typer app with the same command names and nothing else, run the same way
(a fresh interpreter each time), measured side by side in alternating order. Prints the
ratio of medians; exits 1 when a ratio is above the target.

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
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
        f"{label:<22} octomon {statistics.median(ours) * 1000:6.1f} ms   "
        f"bare typer {statistics.median(base) * 1000:6.1f} ms   ratio {ratio:.2f}"
        f"  (target <= {TARGET})"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=41)
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
    worst = max(ratios)
    print(f"worst ratio {worst:.2f} — {'OK' if worst <= TARGET else 'ABOVE TARGET'}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
