"""`octomon.envfile`: edit a .env in place, keep everything else, write it 0600 atomically."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octomon import config, envfile
from octomon.envfile import EnvFile

EXISTING = """\
# my settings
export OCTOPUS_API_KEY=sk_live_old_old_old_1234   # the old key

MY_OWN_THING="keep me"   # not octomon's
this line is not a binding
OCTOPUS_ACCOUNT_NUMBER=A-AAAAAAAA
INFLUXDB_ORG=first
INFLUXDB_ORG=second
# trailing comment"""


def test_set_replaces_in_place_and_keeps_everything_else() -> None:
    env = EnvFile(EXISTING)
    env.set("OCTOPUS_API_KEY", "sk_live_new_new_new_5678")
    env.set("INFLUXDB_ORG", "home")
    env.set("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X", comment="Slack")
    assert env.render() == (
        "# my settings\n"
        "export OCTOPUS_API_KEY=sk_live_new_new_new_5678\n"
        "\n"
        'MY_OWN_THING="keep me"   # not octomon\'s\n'
        "this line is not a binding\n"
        "OCTOPUS_ACCOUNT_NUMBER=A-AAAAAAAA\n"
        "INFLUXDB_ORG=home\n"
        "# trailing comment\n"
        "# Slack\n"
        "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T/B/X\n"
    )
    assert env.values() == {
        "OCTOPUS_API_KEY": "sk_live_new_new_new_5678",
        "MY_OWN_THING": "keep me",
        "OCTOPUS_ACCOUNT_NUMBER": "A-AAAAAAAA",
        "INFLUXDB_ORG": "home",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
    }


def test_untouched_file_renders_byte_for_byte() -> None:
    assert EnvFile(EXISTING).render() == EXISTING


def test_duplicates_are_collapsed_so_no_stale_secret_stays() -> None:
    env = EnvFile("INFLUXDB_TOKEN=old1\nX=1\nINFLUXDB_TOKEN=old2\n")
    env.set("INFLUXDB_TOKEN", "new")
    assert env.render() == "INFLUXDB_TOKEN=new\nX=1\n"


def test_new_file_gets_a_header_and_comments() -> None:
    env = EnvFile()
    env.update({"A": "1", "B": ""}, comments={"A": "the A"})
    text = env.render()
    assert text.startswith(envfile.HEADER)
    assert text.endswith("# the A\nA=1\nB=\n")
    assert env.values() == {"A": "1", "B": ""}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "with space",
        "has#hash",
        "a #comment-like",
        "it's",
        'say "hi"',
        "back\\slash",
        "\\'",
        "  padded  ",
        "=starts=with=equals",
        "ünï©ødé",
        "",
        "'",
        '"',
        "x\\",
    ],
)
def test_values_read_back_exactly(value: str) -> None:
    env = EnvFile()
    env.set("K", value)
    assert env.values()["K"] == value


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_storable_value_round_trips(value: str) -> None:
    try:
        envfile.check_value(value)
    except ValueError:
        assert "${" in value or any(c in value for c in "\r\n\x00")
        return
    env = EnvFile("# keep\nOTHER='x y'\n")
    env.set("K", value)
    assert env.values() == {"OTHER": "x y", "K": value}
    assert env.render().startswith("# keep\nOTHER='x y'\n")


@pytest.mark.parametrize("value", ["a${HOME}b", "two\nlines", "nul\x00"])
def test_unstorable_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        EnvFile().set("K", value)


def test_read_missing_file_is_empty(tmp_path: Path) -> None:
    env = EnvFile.read(tmp_path / "nope.env")
    assert env.values() == {} and not env.existed


def test_write_is_0600_even_under_umask_000(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    target = tmp_path / "d" / ".env"
    target.write_text("OLD=1\n")
    os.chmod(target, 0o644)
    env = EnvFile.read(target)
    env.set("NEW", "2")
    old_umask = os.umask(0)
    try:
        env.write()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "OLD=1\nNEW=2\n"
    assert config.read_env_file(target) == {"OLD": "1", "NEW": "2"}  # what config.load reads
    assert [p.name for p in target.parent.iterdir()] == [".env"]  # no temp file left behind


def test_write_is_never_world_readable_while_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watch every file the write creates, at the moment it is created."""
    seen: list[int] = []
    real_open = os.open

    def spy_open(path: str, flags: int, mode: int = 0o777, *args: object) -> int:
        fd = real_open(path, flags, mode, *args)
        if flags & os.O_CREAT:
            seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(os, "open", spy_open)
    old_umask = os.umask(0)
    try:
        EnvFile("A=1\n", tmp_path / ".env").write()
    finally:
        os.umask(old_umask)
    assert seen == [0o600]


def test_full_disk_raises_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d").mkdir()
    target = tmp_path / "d" / ".env"
    target.write_text("OLD=1\n")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        EnvFile("A=1\n").write(target)
    monkeypatch.undo()
    assert target.read_text() == "OLD=1\n"
    assert [p.name for p in target.parent.iterdir()] == [".env"]
