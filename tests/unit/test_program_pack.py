"""Programs ready for Monday: objectives, facilitator guides, rubrics, the evaluation, references, per-cohort join
links, and ``content guide`` printing the facilitator pack."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.journeys.loader import check_path, load_program
from bot.journeys.model import PollStep
from bot.storage.db import make_engine
from bot.storage.models import LiveSessionRow
from tests.conftest import CONTENT
from tests.unit.test_cli import run
from tests.unit.test_content import line_of, write

PROGRAM = """\
id: pack
title: Pack
objectives: [Give feedback people can act on]
references:
  - citation: "Kirkpatrick, D. L. & Kirkpatrick, J. D. (2006). Evaluating Training Programs (3rd ed.). Berrett-Koehler."
steps:
  - id: intro
    title: Intro
    kind: lesson
    objectives: [Name the three parts of SBI]
    body: Hello.
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 2, at: "14:00"}
    join_url: https://meet.example.com/placeholder
    facilitator_file: guides/workshop.md
    rubric:
      levels: [Not yet, Getting there, Confident]
      criteria:
        - name: Specific behaviour
          descriptors: [A label, Mostly behaviour, What a camera would record]
evaluation:
  unlock: {day: 3, after: [intro]}
  due: 3d
  questions:
    - id: useful
      level: 1
      text: How useful was the program for your work?
      options: [Very, Somewhat, Not really]
    - id: intend
      level: 3
      text: Will you use SBI in a real conversation in the next two weeks?
      options: ["Yes", "Maybe", "No"]
"""

@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


GUIDE = """\
# Workshop facilitator guide

## Agenda
- Warm-up (10 min)
- Practice in trios (40 min)

## Talk notes
Open with a story.

## Exercises
Trios: giver, receiver, observer.

## Observer sheet
Tick what you saw.
"""


def test_a_complete_pack_loads_and_the_evaluation_becomes_chained_polls(tmp_path: Path) -> None:
    path = write(tmp_path / "pack", PROGRAM, {"guides/workshop.md": GUIDE})
    loaded = load_program(path)
    program = loaded.program
    assert program.objectives == ["Give feedback people can act on"]
    assert program.step("intro").objectives == ["Name the three parts of SBI"]
    polls = [s for s in program.steps if isinstance(s, PollStep)]
    assert [(p.id, p.level, p.unlock.after) for p in polls] == [
        ("evaluation-useful", 1, ["intro"]),
        ("evaluation-intend", 3, ["evaluation-useful"]),
    ]
    assert loaded.lines["evaluation-intend"] == line_of(path, "- id: intend")
    assert "## Observer sheet" in loaded.guides["workshop"]


@pytest.mark.parametrize(
    ("guide", "expected"),
    [
        (GUIDE.replace("## Observer sheet", "## Notes"), "no 'Observer sheet' section"),
        (GUIDE.replace("(10 min)", "").replace("(40 min)", ""), "agenda gives no timings"),
        (None, "facilitator_file 'guides/workshop.md' not found"),
    ],
)
def test_a_facilitator_guide_must_exist_and_hold_every_section(tmp_path: Path, guide: str | None, expected: str) -> None:
    path = write(tmp_path / "pack", PROGRAM, {"guides/workshop.md": guide} if guide else {})
    problems = check_path(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"pack/program.yaml:{line_of(path, 'facilitator_file:')}: step 'workshop': ")
    assert expected in problems[0]


def test_a_rubric_needs_one_descriptor_per_level(tmp_path: Path) -> None:
    broken = PROGRAM.replace("[A label, Mostly behaviour, What a camera would record]", "[A label, Specific]")
    path = write(tmp_path / "pack", broken, {"guides/workshop.md": GUIDE})
    problems = check_path(path)
    assert len(problems) == 1, problems
    assert "criterion 'Specific behaviour' describes 2 level(s) but the rubric has 3" in problems[0]


def test_evaluation_ids_and_prerequisites_are_checked(tmp_path: Path) -> None:
    broken = PROGRAM.replace("after: [intro]", "after: [intr]").replace("- id: intro", "- id: evaluation-useful")
    broken = broken.replace("[Name the three parts of SBI]\n    body: Hello.", "[x]\n    body: Hello.")
    path = write(tmp_path / "pack", broken, {"guides/workshop.md": GUIDE})
    problems = "\n".join(check_path(path))
    assert "makes step 'evaluation-useful', which exists" in problems
    assert "unlock.after names unknown step(s) ['intr']" in problems


def test_content_guide_prints_the_pack_and_join_url_overrides_the_placeholder(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(content / "pack", PROGRAM, {"guides/workshop.md": GUIDE})
    db = tmp_path / "pack.db"
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{db}\ncontent_dir: {content}\nadmins: [console:admin]\n", encoding="utf-8"
    )
    done = run(tmp_path, "content", "guide", "pack", "workshop")
    assert done.returncode == 0, done.stderr
    for part in ("## Program objectives", "## Agenda", "## Observer sheet",
                 "| Specific behaviour | A label | Mostly behaviour | What a camera would record |",
                 "Kirkpatrick, D. L."):
        assert part in done.stdout, part
    wrong = run(tmp_path, "content", "guide", "pack", "intro")
    assert wrong.returncode == 1 and wrong.stderr.strip() == (
        "error: 'intro' is not a live session of pack (sessions: workshop)"
    )
    created = run(tmp_path, "cohort", "create", "c1", "--program", "pack", "--start", "2026-03-02",
                  "--platform", "console", "--join-url", "workshop=https://zoom.example.com/j/123")
    assert created.returncode == 0, created.stderr
    bad = run(tmp_path, "cohort", "create", "c2", "--program", "pack", "--start", "2026-03-02",
              "--platform", "console", "--join-url", "kickoff=https://zoom.example.com/j/1")
    assert bad.returncode == 1
    assert "--join-url: 'kickoff=https://zoom.example.com/j/1' must be SESSION=URL" in bad.stderr
    with Session(make_engine(f"sqlite:///{db}")) as session:
        assert session.scalar(select(LiveSessionRow.join_url)) == "https://zoom.example.com/j/123"


def test_every_shipped_program_is_ready_for_monday() -> None:
    for folder in sorted(p for p in CONTENT.iterdir() if (p / "program.yaml").is_file()):
        loaded = load_program(folder / "program.yaml")
        program = loaded.program
        assert program.objectives and program.references and program.evaluation, program.id
        assert {q.level for q in program.evaluation.questions} >= {1, 3}, program.id
        for step in program.sessions:
            assert step.facilitator_file and step.id in loaded.guides, f"{program.id}/{step.id}"
            assert step.objectives, f"{program.id}/{step.id}"
        assert any(s.rubric for s in program.sessions), program.id
        reinforced = [q for s in program.steps if s.kind == "quiz" for q in getattr(s, "questions", []) if q.reinforce]
        # Every program brings a few questions back as spaced recalls (issue 14); tests/unit/test_reinforce.py runs
        # on programs of its own, so these marks can change without moving its numbers.
        assert len(reinforced) >= 3, program.id
