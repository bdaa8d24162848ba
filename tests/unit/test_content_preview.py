"""``blendwise content preview``: a step as the learner receives it, through the real composer and renderers."""

from __future__ import annotations

import importlib.abc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONTENT, ROOT

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")
PROGRAM = CONTENT / "feedback-fundamentals"

pytestmark = pytest.mark.timeout(600)


def preview(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLENDWISE, "--config", str(tmp_path / "none.yaml"), "content", "preview", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def test_console_preview_shows_every_message_part_with_the_sample_learner(tmp_path: Path) -> None:
    done = preview(tmp_path, str(PROGRAM), "--step", "why-feedback-matters")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("=== why-feedback-matters (lesson) ===\n## Why feedback matters, and why it goes wrong\n")
    # Rendered for the sample learner, split as delivery splits it, with the buttons of the last part.
    assert "Hi Amara, welcome to Feedback Fundamentals." in out and "{{" not in out
    assert "## Why feedback matters, and why it goes wrong (2/2)" in out
    assert "[Done] [Snooze 2h] [Remind me tomorrow]" in out
    # The first lesson opens with the program's objectives; a later lesson without its own has no such block.
    assert out.index("**In this program you will learn to:**\n- Describe a colleague's behaviour") < out.index("Hi Amara")
    later = preview(tmp_path, str(PROGRAM), "--step", "sbi-model")
    assert later.returncode == 0, later.stderr
    assert "will learn to" not in later.stdout and "After this lesson" not in later.stdout


def test_platform_previews_are_the_platform_payloads(tmp_path: Path) -> None:
    done = preview(tmp_path, str(PROGRAM / "program.yaml"), "--step", "feedback-workshop", "--platform", "slack")
    assert done.returncode == 0, done.stderr
    head, payload = done.stdout.split("\n", 1)
    assert head == "=== feedback-workshop (session) ==="
    [message] = json.loads(payload)
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Live session: Live workshop - feedback in practice", "emoji": True},
    }
    done = preview(tmp_path, str(PROGRAM), "--step", "feedback-check", "--platform", "discord")
    assert done.returncode == 0, done.stderr
    [part] = json.loads(done.stdout.split("\n", 1)[1])
    assert part["embeds"][0]["title"] == "Pre-work check" and part["components"]


def test_preview_mistakes_are_one_line(tmp_path: Path) -> None:
    done = preview(tmp_path, str(PROGRAM), "--step", "nope", "--platform", "pager")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: --platform: 'pager' is not one of console, ")


class _NoDiscord(importlib.abc.MetaPathFinder):
    """The ``discord`` extra, not installed: importing it fails exactly as a missing package does."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == "discord":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_a_platform_whose_extra_is_missing_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process, through the real entry point; the SDK is hidden from the import system (nothing of ours
    is replaced: the discord renderer really fails to import)."""
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    for name in [n for n in sys.modules if n.split(".")[0] == "discord" or n == "bot.adapters.discord.render"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoDiscord(), *sys.meta_path])
    args = ["content", "preview", str(PROGRAM), "--step", "feedback-check", "--platform", "discord"]
    monkeypatch.setattr(sys, "argv", ["blendwise", "--config", "none.yaml", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, errors = capsys.readouterr()
    assert exited.value.code == 2
    assert errors == "error: the discord preview needs the 'discord' extra: pip install 'blendwise[discord]'\n"
    assert out == "=== feedback-check (quiz) ===\n"  # the step's heading, then nothing half-rendered
