"""The files under deploy/: systemd unit, Dockerfile, compose stack, Grafana provisioning.

No Docker engine, Grafana or InfluxDB 2 runs on the build machines, so these tests check
what can be checked without them: each file parses, says what SPEC §1-§3 and §6 require,
and the pieces agree with each other (one token on both sides, one bucket, one path).
`systemd-analyze` does run here, and checks the unit the way systemd will read it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "octomon.service"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE = DEPLOY / "docker-compose.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yml"
PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "octomon.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "octomon.json"

# SPEC §3: every measurement octomon writes, its tags, its fields and the Grafana unit a
# panel showing each field should use.
SPEC_SCHEMA: dict[str, tuple[set[str], dict[str, str]]] = {
    "energy_consumption": (
        {"source", "device_id"},
        {
            "consumption_delta": "kwatth",
            "demand": "kwatt",
            "cost_delta": "currencyGBP",
            "consumption": "kwatth",
            "cost_delta_with_tax": "currencyGBP",
            "export": "kwatth",
        },
    ),
    "gas_consumption": (
        {"source", "device_id"},
        {
            "consumption_delta": "kwatth",
            "consumption": "kwatth",
            "cost_delta": "currencyGBP",
            "cost_delta_with_tax": "currencyGBP",
            "volume_delta": "m3",
        },
    ),
    "energy_tariff": (
        {"fuel", "direction", "tariff_code"},
        {
            "unit_rate": "currencyGBP",
            "unit_rate_exc_vat": "currencyGBP",
            "standing_charge": "currencyGBP",
            "standing_charge_exc_vat": "currencyGBP",
        },
    ),
    "energy_settled": ({"fuel", "direction", "meter"}, {"consumption": "kwatth", "volume": "m3"}),
    "energy_reconciliation": (
        {"fuel"},
        {
            "settled": "kwatth",
            "home_mini": "kwatth",
            "difference": "kwatth",
            "readings": "none",
            "coverage": "percentunit",
        },
    ),
}
# SPEC §2: every setting octomon reads.
SPEC_VARIABLES = {
    "OCTOPUS_API_KEY",
    "OCTOPUS_ACCOUNT_NUMBER",
    "OCTOPUS_DEVICE_ID",
    "OCTOPUS_API_URL",
    "OCTOPUS_MAX_CALLS_PER_HOUR",
    "INFLUXDB_URL",
    "INFLUXDB_TOKEN",
    "INFLUXDB_ORG",
    "INFLUXDB_BUCKET",
    "SLACK_WEBHOOK_URL",
    "POLL_INTERVAL_SECONDS",
    "CACHE_DIR",
    "CACHE_MAX_MB",
    "HEALTH_CHECK_SECONDS",
    "LOG_LEVEL",
}
DEFAULT_POLL_SECONDS = 60
STOP_SECONDS = 15  # SPEC §4.7: exit within 15 s of SIGTERM


# --- systemd unit -----------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given, in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {raw!r}"
        assert not line.endswith("\\"), "continuation lines are not used in this unit"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    """A systemd time span ("300", "5min", "1min 30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, f"not a time span: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing from {UNIT.name}"
    return values[-1]


def test_unit_is_a_notify_service_with_a_watchdog(unit: dict[str, dict[str, list[str]]]) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    # octomon pings every cycle (POLL_INTERVAL_SECONDS, 60 s by default): the watchdog
    # must allow a few slow cycles, yet still catch a hang within minutes.
    watchdog = seconds(one(unit, "Service", "WatchdogSec"))
    assert 3 * DEFAULT_POLL_SECONDS <= watchdog <= 900


def test_unit_restarts_failures_but_not_bad_configuration(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    assert one(unit, "Service", "Restart") == "on-failure"
    assert seconds(one(unit, "Service", "RestartSec")) >= 5
    prevented = " ".join(unit["Service"]["RestartPreventExitStatus"]).split()
    assert "2" in prevented  # SPEC §1: exit 2 = bad config or refused API key
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > STOP_SECONDS
    assert one(unit, "Service", "KillSignal") == "SIGTERM"


def test_unit_runs_octomon_as_a_dedicated_user_in_its_state_directory(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    service = unit["Service"]
    assert one(unit, "Service", "User") not in {"root", "0"}
    exec_start = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(exec_start[0]).is_absolute()
    assert Path(exec_start[0]).name == "octomon"
    assert exec_start[1:] == ["run"]

    env_file = one(unit, "Service", "EnvironmentFile")
    # No "-" prefix: without its settings the service fails to start, visibly.
    assert env_file.startswith("/etc/"), env_file

    workdir = Path(one(unit, "Service", "WorkingDirectory"))
    assert workdir == Path("/var/lib/octomon")
    environment = dict(
        item.split("=", 1) for line in service["Environment"] for item in shlex.split(line)
    )
    cache_dir = Path(environment["CACHE_DIR"])
    assert cache_dir.is_relative_to(workdir)

    writable = [Path(p.lstrip("-")) for line in service["ReadWritePaths"] for p in line.split()]
    state_dirs = [Path("/var/lib") / d for d in " ".join(service.get("StateDirectory", [])).split()]
    assert any(cache_dir.is_relative_to(p) for p in writable + state_dirs)


def test_unit_is_hardened(unit: dict[str, dict[str, list[str]]]) -> None:
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "PrivateTmp") == "yes"
    assert one(unit, "Service", "ProtectHome") in {"yes", "read-only", "tmpfs"}
    assert one(unit, "Service", "ReadWritePaths")


def _unit_for_verify(text: str, directory: Path) -> Path:
    """Write the unit where systemd-analyze can read it, with a program that exists.

    `systemd-analyze verify` rejects an ExecStart= whose program is missing
    ("Command ... is not executable"), and /opt/octomon/.venv is not installed on a build
    machine. Only then is the program swapped for /bin/true (same line, same arguments),
    so every other check, line numbers included, is made on the unit as shipped.
    """
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE)
    program = exec_start.group(1) if exec_start else ""
    if program.startswith("/") and not Path(program).exists():
        stand_in = shutil.which("true") or "/bin/true"
        text = text.replace(f"ExecStart={program}", f"ExecStart={stand_in}")
    path = directory / "octomon.service"
    path.write_text(text, encoding="utf-8")
    return path


def systemd_verify_problems(text: str, directory: Path) -> list[str]:
    """What `systemd-analyze verify` says about this unit; empty when it is clean.

    systemd only warns (exit 0) about an unknown key, a misspelt section or a value it
    cannot parse ("..., ignoring"), and the unit then runs without that setting: every
    line naming this unit counts as a problem, not just a non-zero exit. Lines about
    other units (the host's own targets, loaded as dependencies) are not ours to judge.
    """
    path = _unit_for_verify(text, directory)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "LANG": "C.UTF-8"},
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if str(path) in line or "octomon.service" in line]
    if result.returncode != 0 and not problems:
        problems = output or [f"systemd-analyze verify exited {result.returncode}"]
    return problems


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)",
)


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert systemd_verify_problems(UNIT.read_text(encoding="utf-8"), tmp_path) == []


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("Type=notify", "Tpye=notify"),  # unknown key: systemd ignores it, exit 0
        ("Restart=on-failure", "Restart=sometimes"),  # unparsable value, exit 0
        ("WatchdogSec=", "WatchdogSec=soon"),
        ("[Service]", "[Servce]"),  # the whole section is dropped
        ("ExecStart=", "ExecStart=octomon/bin/"),  # not an absolute path
    ],
)
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path, good: str, bad: str) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert good in text
    assert systemd_verify_problems(text.replace(good, bad, 1), tmp_path) != []


@needs_systemd_analyze
def test_unit_hardening_scores_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    path = _unit_for_verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    # --threshold is on systemd's 0-100 scale: 20 is an overall exposure of 2.0 ("OK").
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "LANG": "C.UTF-8"},
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no offline security check (systemd < 250)")
    overall = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, overall or result.stderr


# --- Dockerfile -------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, args = whole.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not exec form (JSON array): {args!r}"
    value = json.loads(args)
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)
    return value


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def docker_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"use ENV key=value: {args!r}"
                env[key] = value
    return env


def test_image_is_python_slim(dockerfile: list[tuple[str, str]]) -> None:
    args = dict(
        args.partition("=")[::2] for keyword, args in dockerfile if keyword == "ARG" and "=" in args
    )
    base = final_stage(dockerfile)[0][1].split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base


def test_image_runs_octomon_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the final stage never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    cmds = [args for keyword, args in stage if keyword == "CMD"]
    assert exec_form(cmds[-1]) == ["octomon", "run"]
    assert not [args for keyword, args in stage if keyword == "ENTRYPOINT"]


def test_image_health_check_uses_octomon_status(dockerfile: list[tuple[str, str]]) -> None:
    checks = [args for keyword, args in final_stage(dockerfile) if keyword == "HEALTHCHECK"]
    assert checks
    words = checks[-1].split(" ")
    options = [w for w in words if w.startswith("--")]
    rest = " ".join(w for w in words if not w.startswith("--")).strip()
    assert rest.startswith("CMD ")
    assert exec_form(rest.removeprefix("CMD ").strip()) == ["octomon", "status", "--check"]
    assert any(o.startswith("--interval=") for o in options)


def test_image_keeps_its_cache_on_a_volume(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    env = docker_env(stage)
    assert env["CACHE_DIR"] == "/data"
    assert env["PYTHONUNBUFFERED"] == "1"
    volumes = [args for keyword, args in stage if keyword == "VOLUME"]
    assert any("/data" in (exec_form(v) if v.startswith("[") else v.split()) for v in volumes)
    assert ("STOPSIGNAL", "SIGTERM") in stage
    assert any(
        keyword == "RUN" and "pip install --no-cache-dir ." in args for keyword, args in dockerfile
    )


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """The ignore file's patterns as (is_exception, regex), in order (last match wins)."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?|\[[^]]*\])", pattern):
            if token.startswith("["):
                regex += token
                continue
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token)
            )
        rules.append((negate, re.compile(regex + "$")))
    return rules


def in_build_context(path: str) -> bool:
    rules = _dockerignore_rules()
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):  # an excluded folder takes its contents along
        prefix = "/".join(parts[:depth])
        excluded = False
        for negate, regex in rules:
            if regex.match(prefix):
                excluded = not negate
        if excluded:
            return False
    return True


@pytest.mark.parametrize(
    "path", [".env", "deploy/.env", "deploy/octomon.env", ".git/config", ".venv/bin/python"]
)
def test_build_context_leaves_out_secrets_and_local_state(path: str) -> None:
    assert not in_build_context(path)


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "octomon/__init__.py"])
def test_build_context_keeps_what_pip_install_needs(path: str) -> None:
    assert (ROOT / path).exists()
    assert in_build_context(path)


# --- docker compose ---------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$."""

    def substitute(match: re.Match[str]) -> str:
        name, op, default = match.group("name", "op", "default")
        current = env.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return default if current is None else current
        if op in {":?", "?"}:
            assert current, f"{name} is required: {default}"
        return current or ""

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def compose_variables() -> dict[str, set[str]]:
    """Every variable the compose file reads, with the defaults it gives it."""
    found: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, str):
            for match in _INTERPOLATION.finditer(node):
                found.setdefault(match.group("name"), set()).add(match.group("default") or "")
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))
    return found


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    def resolve(node: Any) -> Any:
        if isinstance(node, str):
            return interpolate(node, env)
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if isinstance(node, dict):
            return {key: resolve(value) for key, value in node.items()}
        return node

    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    resolved: dict[str, Any] = resolve(data)
    return resolved


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def env_file_keys(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {raw!r}"
            values[key] = value
    return values


def sentinel_env() -> dict[str, str]:
    return {name: f"sentinel-{name.lower()}" for name in compose_variables()}


@pytest.fixture(scope="module", params=["defaults", "deploy/.env"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The compose file as docker compose resolves it: with the built-in defaults, and
    with every variable set (as deploy/.env or the shell would)."""
    return load_compose({} if request.param == "defaults" else sentinel_env())


def test_compose_has_octomon_influxdb_2_and_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"octomon", "influxdb", "grafana"} <= set(services)
    assert re.fullmatch(r"influxdb:2(\.\d+)*(-alpine)?", services["influxdb"]["image"])
    assert services["grafana"]["image"].startswith(("grafana/grafana:", "grafana/grafana-oss:"))
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "always"}, name


def test_compose_builds_octomon_from_the_repository(compose: dict[str, Any]) -> None:
    octomon = compose["services"]["octomon"]
    context = (DEPLOY / octomon["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / octomon["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "influxdb" in octomon["depends_on"]
    grace = re.fullmatch(r"(\d+)s", octomon["stop_grace_period"])
    assert grace and int(grace.group(1)) > STOP_SECONDS


def test_compose_gives_octomon_the_influxdb_it_creates(compose: dict[str, Any]) -> None:
    services = compose["services"]
    octomon = service_env(services["octomon"])
    influx = service_env(services["influxdb"])
    grafana = service_env(services["grafana"])
    assert octomon["INFLUXDB_URL"] == "http://influxdb:8086"
    assert influx["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert octomon["INFLUXDB_TOKEN"] == influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert octomon["INFLUXDB_ORG"] == influx["DOCKER_INFLUXDB_INIT_ORG"]
    assert octomon["INFLUXDB_BUCKET"] == influx["DOCKER_INFLUXDB_INIT_BUCKET"]
    for key in ("INFLUXDB_TOKEN", "INFLUXDB_ORG", "INFLUXDB_BUCKET"):
        assert grafana[key] == octomon[key], key  # read by the provisioned data source
    assert len(influx["DOCKER_INFLUXDB_INIT_PASSWORD"]) >= 8  # InfluxDB's own minimum
    assert influx["DOCKER_INFLUXDB_INIT_USERNAME"]


def test_compose_bucket_defaults_to_the_spec_bucket() -> None:
    services = load_compose({})["services"]
    assert service_env(services["octomon"])["INFLUXDB_BUCKET"] == "octopus_energy"


def _mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> source, for short-syntax volumes."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        mounts[target] = source
    return mounts


def test_compose_keeps_every_state_on_a_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose.get("volumes") or {})
    octomon_mounts = _mounts(services["octomon"])
    cache_dir = service_env(services["octomon"])["CACHE_DIR"]
    assert octomon_mounts[cache_dir] in declared
    assert _mounts(services["influxdb"])["/var/lib/influxdb2"] in declared
    assert _mounts(services["grafana"])["/var/lib/grafana"] in declared
    for name, service in services.items():
        for target, source in _mounts(service).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} -> {target}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_compose_reads_octomon_settings_from_an_env_file(compose: dict[str, Any]) -> None:
    env_files = compose["services"]["octomon"]["env_file"]
    env_files = [env_files] if isinstance(env_files, str) else env_files
    assert env_files
    for name in env_files:
        example = DEPLOY / f"{name}.example"
        assert example.exists(), f"{example.name} shows what {name} should hold"
        keys = set(env_file_keys(example))
        assert {"OCTOPUS_API_KEY", "OCTOPUS_ACCOUNT_NUMBER"} <= keys
        assert keys <= SPEC_VARIABLES
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    for name in env_files:
        assert name in ignored, f"{name} holds the API key: it must not be committed"


def test_env_example_documents_every_compose_variable() -> None:
    example = env_file_keys(DEPLOY / ".env.example")
    for name, defaults in compose_variables().items():
        assert name in example, f"{name} is used by docker-compose.yml"
        # One default per variable, and the example repeats it: copying the example
        # changes nothing until it is edited, and no two services can disagree.
        assert defaults == {example[name]}, name


def test_compose_file_matches_the_compose_specification() -> None:
    """The compose-spec JSON schema, as shipped (offline) inside check-jsonschema."""
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is not installed")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*command, str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana provisioning ----------------------------------------------------------------


def _grafana_env_reference(value: str) -> str:
    match = re.fullmatch(r"\$\{?(\w+)\}?", value)
    assert match, f"{value!r} should come from Grafana's environment"
    return match.group(1)


def test_datasource_is_the_compose_influxdb_with_flux() -> None:
    data = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))
    assert data["apiVersion"] == 1
    (source,) = data["datasources"]
    assert source["type"] == "influxdb"
    assert source["url"] == "http://influxdb:8086"
    assert source["jsonData"]["version"] == "Flux"
    grafana = service_env(load_compose({})["services"]["grafana"])
    references = {
        "organization": _grafana_env_reference(source["jsonData"]["organization"]),
        "defaultBucket": _grafana_env_reference(source["jsonData"]["defaultBucket"]),
        "token": _grafana_env_reference(source["secureJsonData"]["token"]),
    }
    assert references == {
        "organization": "INFLUXDB_ORG",
        "defaultBucket": "INFLUXDB_BUCKET",
        "token": "INFLUXDB_TOKEN",
    }
    assert set(references.values()) <= set(grafana)


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    data = yaml.safe_load(PROVIDER.read_text(encoding="utf-8"))
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    grafana = load_compose({})["services"]["grafana"]
    mounts = _mounts(grafana)
    path = provider["options"]["path"]
    assert (DEPLOY / mounts[path]).resolve() == DASHBOARD.parent
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == PROVIDER.parents[1]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


_FIELD_TEST = re.compile(r"""r(?:\._field|\["_field"\])\s*==\s*"(\w+)\"""")
_ANY_FIELD_USE = re.compile(r"""r(?:\._field|\["_field"\])""")
_MEASUREMENT_TEST = re.compile(r"""r\._measurement\s*==\s*"(\w+)\"""")
_TAG_TEST = re.compile(r"""r(?:\.(\w+)|\["(\w+)"\])\s*==""")
_FILTER = re.compile(r"filter\(fn: \(r\) => (.*)\)\n")


def query_fields(query: str) -> set[str]:
    """The fields a Flux query filters on; only `r._field == "name"` tests are allowed."""
    fields = set(_FIELD_TEST.findall(query))
    leftover = _ANY_FIELD_USE.findall(_FIELD_TEST.sub("", query))
    assert not leftover, f'a field chosen other than by r._field == "name": {query}'
    return fields


def query_filters(query: str) -> list[tuple[set[str], set[str], set[str]]]:
    """(measurements, fields, tags) named by each `filter(fn: (r) => …)` of a query."""
    out = []
    for clause in _FILTER.findall(query):
        tags = {a or b for a, b in _TAG_TEST.findall(clause)} - {"_measurement", "_field"}
        out.append((set(_MEASUREMENT_TEST.findall(clause)), query_fields(clause), tags))
    return out


def test_dashboard_has_a_bucket_variable_defaulting_to_octopus_energy(
    dashboard: dict[str, Any],
) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    bucket = variables["bucket"]
    assert bucket["type"] in {"custom", "constant", "textbox"}
    assert bucket["query"] == "octopus_energy"
    assert bucket["current"]["value"] == "octopus_energy"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "influxdb"


def panel_units(panel: Mapping[str, Any]) -> set[str]:
    units = {panel["fieldConfig"]["defaults"]["unit"]}
    for override in panel["fieldConfig"].get("overrides", []):
        units |= {p["value"] for p in override["properties"] if p["id"] == "unit"}
    return units


def test_every_panel_queries_only_what_spec_section_3_defines(dashboard: dict[str, Any]) -> None:
    """Each filter names one SPEC §3 measurement, and only that measurement's fields and tags;
    each unit a panel shows is the unit of a field it reads (or a percentage of a ratio)."""
    all_panels = list(panels(dashboard))
    assert all_panels
    assert len({p["id"] for p in all_panels}) == len(all_panels)
    for panel in all_panels:
        title = panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", title
        assert panel["targets"], title
        panel_fields: set[str] = set()
        ratio = False
        for target in panel["targets"]:
            query = target["query"]
            assert 'from(bucket: "${bucket}")' in query, title
            filters = query_filters(query)
            assert filters, f"{title}: no filter"
            assert query.count("filter(fn:") == len(filters), f"{title}: a filter not on one line"
            for measurements, fields, tags in filters:
                assert len(measurements) == 1, f"{title}: {measurements}"
                (measurement,) = measurements
                assert measurement in SPEC_SCHEMA, f"{title}: {measurement}"
                spec_tags, spec_fields = SPEC_SCHEMA[measurement]
                assert fields, f"{title}: no field chosen"
                assert fields <= set(spec_fields), f"{title}: {fields - set(spec_fields)}"
                assert tags <= spec_tags, f"{title}: {tags - spec_tags}"
                panel_fields |= {spec_fields[f] for f in fields}
            ratio = ratio or bool(re.search(r"_value: .* / ", query))
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title
        if "now()) - int(v: r._time)" not in "".join(t["query"] for t in panel["targets"]):
            allowed = panel_fields | ({"percentunit"} if ratio else set())
            assert panel_units(panel) <= allowed, f"{title}: {panel_units(panel) - allowed}"


def test_the_schema_check_catches_a_wrong_name() -> None:
    """The check above is not vacuous: a misspelt field or a foreign tag is found."""
    ((m, fields, tags),) = query_filters(
        'from(bucket: "${bucket}")\n  |> filter(fn: (r) => r._measurement == "energy_tariff"'
        ' and r._field == "unit_rates" and r.device_id == "x")\n'
    )
    spec_tags, spec_fields = SPEC_SCHEMA["energy_tariff"]
    assert m == {"energy_tariff"}
    assert fields - set(spec_fields) == {"unit_rates"}
    assert tags - spec_tags == {"device_id"}


def test_daily_sums_follow_uk_time(dashboard: dict[str, Any]) -> None:
    daily = [
        t["query"]
        for p in panels(dashboard)
        for t in p["targets"]
        if re.search(r"every: 1d|unit: 1d", t["query"])
    ]
    assert daily
    for query in daily:
        assert 'import "timezone"' in query
        assert 'option location = timezone.location(name: "Europe/London")' in query


def _find(dashboard: dict[str, Any], pattern: str, fields: set[str]) -> list[str]:
    return [
        p["title"]
        for p in panels(dashboard)
        for t in p["targets"]
        if re.search(pattern, t["query"]) and query_fields(t["query"]) == fields
    ]


@pytest.mark.parametrize(
    ("what", "pattern", "fields"),
    [
        ("live demand", r"fn: mean", {"demand"}),
        ("consumption per hour", r"every: 1h, fn: sum", {"consumption_delta"}),
        ("consumption per day", r"every: 1d, fn: sum", {"consumption_delta"}),
        ("cost per day", r"every: 1d, fn: sum", {"cost_delta", "cost_delta_with_tax"}),
        ("the meter register", r"fn: last", {"consumption"}),
        ("age of the last reading", r"int\(v: now\(\)\) - int\(v: r\._time\)", None),
        ("the current price", r"last\(\)", {"unit_rate"}),
        (
            "today's cost with the standing charge",
            r"unit: 1d",
            {"consumption_delta", "unit_rate", "standing_charge"},
        ),
        ("price against demand", r"r.direction == \"import\"", {"unit_rate"}),
        (
            "cost per day, settled where available",
            r"every: 1d",
            {"unit_rate", "consumption", "consumption_delta"},
        ),
        ("daily reconciliation coverage", r"every: 1d", {"settled", "home_mini"}),
        (
            "gas use and cost per day",
            r"gas_consumption[\s\S]*every: 1d",
            {"consumption_delta", "volume_delta", "cost_delta_with_tax"},
        ),
    ],
)
def test_dashboard_shows(
    dashboard: dict[str, Any], what: str, pattern: str, fields: set[str] | None
) -> None:
    if fields is None:  # any field will do: every reading carries some
        found = [
            p["title"]
            for p in panels(dashboard)
            for t in p["targets"]
            if re.search(pattern, t["query"])
        ]
    else:
        found = _find(dashboard, pattern, fields)
    assert found, f"no panel shows {what}"


# --- SPEC §13: Mosquitto, /metrics and the Docker secrets form ---------------------------


def test_compose_publishes_to_its_mosquitto_with_the_url_as_a_docker_secret(
    compose: dict[str, Any],
) -> None:
    from octomon import config_rules

    services = compose["services"]
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    octomon = services["octomon"]
    env = service_env(octomon)
    assert "MQTT_URL" not in env  # both set would be an error (SPEC §2)
    secret_path = env["MQTT_URL_FILE"]
    name = secret_path.removeprefix("/run/secrets/")
    assert secret_path == f"/run/secrets/{name}" and name in octomon["secrets"]
    source = DEPLOY / compose["secrets"][name]["file"]
    example = source.with_name(source.name + ".example")
    url = config_rules.read_secret_file(str(example))
    assert config_rules.mqtt_url(url) == url
    assert url.split("//", 1)[1].split(":")[0].rsplit("@", 1)[-1] == "mosquitto"
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "secrets/*" in ignored and "!secrets/*.example" in ignored
    assert "mosquitto" not in octomon["depends_on"]  # a broker away changes nothing


def test_compose_serves_metrics_on_the_port_it_publishes(compose: dict[str, Any]) -> None:
    from octomon import config_rules

    octomon = compose["services"]["octomon"]
    listen = config_rules.listen(service_env(octomon)["HTTP_LISTEN"])
    port = listen.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}:{port}" in octomon["ports"]


def test_image_has_both_outputs(dockerfile: list[tuple[str, str]]) -> None:
    installs = [args for keyword, args in dockerfile if keyword == "RUN" and "pip install" in args]
    words = [shlex.split(args) for args in installs]
    assert any(".[all]" in w for w in words), installs
