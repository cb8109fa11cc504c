"""One clear line for every mistake, saying what to do: the exit code, one line, nothing
"unexpected", and the exact line (issue 26)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from octomon.cli import dates
from tests.helpers.cli import KEY, invoke, set_clock

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)  # a Monday in the UK's winter
FIX = "fix the settings (see `octomon verify-config`)"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    set_clock(monkeypatch, lambda: NOW)


def one_line(args: list[str], code: int = 2, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    return lines[0]


# --- the settings file ------------------------------------------------------------------


def test_no_env_file_names_the_path_looked_at_and_how_to_make_one() -> None:
    here = Path.cwd() / ".env"
    assert one_line(["test-octopus"]) == (
        "error: invalid configuration (2 problems): OCTOPUS_API_KEY is required (your API key, "
        "from the API access page of your Octopus account); OCTOPUS_ACCOUNT_NUMBER is required "
        "(A-XXXXXXXX, shown at the top of your Octopus account) — "
        f"{here} does not exist: run `octomon configure` to write it, or pass --env-file PATH"
    )


def test_an_env_file_given_that_does_not_exist_is_named() -> None:
    assert one_line(["status", "--env-file", "nope.env"]) == (
        f"error: invalid configuration: --env-file nope.env: no such file — {FIX}"
    )


def test_a_damaged_line_is_named_by_its_number_without_its_secret() -> None:
    Path(".env").write_text(f"# mine\nOCTOPUS_API_KEY {KEY}\nOCTOPUS_ACCOUNT_NUMBER=A-1234ABCD\n")
    line = one_line(["status"])
    assert line == f"error: invalid configuration: .env line 2: not NAME=value — {FIX}"
    assert KEY not in line


def test_python_dotenvs_own_warning_is_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    Path(".env").write_text("this is not a setting\n")
    result = invoke("status")
    assert "python-dotenv" not in result.output + "".join(capfd.readouterr())


def test_a_quote_never_closed_names_the_lines_it_swallowed() -> None:
    Path(".env").write_text('A=1\nOCTOPUS_ACCOUNT_NUMBER="A-1234ABCD\nB=2\nC="x"\nD=4\n')
    assert one_line(["status"]) == (
        "error: invalid configuration: .env line 2: a quote is never closed "
        f"(lines 2-4 were not read) — {FIX}"
    )


def test_an_env_file_not_in_utf8_is_one_line() -> None:
    Path(".env").write_bytes(b"A=1\nB=caf\xe9\n")
    assert one_line(["status"]) == (
        "error: invalid configuration: .env line 2: not UTF-8 text (save the file as UTF-8) "
        f"— {FIX}"
    )


def test_an_env_file_that_is_a_directory_is_one_line() -> None:
    Path(".env").mkdir()
    assert one_line(["cache", "status"]) == (
        f"error: invalid configuration: .env: is a directory, not a settings file — {FIX}"
    )


def test_a_utf8_bom_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    from octomon.envfile import read_values

    path = tmp_path / "bom.env"
    path.write_bytes(b"\xef\xbb\xbfOCTOPUS_GAS=off\n")
    assert read_values(path) == ({"OCTOPUS_GAS": "off"}, [])


def test_verify_config_shows_its_table_with_the_problems_marked() -> None:
    Path(".env").write_text("OCTOPUS_ACCOUNT_NUMBER=B-1\nPOLL_INTERVAL_SECONDS=0\n")
    result = invoke("verify-config", env={"COLUMNS": "100"})
    assert result.exit_code == 2
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "✗ OCTOPUS_ACCOUNT_NUMBER" in rows and "B-1" in rows["✗ OCTOPUS_ACCOUNT_NUMBER"]
    assert "✗ POLL_INTERVAL_SECONDS" in rows and "✗ OCTOPUS_API_KEY" in rows
    assert "OCTOPUS_GAS" in rows  # the valid ones are listed too, unmarked
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: invalid configuration (3 problems): ")
    assert last.endswith(" — fix the settings marked ✗ above")


# --- CACHE_DIR ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_dir", "rule"),
    [
        ("{file}/cache", "cannot be created: {file} is not a directory"),
        ("{file}", "exists and is not a directory"),
        (
            "/proc/octomon-cache",
            "is on /proc, a proc filesystem the kernel makes up, which "
            "cannot hold files: choose a directory on a disk",
        ),
        ("{link}", "is a symbolic link to {tmp}/gone, which does not exist"),
        ("~no-such-user-here/cache", "starts with ~ and a user this system does not have"),
    ],
)
def test_cache_dir_problems_name_the_real_cause(tmp_path: Path, cache_dir: str, rule: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    names = {"file": file, "link": link, "tmp": tmp_path}
    value = cache_dir.format(**names)
    assert one_line(["cache", "status"], env={"CACHE_DIR": value}) == (
        f"error: invalid configuration: CACHE_DIR={value!r}: {rule.format(**names)} — {FIX}"
    )


# --- dates --------------------------------------------------------------------------------


def test_since_today_without_until_is_today_so_far() -> None:
    assert dates.uk_days("2026-12-07", None, NOW) == (date(2026, 12, 7), date(2026, 12, 7))
    assert dates.uk_days("2026-12-01", None, NOW) == (date(2026, 12, 1), date(2026, 12, 6))
    assert dates.uk_days(None, None, NOW) == (date(2026, 11, 30), date(2026, 12, 6))
    assert dates.uk_days(None, "2026-11-10", NOW) == (date(2026, 11, 4), date(2026, 11, 10))


@pytest.mark.parametrize("command", ["costs", "reconcile", "tariff"])
def test_a_date_that_is_not_one_is_worded_the_same_everywhere(command: str) -> None:
    assert one_line([command, "--since", "30 Nov"]) == (
        "error: --since '30 Nov' is not a date (YYYY-MM-DD, a UK day)"
    )


def test_backfill_says_the_same_with_its_own_format() -> None:
    assert one_line(["backfill", "--since", "30 Nov"]) == (
        "error: --since '30 Nov' is not a date (YYYY-MM-DD, midnight UTC, or "
        "YYYY-MM-DDTHH:MM[:SS][+HH:MM], UTC unless an offset)"
    )


@pytest.mark.parametrize("command", ["costs", "reconcile", "tariff"])
@pytest.mark.usefixtures("clock")
def test_a_day_in_the_future_is_worded_the_same_everywhere(command: str) -> None:
    assert one_line([command, "--since", "2026-12-08"]) == (
        "error: --since 2026-12-08 is in the future (today is 2026-12-07 in the UK)"
    )


@pytest.mark.usefixtures("clock")
def test_backfill_from_the_future_says_so() -> None:
    assert one_line(["backfill", "--since", "2026-12-08"]) == (
        "error: --since 2026-12-08T00:00:00Z is in the future (now is 2026-12-07T12:00:00Z)"
    )


@pytest.mark.parametrize("command", ["costs", "reconcile"])
@pytest.mark.usefixtures("clock")
def test_a_reversed_range_is_worded_the_same_everywhere(command: str) -> None:
    assert one_line([command, "--since", "2026-11-30", "--until", "2026-11-01"]) == (
        "error: --until 2026-11-01 is before --since 2026-11-30"
    )


@pytest.mark.usefixtures("clock")
def test_backfill_reversed_is_worded_the_same() -> None:
    assert one_line(["backfill", "--since", "2026-11-30", "--until", "2026-11-01"]) == (
        "error: --until 2026-11-01T00:00:00Z is before --since 2026-11-30T00:00:00Z"
    )


@pytest.mark.usefixtures("clock")
def test_costs_since_today_is_not_refused_as_a_reversed_range() -> None:
    line = one_line(["costs", "--since", "2026-12-07"])  # settings missing: that is the news
    assert "is before" not in line and "OCTOPUS_API_KEY is required" in line


# --- durations ----------------------------------------------------------------------------


def test_the_budget_wait_is_in_words() -> None:
    from octomon.errors import BudgetExhausted

    exc = BudgetExhausted(3505)
    assert exc.message == "API call budget used up; next free slot in 58 min"
    assert exc.hint == "raise POLL_INTERVAL_SECONDS, or OCTOPUS_MAX_CALLS_PER_HOUR (at most 100)"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (59.4, "59 s"),
        (61, "1 min"),
        (3505, "58 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (90000, "25 h"),
        (183600, "2 d 3 h"),
    ],
)
def test_durations_in_words(seconds: float, words: str) -> None:
    from octomon.durations import words as in_words

    assert in_words(seconds) == words
