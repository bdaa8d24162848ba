"""Content loading and checking: the shipped programs are valid, and every class of mistake an author can make is
reported as ``path:line: message`` with the line they need to open.

Each broken program is written to ``tmp_path`` and the working directory is moved there, so problems carry the
short relative paths an author would see from ``blendwise content check``.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bot.errors import ContentError
from bot.journeys.loader import LoadedProgram, check_path, load_library, load_program
from bot.journeys.model import LessonStep, QuizStep, SessionStart, SessionStep

CONTENT = Path(__file__).resolve().parents[2] / "content"

HEADER = """\
id: prog
title: Test program
tz: Europe/London
steps:
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(folder: Path, yaml_text: str, files: dict[str, str] | None = None) -> Path:
    """Write ``program.yaml`` (and any lesson files) into ``folder``; returns the program.yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "program.yaml"
    path.write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    for name, text in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """The 1-based line holding the ``nth`` occurrence of ``needle``, so tests state lines by content."""
    hits = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not found {nth} time(s) in {path}"
    return hits[nth - 1]


def only_problem(path: Path) -> str:
    problems = check_path(path)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------------------------------------------
# The shipped content


def test_shipped_content_has_no_problems() -> None:
    assert check_path(CONTENT) == []


def test_shipped_library_has_one_program_per_blend_pattern() -> None:
    library = load_library(CONTENT)
    assert {
        "feedback-fundamentals",
        "new-manager-onboarding",
        "coaching-skills-lab",
        "sales-enablement-sprint",
    } <= set(library)
    for loaded in library.values():
        assert loaded.program.pattern, loaded.program.id
        assert 8 <= len(loaded.program.steps) <= 20, loaded.program.id
        assert loaded.program.sessions, loaded.program.id
        for session in loaded.program.sessions:
            assert session.join_url and session.join_url.startswith("https://meet.example.com/")
    assert library["new-manager-onboarding"].program.completion.min_sessions_attended == 2


def test_shipped_lessons_are_micro_lessons() -> None:
    for loaded in load_library(CONTENT).values():
        for step_id, body in loaded.bodies.items():
            words = len(body.split())
            assert 100 <= words <= 250, f"{loaded.program.id}/{step_id}: {words} words"
            assert not body.startswith("---"), "front matter must be stripped"


def test_shipped_quizzes_explain_every_question() -> None:
    for loaded in load_library(CONTENT).values():
        for step in loaded.program.steps:
            if not isinstance(step, QuizStep):
                continue
            for question in step.questions:
                where = f"{loaded.program.id}/{step.id}/{question.id}"
                assert question.explanation, where
                assert all(o.feedback for o in question.options if not o.correct), where


def test_coaching_lab_reinforces_after_the_live_labs() -> None:
    program = load_library(CONTENT)["coaching-skills-lab"].program
    sessions = [s for s in program.steps if isinstance(s, SessionStep)]
    assert len(sessions) == 2
    assert all(isinstance(s.start, SessionStart) and s.start.day <= 6 for s in sessions)
    reinforced = [q for s in program.steps if isinstance(s, QuizStep) for q in s.questions if q.reinforce]
    assert len(reinforced) >= 5
    assert all(s.unlock.day >= 7 for s in program.steps if isinstance(s, LessonStep | QuizStep))


# --------------------------------------------------------------------------------------------------------------
# Schema problems, translated to plain English at the right line


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
    colour: blue
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'colour:')}: ")
    assert "unknown key 'colour'" in problem


def test_unknown_key_suggests_the_likely_one(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
    unlock: {dya: 2}
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'dya')}: ")
    assert "unknown key 'dya' (did you mean 'day'?)" in problem


def test_unknown_step_kind_lists_the_known_kinds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
  - id: chat
    title: Chat
    kind: webinar
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: chat')}: ")
    assert "unknown step kind 'webinar' (known: lesson, quiz, session, prompt, reflection, poll)" in problem
    assert "tag" not in problem and "discriminator" not in problem


def test_quiz_question_without_correct_option_points_at_the_question(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: check
    title: Check
    kind: quiz
    questions:
      - id: q1
        text: Pick one
        options:
          - text: A
            correct: true
          - text: B
      - id: q2
        text: Pick another
        options:
          - text: C
          - text: D
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: q2')}: ")
    assert "question 'q2' has no correct option" in problem
    assert "Value error" not in problem


def test_a_choose_all_question_marked_for_reinforcement_is_refused_at_its_line(tmp_path: Path) -> None:
    # A recall card is one tap on one answer, so such a mark would silently never bring the question back.
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: check
    title: Check
    kind: quiz
    questions:
      - id: q1
        text: Pick all that apply
        multiple: true
        reinforce: true
        options:
          - text: A
            correct: true
          - text: B
            correct: true
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: q1')}: ")
    assert "reinforce: true brings back single-choice questions only" in problem


def test_bad_time_zone_points_at_the_tz_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: live
    title: Live
    kind: session
    start:
      day: 2
      at: "14:00"
      tz: Europe/Londn
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'tz: Europe/Londn')}: ")
    assert "unknown time zone 'Europe/Londn'" in problem


def test_bad_program_time_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER.replace("Europe/London", "Mars/Olympus") + "  - {id: a, title: A, kind: prompt, text: Hi}\n",
    )
    assert only_problem(path).startswith("prog/program.yaml:3: tz: unknown time zone 'Mars/Olympus'")


def test_bad_duration(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
    due: 3 days
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'due: 3 days')}: step 'intro', due: ")
    assert "'3 days' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w" in problem


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
     kind: lesson
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'kind: lesson')}: YAML syntax error")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "prog/program.yaml: the file is empty"),
        (b"# nothing yet\n", "prog/program.yaml: the file holds only comments"),
        (b"- id: a\n- id: b\n", "prog/program.yaml:1: the top level must be a mapping of keys"),
        (b"id: prog\ntitle: Caf\xe9\n", "prog/program.yaml:2: the file is not UTF-8 text"),
        (b"id: prog\n\ttitle: x\n", "prog/program.yaml:2: YAML syntax error: a tab character"),
        (b"id: prog\nid: again\n", "prog/program.yaml:2: duplicate key 'id' (already set at line 1)"),
    ],
)
def test_unreadable_files_give_one_clear_line(tmp_path: Path, content: bytes, expected: str) -> None:
    folder = tmp_path / "prog"
    folder.mkdir()
    (folder / "program.yaml").write_bytes(content)
    problems = check_path(folder)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_times_of_day_are_not_read_as_base_60_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
    unlock: {day: 1, at: 24:30}
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '24:30')}: step 'intro', unlock.at: ")
    assert "'24:30' is not a time of day" in problem


# --------------------------------------------------------------------------------------------------------------
# Semantic problems


def test_duplicate_step_id_points_at_the_second(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
  - id: intro
    title: Intro again
    kind: prompt
    text: Say hello
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: intro', nth=2)}: ")
    assert (
        f"duplicate step id 'intro' (already used by the step at line {line_of(path, '- id: intro')})"
        in problem
    )


def test_duplicate_question_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: check
    title: Check
    kind: quiz
    questions:
      - id: q1
        text: One
        options: [{text: A, correct: true}, {text: B}]
      - id: q1
        text: Two
        options: [{text: A, correct: true}, {text: B}]
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: q1', nth=2)}: ")
    assert "duplicate question id 'q1'" in problem


def test_dangling_prerequisite(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
  - id: recap
    title: Recap
    kind: lesson
    body: Again
    unlock:
      after:
        - intro
        - intor-2
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- intor-2')}: ")
    assert "step 'recap' unlocks after unknown step 'intor-2'" in problem


def test_dangling_prework(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: live
    title: Live
    kind: session
    start: {day: 3, at: "10:00"}
    prework:
      - reading
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- reading')}: ")
    assert "session 'live' lists unknown pre-work step 'reading'" in problem


def test_prerequisite_cycle_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: a
    title: A
    kind: lesson
    body: Hello
    unlock: {after: [c]}
  - id: b
    title: B
    kind: lesson
    body: Hello
    unlock: {after: [a]}
  - id: c
    title: C
    kind: prompt
    text: Hello
    unlock: {after: [b]}
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- id: a')}: ")
    assert "prerequisite cycle: a -> c -> b -> a" in problem


def test_later_prerequisite_by_day_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: early
    title: Early
    kind: lesson
    body: Hello
    unlock: {day: 0, after: [late]}
  - id: late
    title: Late
    kind: lesson
    body: Hello
    unlock: {day: 5}
""",
    )
    assert check_path(path) == []


def test_session_before_its_prework_unlocks(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: reading
    title: Reading
    kind: lesson
    body: Hello
    unlock: {day: 7}
  - id: on-time
    title: On time
    kind: lesson
    body: Hello
    unlock: {day: 6, at: "18:00"}
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 7, at: "09:00"}
    prework:
      - on-time
      - reading
  - id: fixed-date
    title: Fixed date
    kind: session
    start: 2026-03-02T15:00:00+00:00
    prework: [reading]
""",
    )
    problem = only_problem(path)  # the absolute session cannot be compared, so it is skipped
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '- reading')}: ")
    assert (
        "session 'workshop' starts on day 7 at 09:00 but its pre-work 'reading' only unlocks on day 7 at 09:30"
        in (problem)
    )


def test_session_before_prework_through_a_prerequisite(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: reading
    title: Reading
    kind: lesson
    body: Hello
    unlock: {day: 0, after: [video]}
  - id: video
    title: Video
    kind: lesson
    body: Hello
    unlock: {day: 9}
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 7, at: "14:00"}
    prework: [reading]
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'prework: [reading]')}: ")
    assert "'reading' only unlocks on day 9 at 09:30 (it waits for 'video')" in problem


def test_unknown_template_variable_in_markdown_gives_the_real_line(tmp_path: Path) -> None:
    folder = tmp_path / "prog"
    write(
        folder,
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body_file: lessons/intro.md
""",
        {
            "lessons/intro.md": """\
            ---
            title: Welcome
            estimated_minutes: 3
            ---

            Hi {{ learner.first_name }},

            Your cohort is {{ cohort.nmae }}.
            """
        },
    )
    lesson = folder / "lessons" / "intro.md"
    problem = only_problem(folder)
    assert problem.startswith(f"prog/lessons/intro.md:{line_of(lesson, 'cohort.nmae')}: ")
    assert line_of(lesson, "cohort.nmae") == 8
    assert "unknown template variable 'cohort.nmae'" in problem


def test_unknown_template_variable_in_yaml_block_text(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: share
    title: Share
    kind: prompt
    text: |
      Hello {{ learner.first_name }}.
      Post your idea by {{ deadline }}.
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, '{{ deadline }}')}: step 'share', text: ")
    assert "unknown template variable 'deadline'" in problem


def test_template_syntax_error_in_quiz_feedback(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: check
    title: Check
    kind: quiz
    questions:
      - id: q1
        text: One
        options:
          - text: A
            correct: true
          - text: B
            feedback: "Not quite {{ learner.first_name"
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'Not quite')}: ")
    assert "question 'q1' option 2 feedback: template syntax error" in problem


def test_missing_body_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body_file: lessons/intro.md
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'body_file')}: ")
    assert "body_file 'lessons/intro.md' not found" in problem


def test_body_file_must_stay_in_the_program_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("hello", encoding="utf-8")
    path = write(
        tmp_path / "prog",
        HEADER + "  - {id: intro, title: Intro, kind: lesson, body_file: ../secret.md}\n",
    )
    assert "must be inside the program folder" in only_problem(path)


def test_front_matter_accepts_only_known_keys(tmp_path: Path) -> None:
    folder = tmp_path / "prog"
    write(
        folder,
        HEADER + "  - {id: intro, title: Intro, kind: lesson, body_file: lessons/intro.md}\n",
        {"lessons/intro.md": "---\ntitle: Welcome\nauthor: Sam\n---\nHello there.\n"},
    )
    problem = only_problem(folder)
    assert problem.startswith("prog/lessons/intro.md:3: unknown key 'author'")


def test_lesson_body_over_6000_characters(tmp_path: Path) -> None:
    folder = tmp_path / "prog"
    write(
        folder,
        HEADER + "  - {id: long, title: Long, kind: lesson, body_file: lessons/long.md}\n",
        {"lessons/long.md": "---\nestimated_minutes: 30\n---\n" + ("A sentence of text. " * 320)},
    )
    problem = only_problem(folder)
    assert problem.startswith("prog/lessons/long.md:4: lesson 'long' is 6,399 characters long")


def test_min_sessions_attended_above_session_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        """\
id: prog
title: Test program
completion:
  min_sessions_attended: 2
steps:
  - id: live
    title: Live
    kind: session
    start: {day: 1, at: "10:00"}
""",
    )
    problem = only_problem(path)
    assert problem.startswith(
        "prog/program.yaml:4: min_sessions_attended is 2 but the program has only 1 session"
    )


# --------------------------------------------------------------------------------------------------------------
# Loading


def test_loaded_bodies_strip_front_matter(tmp_path: Path) -> None:
    folder = tmp_path / "prog"
    path = write(
        folder,
        HEADER
        + """\
  - id: intro
    kind: lesson
    body_file: lessons/intro.md
  - id: inline
    title: Inline
    kind: lesson
    body: |
      Short and inline.
""",
        {
            "lessons/intro.md": "---\ntitle: Welcome aboard\nestimated_minutes: 3\nsummary: A first look.\n---\n\nHello {{ learner.first_name }}.\n"
        },
    )
    loaded = load_program(path)
    assert isinstance(loaded, LoadedProgram)
    assert loaded.path == path
    assert loaded.bodies == {"intro": "Hello {{ learner.first_name }}.", "inline": "Short and inline."}
    assert loaded.lines == {"intro": line_of(path, "- id: intro"), "inline": line_of(path, "- id: inline")}
    intro = loaded.program.step("intro")
    assert isinstance(intro, LessonStep)
    # Front matter fills in what program.yaml leaves out.
    assert intro.title == "Welcome aboard"
    assert intro.estimated_minutes == 3


def test_load_program_raises_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello
    due: soon
  - id: intro
    title: Intro
    kind: prompt
    text: Hi
    extra: 1
""",
    )
    with pytest.raises(ContentError) as caught:
        load_program(path)
    # The schema errors do not hide the duplicate id: every problem comes back from one run.
    assert [re.sub(r":\d+:.*", "", p) for p in caught.value.problems] == ["prog/program.yaml"] * 3
    assert "'soon' is not a duration" in caught.value.problems[0]
    assert "duplicate step id 'intro'" in caught.value.problems[1]
    assert "unknown key 'extra'" in caught.value.problems[2]


def test_load_library_reports_problems_from_every_program(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(
        content / "first",
        HEADER.replace("id: prog", "id: first") + "  - {id: a, title: A, kind: lessn, body: x}\n",
    )
    write(
        content / "second",
        HEADER.replace("id: prog", "id: second") + "  - {id: a, title: A, kind: lesson, body: x, due: 2}\n",
    )
    write(
        content / "fine",
        HEADER.replace("id: prog", "id: fine") + "  - {id: a, title: A, kind: lesson, body: x}\n",
    )
    with pytest.raises(ContentError) as caught:
        load_library(content)
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("content/first/program.yaml:5: ")
    assert "unknown step kind 'lessn'" in problems[0]
    assert problems[1].startswith("content/second/program.yaml:5: ")
    assert "duration 2 needs a unit" in problems[1]
    assert check_path(content) == problems


def test_load_library_rejects_duplicate_program_ids(tmp_path: Path) -> None:
    content = tmp_path / "content"
    step = "  - {id: a, title: A, kind: prompt, text: Hi}\n"
    write(content / "a-folder", HEADER + step)
    write(content / "b-folder", HEADER + step)
    write(content / "_drafts", "not: [valid")  # skipped: starts with '_'
    with pytest.raises(ContentError) as caught:
        load_library(content)
    assert caught.value.problems == [
        "content/b-folder/program.yaml:1: program id 'prog' is already used by content/a-folder/program.yaml"
    ]


def test_load_library_returns_programs_by_id(tmp_path: Path) -> None:
    content = tmp_path / "content"
    write(content / "folder-name", HEADER + "  - {id: a, title: A, kind: prompt, text: Hi}\n")
    library = load_library(content)
    assert list(library) == ["prog"]
    assert library["prog"].path == content / "folder-name" / "program.yaml"


def test_check_path_accepts_file_folder_and_library(tmp_path: Path) -> None:
    path = write(tmp_path / "content" / "prog", HEADER + "  - {id: a, title: A, kind: prompt, text: Hi}\n")
    assert check_path(path) == []
    assert check_path(path.parent) == []
    assert check_path(tmp_path / "content") == []
    assert check_path(tmp_path / "nowhere") == ["nowhere: no such file or folder"]
    (tmp_path / "empty").mkdir()
    assert check_path(tmp_path / "empty")[0].startswith("empty: no programs found")


def test_session_variables_need_a_session_step(tmp_path: Path) -> None:
    path = write(
        tmp_path / "prog",
        HEADER
        + """\
  - id: share
    title: Share
    kind: prompt
    text: "See you at {{ session.start_local }}"
""",
    )
    problem = only_problem(path)
    assert problem.startswith(f"prog/program.yaml:{line_of(path, 'See you at')}: step 'share', text: ")
    assert "the program has no session step" in problem


# --------------------------------------------------------------------------------------------------------------
# The documentation


def test_docs_worked_example_is_valid(tmp_path: Path) -> None:
    docs = (CONTENT.parent / "docs" / "content.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", docs, flags=re.DOTALL)
    assert {name for name, _ in blocks} == {"program.yaml", "lessons/purpose-first.md"}
    folder = tmp_path / "meeting-essentials"
    for name, text in blocks:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    assert check_path(folder) == []
    loaded = load_program(folder / "program.yaml")
    assert loaded.program.step("purpose-first").title == "Start with the purpose"
