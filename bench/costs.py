"""`octomon costs` over a quarter, answered from what CACHE_DIR keeps (issue: "the bill, right
for every account"): the first run fetches the quarter's prices and settled consumption from
the simulator over HTTP; the second must make no API call and answer in under 2 s.

The baseline, measured in the same run the same way (a fresh interpreter each time, side by
side in alternating order), is `octomon costs --help`: the ratio is what answering a quarter
from the kept files costs beyond starting the command.

    python bench/costs.py [--runs N] [--days N]
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
from datetime import timedelta

TARGET_SECONDS = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()

    from octomon.sim import SimHomeMini, SimServer
    from octomon.uktime import uk_day

    sim = SimHomeMini(rate_limit_per_hour=10_000)
    with SimServer(sim) as server, tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "OCTOPUS_API_KEY": sim.api_key,
            "OCTOPUS_ACCOUNT_NUMBER": sim.account_number,
            "OCTOPUS_API_URL": server.url,
            "OCTOPUS_REST_URL": server.rest_url,
            "CACHE_DIR": cache,
            "COLUMNS": "120",
        }
        today = uk_day(sim.clock())
        since = (today - timedelta(days=args.days)).isoformat()
        until = (today - timedelta(days=3)).isoformat()
        command = [sys.executable, "-m", "octomon", "costs", "--since", since, "--until", until]

        def timed(argv: list[str]) -> tuple[float, str]:
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv[2:])} exited {done.returncode}: {done.stderr}")
            return elapsed, done.stdout

        first, _ = timed([*command, "--json"])
        calls = len(sim.calls)
        kept: list[float] = []
        bare: list[float] = []
        for i in range(args.runs):
            order = [(kept, [*command, "--json"]), (bare, [*command[:3], "costs", "--help"])]
            for sink, argv in order if i % 2 == 0 else reversed(order):
                elapsed, out = timed(argv)
                sink.append(elapsed)
                if sink is kept:
                    assert json.loads(out)["api_calls"] == 0, "the second run made an API call"
        assert len(sim.calls) == calls, "a request reached the simulator"

    median, baseline = statistics.median(kept), statistics.median(bare)
    print(f"costs over {args.days} days: first run {first:.2f} s (fetching)")
    print(
        f"answered from CACHE_DIR: median {median:.2f} s over {args.runs} runs, 0 API calls "
        f"(target < {TARGET_SECONDS:.0f} s)"
    )
    print(f"baseline `costs --help`: median {baseline:.2f} s; ratio {median / baseline:.2f}")
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
