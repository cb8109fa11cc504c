"""Every Flux query octomon ships (the dashboard, the docs) passes Flux's semantic checker.

No InfluxDB 2 runs here, so the queries cannot be executed; InfluxData's Flux checker (the
WebAssembly build of flux-lsp, from npm) still catches unknown functions, wrong argument
names and type errors. `.ci/run` installs it into `.flux/`; elsewhere the test skips unless
OCTOMON_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tests" / "helpers" / "flux_check.js"
PACKAGE = ROOT / ".flux" / "node_modules" / "@influxdata" / "flux-lsp-node"
REQUIRE = os.environ.get("OCTOMON_REQUIRE_SERVICES") == "1"


def _check(queries: list[str]) -> list[bool]:
    node = shutil.which("node")
    if node is None or not PACKAGE.is_dir():
        if REQUIRE:
            pytest.fail("node or .flux/ (npm @influxdata/flux-lsp-node) is missing: see .ci/run")
        pytest.skip("Flux checker not installed: make flux-checker")
    result = subprocess.run(
        [node, str(CHECKER)],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLUX_LSP_NODE": str(PACKAGE)},
    )
    assert result.returncode == 0, result.stderr
    verdicts = json.loads(result.stdout)
    assert isinstance(verdicts, list)
    return [bool(v) for v in verdicts]


def dashboard_queries() -> list[tuple[str, str]]:
    data = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "octomon.json").read_text())
    return [(p["title"], t["query"]) for p in data["panels"] for t in p["targets"]]


def readme_queries() -> list[tuple[str, str]]:
    """The ```flux blocks of the README and of every page in docs/."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"```flux\n(.*?)```", path.read_text(), re.S)
        found += [(f"{path.name} flux block {i + 1}", b) for i, b in enumerate(blocks)]
    return found


def test_the_checker_tells_valid_from_invalid_flux() -> None:
    good = 'from(bucket: "b")\n  |> range(start: -1h)\n  |> last()\n'
    assert _check([good, good.replace("last()", "lastt()"), 'x = 1 + "a"\n']) == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("source", ["dashboard", "readme"])
def test_every_shipped_flux_query_is_valid(source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else readme_queries()
    assert queries
    verdicts = _check([q for _, q in queries])
    invalid = [name for (name, _), ok in zip(queries, verdicts) if not ok]
    assert not invalid, invalid
