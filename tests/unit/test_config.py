"""Settings: defaults, environment overrides, ${VAR} substitution, secret and key checks, and the CLI's one line."""

from __future__ import annotations

import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from tests.conftest import ROOT

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path):
    s = load_settings(write(tmp_path, ""), env={})
    assert s.database_url == "sqlite:///blendwise.db"
    assert s.timezone == "UTC"
    assert (s.working_hours.start, s.working_hours.end) == (time(9, 0), time(17, 30))
    assert s.working_hours.weekdays == frozenset(range(5))
    assert s.quiet_hours is not None and (s.quiet_hours.start, s.quiet_hours.end) == (time(20, 0), time(8, 0))
    assert (s.nudges.auto_pause_after, s.nudges.session_reminders) == (3, ["24h", "15m"])
    assert (s.digest.day, s.digest.at, s.digest.include_indirect) == ("mon", time(9, 0), False)
    assert s.platforms == ["console"] and s.admins == []
    assert s.content_dir == (tmp_path / "content").resolve()  # relative to the file


def test_file_values(tmp_path):
    path = write(
        tmp_path, "timezone: Europe/Berlin\nworking_hours: {start: '08:00', end: '16:00', days: [mon, tue]}\n"
    )
    s = load_settings(path, env={})
    assert s.timezone == "Europe/Berlin"
    assert (s.working_hours.start, s.working_hours.weekdays) == (time(8, 0), frozenset({0, 1}))


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, "database_url: sqlite:///from-file.db\ndigest: {day: mon}\n")
    env = {"BLENDWISE_DATABASE_URL": "sqlite:///from-env.db", "BLENDWISE_DIGEST__DAY": "friday"}
    s = load_settings(path, env=env)
    assert (s.database_url, s.digest.day) == ("sqlite:///from-env.db", "fri")


def test_flags_override_the_environment(tmp_path):
    s = load_settings(
        write(tmp_path, ""),
        env={"BLENDWISE_DATABASE_URL": "sqlite:///env.db"},
        overrides={"database_url": "sqlite:///flag.db"},
    )
    assert s.database_url == "sqlite:///flag.db"


def test_variable_substitution(tmp_path):
    path = write(tmp_path, "database_url: ${DB_URL}\nslack: {bot_token: '${MY_SLACK_TOKEN}'}\n")
    s = load_settings(path, env={"DB_URL": "postgresql+psycopg://u@h/db", "MY_SLACK_TOKEN": "xoxb-from-env"})
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.slack.bot_token is not None and s.slack.bot_token.get_secret_value() == "xoxb-from-env"
    assert "xoxb-from-env" not in repr(s)  # secrets stay out of logs
    unset = load_settings(path, env={"DB_URL": "sqlite:///x.db"})
    assert unset.slack.bot_token is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("slack: {bot_token: xoxb-1234}\n", "slack.bot_token"),
        ("discord: {token: abc.def}\n", "discord.token"),
        ("llm: {api_key: sk-123}\n", "llm.api_key"),
        ("lrs: {password: hunter2}\n", "lrs.password"),
        # A platform's secret is whatever its model types SecretStr, not a name on a list kept in the core.
        ("teams: {app_password: s3cret}\n", "teams.app_password"),
    ],
)
def test_literal_secrets_are_refused_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert err.value.key == key
    assert (
        str(err.value)
        == f"config error: {key}: secrets must come from the environment; write ${{ENV_VAR}} instead"
    )


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("wrking_hours: {start: '09:00'}\n", "wrking_hours", "unknown key"),
        ("working_hours: {strat: '09:00'}\n", "working_hours.strat", "unknown key"),
        ("timezone: Mars/Olympus\n", "timezone", "unknown time zone 'Mars/Olympus'"),
        ("working_hours: {start: '25:00'}\n", "working_hours.start", "'25:00' is not a time of day"),
        ("digest: {at: noon}\n", "digest.at", "'noon' is not a time of day"),
        ("digest: {day: someday}\n", "digest.day", "'someday' is not a day name"),
        ("nudges: {auto_pause_after: 0}\n", "nudges.auto_pause_after", "greater than or equal to 1"),
        ("admins: [alice]\n", "admins", "must be written platform:user_id"),
        ("live: {organizer: not an address}\n", "live.organizer", "'not an address' is not an email address"),
        ("live: {ics_domain: 'bad domain!'}\n", "live.ics_domain", "'bad domain!' is not a domain name"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(err.value).startswith(f"config error: {key}: ")


def test_bad_environment_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), env={"BLENDWISE_DIGEST__AT": "25:99"})
    assert err.value.key == "digest.at"


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "nope.yaml", env={})
    assert err.value.key == "--config"


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "timezone: UTC\nworking_hours: [unclosed\n"), env={})
    assert err.value.key.startswith("line ")


@pytest.mark.parametrize(
    ("text", "key"),
    [("timezone: Mars/Olympus\n", "timezone"), ("quiet_hours: {start: '9pm'}\n", "quiet_hours.start")],
)
def test_cli_prints_one_line_and_exits_2(tmp_path, text, key):
    path = write(tmp_path, text)
    done = subprocess.run(
        [BLENDWISE, "--config", str(path), "report"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: config error: {key}: ")
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_runner_in_process(tmp_path, monkeypatch, capsys):
    """The same through ``main()`` in-process (typer's app), for a quick signal without a subprocess."""
    from bot import cli

    path = write(tmp_path, "unknown_thing: 1\n")
    monkeypatch.setattr(sys, "argv", ["blendwise", "--config", str(path), "report"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: config error: unknown_thing: unknown key"
