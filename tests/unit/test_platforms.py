"""The platform registry: adapter packages own their app.yaml section, variables and factory; the core config only
validates against what is registered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from bot.adapters.console import ConsoleAdapter
from bot.adapters.slack.settings import SlackSettings
from bot.app import build_adapters
from bot.config import load_settings, settings_model
from bot.errors import ConfigError, DuplicateRegistration
from bot.platforms import PlatformParts, PlatformRegistry, PlatformSpec, registered
from bot.storage.db import make_engine
from tests.conftest import ROOT


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    passphrase: SecretStr | None = None
    rooms: list[str] = []


def echo_factory(section: EchoSettings, parts: PlatformParts) -> Any:
    return ("echo", section.rooms)


class Nothing(BaseModel):
    model_config = ConfigDict(extra="forbid")


def echo_registry() -> PlatformRegistry:
    platforms = PlatformRegistry()
    platforms.register(PlatformSpec("console", Nothing, lambda s, p: ConsoleAdapter(), owner="core"))
    platforms.register(
        PlatformSpec("echo", EchoSettings, echo_factory, env={"token": "ECHO_TOKEN"}, owner="tests")
    )
    return platforms


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_platform_registered_twice_is_refused_naming_both() -> None:
    platforms = echo_registry()
    with pytest.raises(DuplicateRegistration) as err:
        platforms.register(PlatformSpec("echo", EchoSettings, echo_factory, owner="other.module"))
    assert str(err.value) == "platform 'echo' is registered twice: by tests and by other.module"
    assert platforms["echo"].owner == "tests"


def test_the_known_platforms_register_themselves() -> None:
    assert set(registered().names) >= {"console", "slack", "discord"}
    with pytest.raises(DuplicateRegistration, match="platform 'slack' is registered twice"):
        registered().register(PlatformSpec("slack", SlackSettings, echo_factory, owner="a.copy"))


def test_a_registered_platform_brings_its_section_and_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "platforms: [console, echo]\necho: {rooms: [a]}\n")
    s = load_settings(
        path, env={"ECHO_TOKEN": "t0k", "BLENDWISE_ECHO__ROOMS": "b, c"}, platforms=echo_registry()
    )
    assert s.platforms == ["console", "echo"]
    section = s.section("echo", EchoSettings)
    assert section.rooms == ["b", "c"]  # a list setting of a platform's section reads comma-separated
    assert section.token is not None and section.token.get_secret_value() == "t0k"
    with pytest.raises(ConfigError) as err:
        s.section("slack", SlackSettings)
    assert err.value.key == "slack"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            "platforms: [console, teams]\n",
            "platforms",
            "'teams' is not a known platform (known: console, echo)",
        ),
        ("platforms: [echo]\nslack: {port: 3000}\n", "slack", "unknown key"),
        ("echo: {room: a}\n", "echo.room", "unknown key"),
        ("echo: {token: literal}\n", "echo.token", "secrets must come from the environment"),
        ("echo: {passphrase: literal}\n", "echo.passphrase", "secrets must come from the environment"),
    ],
)
def test_platforms_and_sections_are_checked_against_the_registry(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={}, platforms=echo_registry())
    assert err.value.key == key
    assert problem in err.value.problem


def test_unknown_platform_in_the_default_registry_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "platforms: [matrix]\n"), env={})
    assert err.value.key == "platforms"
    # Every folder under bot/adapters/ with a settings module is a platform; none is listed by hand.
    known = err.value.problem.split("(known: ", 1)[1].rstrip(")")
    assert "'matrix' is not a known platform" in err.value.problem
    assert set(known.split(", ")) == {"console", "discord", "slack", "teams"}


def test_a_platform_may_not_shadow_a_core_setting() -> None:
    platforms = PlatformRegistry()
    platforms.register(PlatformSpec("web", EchoSettings, echo_factory, owner="tests"))
    with pytest.raises(ValueError, match="platform 'web' \\(from tests\\) clashes"):
        settings_model(platforms)


def test_build_adapters_uses_each_configured_platforms_factory(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "platforms: [console]\n"), env={})
    adapters = build_adapters(s, make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert list(adapters) == ["console"] and isinstance(adapters["console"], ConsoleAdapter)


def test_settings_validate_without_any_platform_sdk(tmp_path: Path) -> None:
    # The spec modules must not import their SDK: app.yaml is validated where the extra is not installed.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('discord', 'slack_bolt', 'slack_sdk', 'microsoft_agents', 'jwt'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from bot.config import load_settings\n"
        "s = load_settings(env={'DISCORD_TOKEN': 'x', 'SLACK_BOT_TOKEN': 'y', 'TEAMS_APP_PASSWORD': 'z'}, path=None)\n"
        "print(s.discord.token.get_secret_value(), s.slack.bot_token.get_secret_value(),\n"
        "      s.teams.app_password.get_secret_value(), 'discord' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["x", "y", "z", "False"]
