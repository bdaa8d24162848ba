"""The feature registry: duplicate names fail at start-up naming both registrants; a feature whose optional
dependency is missing is left out with one line, and the commands that need it answer that line with exit code 2."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from bot.app import Runtime, build
from bot.commands import Sub, reply
from bot.config import Settings
from bot.dispatcher import notice
from bot.errors import DuplicateRegistration
from bot.nudges.purposes import Purpose
from bot.registry import MissingExtra, Registry, load_features
from tests.conftest import CONTENT, ROOT

pytestmark = pytest.mark.timeout(180)


def feature(name: str, setup: object, **attrs: object) -> types.ModuleType:
    """A real feature module, built in the test: a module with ``setup(registry)``."""
    module = types.ModuleType(name)
    module.setup = setup  # type: ignore[attr-defined]
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def test_a_button_registered_twice_fails_naming_both_registrants(rt: Runtime) -> None:
    def setup(registry: Registry) -> None:
        registry.add_button("lesson.done", lambda session, person, ev: notice("mine"))

    with pytest.raises(DuplicateRegistration) as err:
        Registry(rt).setup(feature("tests.clashing_feature", setup))
    assert str(err.value) == (
        "button 'lesson.done' is registered twice: by bot.dispatcher and by tests.clashing_feature"
    )
    assert err.value.exit_code == 2


def test_an_attachment_kind_registered_twice_fails_naming_both_registrants(rt: Runtime) -> None:
    """The reporting feature makes the digest chart again; the core makes session invites again."""
    assert rt.dispatcher.attachment_owners["digest-chart"] == "bot.reporting"
    for kind, first in (("digest-chart", "bot.reporting"), ("session-invite", "bot.dispatcher")):
        with pytest.raises(DuplicateRegistration, match=re.escape(f"by {first} and by tests.files")):
            Registry(rt).setup(feature("tests.files", lambda r, k=kind: r.add_attachment(k, lambda s, src: None)))
    assert rt.dispatcher.attachment("nothing:1") is None, "a kind nobody registered names nothing"


def test_a_feature_button_cannot_replace_another_features_button(rt: Runtime) -> None:
    """The live feature owns ``poll.step``; the core no longer has a handler that a feature silently replaces."""
    assert rt.dispatcher.button_owners["poll.step"] == "bot.live"

    def setup(registry: Registry) -> None:
        registry.add_button("poll.step", lambda session, person, ev: notice("mine"))

    with pytest.raises(DuplicateRegistration, match=re.escape("by bot.live and by tests.other_polls")):
        Registry(rt).setup(feature("tests.other_polls", setup))


def test_a_command_registered_twice_fails_naming_both_registrants(rt: Runtime) -> None:
    def setup(registry: Registry) -> None:
        registry.add_command("recap", Sub(lambda s, p, e, a: reply("mine"), "learner", "recap"))

    with pytest.raises(DuplicateRegistration) as err:
        Registry(rt).setup(feature("tests.recap_feature", setup))
    assert str(err.value) == (
        "/learn subcommand 'recap' is registered twice: by bot.live and by tests.recap_feature"
    )
    with pytest.raises(DuplicateRegistration, match=re.escape("'help' is registered twice: by bot.commands and by tests.h")):
        Registry(rt).setup(
            feature("tests.h", lambda r: r.add_command("help", Sub(lambda s, p, e, a: reply(""), "learner", "help")))
        )


def test_a_purpose_registered_twice_fails_naming_both_registrants(rt: Runtime) -> None:
    catchup = Purpose("catchup", priority=6, key_parts=("session", "enrollment"))

    def setup(registry: Registry) -> None:
        registry.add_purpose(catchup.bind(lambda session, delivery: None))

    with pytest.raises(DuplicateRegistration) as err:
        Registry(rt).setup(feature("tests.catchup_again", setup))
    assert str(err.value) == "purpose 'catchup' is registered twice: by bot.live and by tests.catchup_again"


def test_setting_up_the_shipped_features_twice_fails_at_start_up(rt: Runtime) -> None:
    with pytest.raises(DuplicateRegistration, match=re.escape("by bot.live and by bot.live")):
        load_features(Registry(rt))


def test_a_failed_setup_registers_nothing(rt: Runtime) -> None:
    """Registrations are staged: a feature that breaks half-way leaves no button behind."""

    def setup(registry: Registry) -> None:
        registry.add_button("half.way", lambda session, person, ev: notice("x"))
        import blendwise_missing_dependency  # noqa: F401

    registry = Registry(rt)
    assert registry.setup(feature("tests.half", setup, EXTRA="half")) is False
    assert "half.way" not in rt.dispatcher.buttons
    assert str(registry.missing["half"]) == (
        "the half feature is off because 'blendwise_missing_dependency' is not installed: "
        "pip install 'blendwise[half]' enables it"
    )


def test_a_feature_missing_its_extra_is_left_out_with_one_line(
    settings: Settings, clock: object, console: object, caplog: pytest.LogCaptureFixture
) -> None:
    module = feature("tests.needs_fsrs", lambda registry: registry.add_button("x.y", print),
                     EXTRA="reports", REQUIRES=("blendwise_no_such_module",))
    runtime = build(settings, clock=clock, adapters={"console": console})  # type: ignore[arg-type]
    assert runtime.registry is not None
    with caplog.at_level(logging.INFO, logger="bot.registry"):
        assert load_features(runtime.registry, ("bot.nope_not_shipped",)) == []
        assert runtime.registry.setup(module) is False
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.registry"]
    assert lines == [
        "the needs_fsrs feature is off because 'blendwise_no_such_module' is not installed: "
        "pip install 'blendwise[reports]' enables it"
    ]
    assert "x.y" not in runtime.dispatcher.buttons
    with pytest.raises(MissingExtra) as err:
        runtime.feature("needs_fsrs")
    assert err.value.exit_code == 2 and str(err.value) == lines[0]


# ---------------------------------------------------------------------- a missing optional dependency, for real
#: Runs the real ``blendwise`` entry point with an import hook that makes ``fsrs`` and ``matplotlib`` unimportable
#: (nothing is uninstalled): the hook raises ModuleNotFoundError exactly as a missing package does.
BLOCKED = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("fsrs", "matplotlib"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    if sys.argv[1] == "build":
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
        from bot.app import build
        from bot.config import load_settings
        rt = build(load_settings(), adapters={})
        print("features:", ",".join(sorted(rt.registry.services)), "missing:", ",".join(sorted(rt.registry.missing)))
        print("buttons:", "reinforce.rate" in rt.dispatcher.buttons, "poll.step" in rt.dispatcher.buttons)
    else:
        from bot.cli import main
        sys.argv = ["blendwise", *sys.argv[1:]]
        main()
    """
)


def run_blocked(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"BLENDWISE_CONFIG": str(cwd / "app.yaml"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_without_fsrs_and_matplotlib_the_app_builds_and_html_reports_say_which_extra(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'bw.db'}\ncontent_dir: {CONTENT}\n", encoding="utf-8"
    )
    built = run_blocked(tmp_path, "build")
    assert built.returncode == 0, built.stderr
    assert "features: live missing: reinforcement,reporting" in built.stdout
    assert "buttons: False True" in built.stdout
    assert (
        "bot.registry: the reinforcement feature is off because 'fsrs' is not installed: "
        "pip install 'blendwise[reports]' enables it"
    ) in built.stderr

    listed = run_blocked(tmp_path, "cohort", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cohort" in listed.stdout and "Traceback" not in listed.stderr

    html = run_blocked(tmp_path, "report", "--format", "html")
    assert html.returncode == 2
    assert html.stderr.strip() == (
        "error: the reporting feature is off because 'matplotlib' is not installed: "
        "pip install 'blendwise[reports]' enables it"
    )
    assert "Traceback" not in html.stderr and html.stdout == ""


def test_the_cli_finds_feature_commands_through_the_registry() -> None:
    """``bot/cli.py`` imports no feature CLI module: ``session`` and ``search`` arrive through ``setup_cli``."""
    source = (ROOT / "bot" / "cli.py").read_text(encoding="utf-8")
    assert "bot.live" not in source
    assert "bot.live" not in (ROOT / "bot" / "demo.py").read_text(encoding="utf-8")
    from bot.cli import app

    names = {group.name for group in app.registered_groups} | {c.name for c in app.registered_commands}
    assert {"session", "search"} <= names

