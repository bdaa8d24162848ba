"""Every command line in a fenced block of README.md and docs/*.md runs (issue 11, point 5).

Each document's ``blendwise …`` and ``make …`` lines run in order, through a shell, in a fresh directory holding a
demo database (``blendwise.db``, where the demo writes and the docs read), an ``app.yaml`` pointing at it and at
the shipped content, the fixtures the lines name (cohorts ``spring-leads`` and ``C`` with a past ``kickoff``
session, ``kickoff.vtt``) and a ``content`` link, so a reader's copy-paste works as written.

Deliberate departures, each visible in :data:`PARSE_ONLY` or below:

* lines that need something outside the test (platform tokens, an LLM, a Learning Record Store) or that never
  return (``blendwise run``) get ``--help`` appended: click parses the whole line before acting on the eager
  ``--help``, so this proves the subcommand and every option written exist (their values are not checked);
* ``make`` lines run as ``make -n`` in the repository (the target exists and its recipe expands); the recipes of
  ``make demo`` and ``make report`` then run for real in the document's directory;
* demos run with ``--learners 3`` appended (the last value wins), so the suite stays quick; the line's own
  options are still parsed.

A test of this kind fails when a document gains a line the CLI cannot run: fix the line, or the CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CONTENT, ROOT

# Each line is a subprocess (about a second of start-up, more on a loaded machine), so a document takes a while.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BIN = ROOT / ".venv" / "bin"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/)?(blendwise|make)\b")
PARSE_ONLY = {
    r"\bblendwise run\b": "serves until stopped, with platform tokens",
    r"\bblendwise xapi forward\b": "needs a Learning Record Store",
    r"\bblendwise content draft-quiz\b": "needs an LLM",
}
#: Cohorts the examples name, each with the commands that set it up. ``C`` stands for "your cohort" in the recap
#: examples, which assume its kickoff already has a transcript.
FIXTURE_COHORTS = {
    "spring-leads": ["blendwise cohort create spring-leads --program new-manager-onboarding --start 2026-03-02"],
    "C": [
        "blendwise cohort create C --program new-manager-onboarding --start 2026-03-02",
        "blendwise session attach kickoff --cohort C --transcript kickoff.vtt",
    ],
}
#: The meeting-tool reports the attendance examples import (the fixtures of tests/unit/test_attendance_import.py).
ATTENDANCE_REPORTS = {"zoom-participants.csv": "zoom.csv", "teams-attendance.csv": "teams.csv"}
MAKE_RUN = {"demo", "report"}  # recipes cheap enough to run; test and bench would run this suite / minutes of load
TRANSCRIPT = """WEBVTT

00:00:01.000 --> 00:00:06.000
<v Rui>Welcome to the kickoff. Today we agree how one-on-ones and delegation will work in this cohort.

00:00:06.000 --> 00:00:12.000
<v Ana>I will start weekly one-on-ones with each report and delegate the status report this month.
"""


@dataclass(frozen=True)
class Line:
    doc: Path
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.number}: {self.text}"


def documented_lines(doc: Path) -> list[Line]:
    """The command lines of ``doc``'s fenced blocks: trailing comments and ``[optional]`` parts removed,
    backslash continuations joined."""
    lines: list[Line] = []
    fenced = False
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        text = raw.strip()
        if pending is not None:
            start, text = pending[0], pending[1] + " " + text
            pending = None
        else:
            start = number
        if text.endswith("\\"):
            pending = (start, text[:-1].strip())
            continue
        text = re.sub(r"\s+#\s.*$", "", text)
        text = re.sub(r"\s*\[[^\]]*\]", "", text).strip()
        if COMMAND.match(text):
            lines.append(Line(doc, start, text))
    return lines


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A directory a reader could be in after ``make demo``, plus the fixtures the docs' examples name."""
    home = tmp_path_factory.mktemp("docs-template")
    (home / "app.yaml").write_text(
        f"database_url: sqlite:///blendwise.db\ncontent_dir: {CONTENT}\ntimezone: Europe/London\n"
        "admins: [console:admin]\n",
        encoding="utf-8",
    )
    (home / "content").symlink_to(CONTENT)
    (home / "kickoff.vtt").write_text(TRANSCRIPT, encoding="utf-8")
    for name, fixture in ATTENDANCE_REPORTS.items():
        shutil.copyfile(ROOT / "tests" / "data" / "attendance" / fixture, home / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLENDWISE_", "SLACK_", "DISCORD_", "OPENAI_", "MAKE"))
    }
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", BLENDWISE_CONFIG=str(home / "app.yaml"))
    done = shell("blendwise demo --learners 3", home, env)
    assert done.returncode == 0, done.stderr
    return home, env


def add_fixture_cohorts(lines: list[Line], workdir: Path, env: dict[str, str]) -> None:
    """The cohorts a document's examples name. Created per document, after the demo: the demo refuses to replace
    a database holding real cohorts, and a document may run ``make demo`` itself."""
    named = {m for line in lines for m in re.findall(r"(?:--cohort|attendance import)\s+(\S+)", line.text)}
    for name in sorted(named & set(FIXTURE_COHORTS)):
        for command in FIXTURE_COHORTS[name]:
            done = shell(command, workdir, env)
            assert done.returncode == 0, (command, done.stderr)


def as_run(line: Line) -> str:
    """What the test runs for a documented line (see the module docstring for each departure)."""
    command = line.text.replace(".venv/bin/", f"{BIN}/")
    if any(re.search(pattern, command) for pattern in PARSE_ONLY):
        return command + " --help"
    if re.search(r"\bblendwise demo\b", command):
        return command + " --learners 3"
    return command


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_documented_command_lines_run(doc: Path, template: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    lines = documented_lines(doc)
    if not lines:
        pytest.skip(f"{doc.name} shows no command line")
    home, env = template
    workdir = tmp_path / "reader"
    shutil.copytree(home, workdir, symlinks=True)
    env = {**env, "BLENDWISE_CONFIG": str(workdir / "app.yaml")}
    add_fixture_cohorts(lines, workdir, env)
    for line in lines:
        target = re.match(r"^make\s+(\S+)$", line.text)
        if target:
            dry = shell(f"make -n {target.group(1)}", ROOT, env)
            assert dry.returncode == 0, f"{line}\n{dry.stderr}"
            if target.group(1) not in MAKE_RUN:
                continue
            recipe = dry.stdout.strip().splitlines()[-1]
            assert recipe.startswith(".venv/bin/blendwise"), (line, recipe)
            command = as_run(Line(line.doc, line.number, recipe))
        else:
            command = as_run(line)
        done = shell(command, workdir, env)
        assert done.returncode == 0, f"{line}\n(ran: {command})\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"{line}\n{done.stderr[-2000:]}"


def test_the_docs_show_command_lines() -> None:
    """The extraction itself: a change to the docs' fences must not silently leave nothing to run."""
    found = {str(d.relative_to(ROOT)): [line.text for line in documented_lines(d)] for d in DOCS}
    assert "make demo" in found["README.md"] and "make report" in found["README.md"]
    assert ".venv/bin/blendwise report --format html -o report.html" in found["README.md"]
    assert "blendwise report --database-url sqlite:///blendwise.db --format html -o report.html" in found[
        "docs/reports.md"
    ]
    assert "blendwise search one-on-ones" in found["docs/live.md"]
    assert any(text.startswith("BLENDWISE_LRS__ENDPOINT=") for text in found["docs/xapi.md"])
    assert sum(len(v) for v in found.values()) >= 20
