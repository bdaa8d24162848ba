"""The content check cannot crash or hang, whatever the file holds (issue 14, "What was found").

Each test is one file an author (or a fuzzer) produced that used to crash the check with a traceback, hang it, or
pass it although delivery then failed. Every one must come back as ``path:line: message`` findings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.journeys.loader import check_path, load_program
from tests.conftest import ROOT

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")

HEADER = """\
id: prog
title: Test program
tz: Europe/London
steps:
"""

LESSON = """\
  - id: intro
    title: Intro
    kind: lesson
    body: Hello.
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(text: str, files: dict[str, str] | None = None, folder: str = "prog") -> Path:
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "program.yaml"
    path.write_text(text, encoding="utf-8")
    for name, body in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    problems = check_path(path)
    for problem in problems:
        file, line, message = problem.split(":", 2)
        assert file and line.isdigit() and message.strip(), problem
    return problems


# ------------------------------------------------------------------------------------------------------------
# Bounded YAML


def test_alias_bomb_is_refused_not_expanded() -> None:
    # 9 levels of 5 aliases: 5**9 (about two million) values from a few hundred bytes; it used to run for minutes.
    levels = ["a0: &a0 [x, x, x, x, x]"]
    for n in range(1, 10):
        levels.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 5) + "]")
    path = write("\n".join(levels) + "\n" + HEADER + LESSON)
    assert len(path.read_bytes()) < 500
    [problem] = problems_of(path)
    # Line 7: ``a6`` is the first anchor whose expansion passes the budget.
    assert problem.startswith("prog/program.yaml:7: aliases (*name) here expand to more than 50,000 values")


def test_merge_key_bomb_is_refused() -> None:
    levels = ["m0: &m0 {k: v}"]
    for n in range(1, 12):
        levels.append(f"m{n}: &m{n} " + "{<<: [" + ", ".join([f"*m{n - 1}"] * 5) + "]}")
    [problem] = problems_of(write("\n".join(levels) + "\n" + HEADER + LESSON))
    assert "expand to more than" in problem


def test_ordinary_aliases_still_work() -> None:
    path = write(
        HEADER
        + LESSON
        + "    reminders: &twice {after: [1d, 2d]}\n"
        + "  - id: second\n    title: Second\n    kind: lesson\n    body: Again.\n    reminders: *twice\n"
    )
    assert problems_of(path) == []
    loaded = load_program(path)
    assert loaded.program.step("second").reminders == loaded.program.step("intro").reminders


@pytest.mark.parametrize(("char", "name"), [("\x00", "U+0000"), ("\x07", "U+0007"), ("\x9b", "U+009B")])
def test_control_characters_are_a_finding_with_their_line(char: str, name: str) -> None:
    path = write(HEADER + LESSON.replace("Hello.", f"Hel{char}lo."))
    assert problems_of(path) == [
        f"prog/program.yaml:8: a control character ({name}) is not allowed in content; remove it"
    ]


def test_escaped_control_character_and_surrogate_in_quoted_text() -> None:
    path = write(HEADER + LESSON.replace("title: Intro", 'title: "In\\0tro \\ud800"'))
    problems = problems_of(path)
    assert problems == [
        "prog/program.yaml:6: a control character (U+0000) is not allowed in content; remove it",
    ]


def test_deep_nesting_is_a_finding() -> None:
    deep = "[" * 600 + "]" * 600
    [problem] = problems_of(write(HEADER + LESSON + f"    extra: {deep}\n"))
    assert problem.startswith("prog/program.yaml:9: lists and mappings nested more than 40 levels deep")


def test_line_numbers_do_not_drift_after_unicode_line_separators() -> None:
    # PyYAML counts U+2028, U+2029 and U+0085 as line breaks; editors (and authors) do not.
    text = (
        HEADER
        + LESSON.replace("Hello.", '"A\u2028B\u2029C\x85D"')
        + "  - id: two\n    title: Two\n    kind: lesson\n    body: x\n    due: soon\n"
    )
    path = write(text)
    [problem] = problems_of(path)
    assert problem.startswith("prog/program.yaml:13: step 'two', due: 'soon' is not a duration")


# ------------------------------------------------------------------------------------------------------------
# Bounded sizes, durations and dates


def test_prerequisite_chain_of_1200_steps_is_a_finding_not_a_recursion_error() -> None:
    steps = "".join(
        f"  - id: s{n}\n    title: S{n}\n    kind: lesson\n    body: x\n"
        + (f"    unlock: {{after: [s{n - 1}]}}\n" if n else "")
        for n in range(1200)
    )
    # A loop at the end of the chain, so the cycle walk goes all the way down.
    steps += (
        "  - id: loop\n    title: Loop\n    kind: lesson\n    body: x\n    unlock: {after: [s1199, loop2]}\n"
    )
    steps += "  - id: loop2\n    title: Loop 2\n    kind: lesson\n    body: x\n    unlock: {after: [loop]}\n"
    problems = problems_of(write(HEADER + steps))
    assert any("steps: allows at most 500 items, has 1202" in p for p in problems), problems
    assert any("prerequisite cycle: loop -> loop2 -> loop" in p for p in problems), problems


def test_a_long_chain_under_the_step_limit_checks_the_session_prework() -> None:
    steps = "".join(
        f"  - id: s{n}\n    title: S{n}\n    kind: lesson\n    body: x\n    unlock: {{day: 1"
        + (f", after: [s{n - 1}]" if n else "")
        + "}\n"
        for n in range(490)
    )
    steps += (
        "  - id: live\n    title: Live\n    kind: session\n    start: {day: 0, at: '10:00'}\n"
        "    prework: [s489]\n"
    )
    [problem] = problems_of(write(HEADER + steps))
    assert "session 'live' starts on day 0 at 10:00 but its pre-work 's489' only unlocks on day 1" in problem


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    due: 9999999999w\n", "due: duration '9999999999w' is too long; at most 52w (a year)"),
        ("    reminders: {after: [999999w]}\n", "reminders.after[1]: duration '999999w' is too long"),
        ("    due: 53w\n", "due: duration '53w' is too long"),
    ],
)
def test_huge_durations_are_findings(line: str, expected: str) -> None:
    [problem] = problems_of(write(HEADER + LESSON + line))
    assert problem.startswith("prog/program.yaml:9: step 'intro', ") and expected in problem, problem


@pytest.mark.parametrize("year", [1970, 9999])
def test_session_start_outside_sensible_years_is_a_finding(year: int) -> None:
    session = f"  - id: live\n    title: Live\n    kind: session\n    start: {year}-03-02T15:00:00+00:00\n"
    [problem] = problems_of(write(HEADER + LESSON + session))
    assert problem == (
        f"prog/program.yaml:12: step 'live', start: an absolute session start must fall in the years 2000-2099, "
        f"not {year}"
    )


def test_huge_capacity_is_a_finding() -> None:
    session = "  - id: live\n    title: Live\n    kind: session\n    start: {day: 1, at: '10:00'}\n"
    [problem] = problems_of(write(HEADER + LESSON + session + "    capacity: 100000000000000000000\n"))
    assert "capacity: must be at most 100000" in problem


# ------------------------------------------------------------------------------------------------------------
# Paths


def _lesson_from(body_file: str) -> str:
    return HEADER + f"  - id: intro\n    title: Intro\n    kind: lesson\n    body_file: {body_file}\n"


def test_symlink_loop_in_body_file() -> None:
    write(_lesson_from("lessons/loop.md"))
    Path("prog/lessons").mkdir()
    os.symlink("loop.md", "prog/lessons/loop.md")
    [problem] = problems_of(Path("prog/program.yaml"))
    assert problem.startswith("prog/program.yaml:8: step 'intro': body_file 'lessons/loop.md' ")


def test_over_long_body_file_name() -> None:
    name = "lessons/" + "x" * 300 + ".md"
    [problem] = problems_of(write(_lesson_from(name)))
    assert problem.endswith("is too long (at most 255 characters a name, 1024 in all)")


@pytest.mark.parametrize("escape", ["\\0", "\\ud800"])
def test_nul_or_surrogate_in_body_file(escape: str) -> None:
    problems = problems_of(write(_lesson_from(f'"lessons/a{escape}.md"')))
    assert problems and all(p.startswith("prog/program.yaml:8: ") for p in problems), problems


# ------------------------------------------------------------------------------------------------------------
# Every problem in one run


def test_a_schema_error_does_not_hide_relationship_errors() -> None:
    steps = [
        "  - id: intro\n    title: Intro\n    kind: lesson\n    body: Hello.\n    due: soon\n",
        "  - id: intro\n    title: Again\n    kind: lesson\n    body: Again.\n",
        "  - id: quiz\n    title: Quiz\n    kind: quizz\n",
        "  - id: later\n    title: Later\n    kind: lesson\n    body: Later.\n    unlock: {after: [intr, quiz]}\n",
    ]
    problems = problems_of(write(HEADER + "".join(steps)))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "step 'intro', due: 'soon' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w",
        "duplicate step id 'intro' (already used by the step at line 5)",
        "step 'quiz': unknown step kind 'quizz' (known: lesson, quiz, session, prompt, reflection, poll)",
        "step 'later' unlocks after unknown step 'intr' (did you mean 'intro'?)",
    ]


# ------------------------------------------------------------------------------------------------------------
# The command line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BLENDWISE, *args], capture_output=True, text=True, timeout=120)


def test_line_100_prints_as_written_not_as_an_emoji() -> None:
    padding = "".join(f"# line {n}\n" for n in range(95))
    path = write(padding + HEADER + LESSON.replace("Hello.", "Hello.\n    due: soon"))
    done = run("content", "check", str(path))
    assert done.returncode == 1
    assert done.stdout.startswith("prog/program.yaml:104: step 'intro', due: 'soon'"), done.stdout
    padding = "".join(f"# line {n}\n" for n in range(91))
    done = run(
        "content", "check", str(write(padding + HEADER + LESSON.replace("Hello.", "Hello.\n    due: soon")))
    )
    assert done.stdout.startswith("prog/program.yaml:100: "), done.stdout
    assert "\U0001f4af" not in done.stdout + done.stderr


def test_json_format() -> None:
    path = write(HEADER + LESSON + "    due: soon\n")
    done = run("content", "check", "--format", "json", str(path))
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {
        "ok": False,
        "problems": [
            {
                "file": "prog/program.yaml",
                "line": 9,
                "message": "step 'intro', due: 'soon' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w",
            }
        ],
        "warnings": [],
    }
    done = run("content", "check", "--format", "json", str(write(HEADER + LESSON)))
    assert (done.returncode, json.loads(done.stdout)) == (0, {"ok": True, "problems": [], "warnings": []})
    done = run("content", "check", "--format", "yaml", str(path))
    assert (done.returncode, done.stderr.strip()) == (1, "error: --format: 'yaml' is not one of text, json")


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``blendwise ARGS`` in this process, through the real entry point: (exit code, stdout, stderr)."""
    from bot.cli import main

    monkeypatch.setattr(sys, "argv", ["blendwise", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, errors = capsys.readouterr()
    return int(exited.value.code or 0), out, errors


def test_an_internal_error_is_exit_3_please_report_never_a_finding(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No input is known to crash the check (the fuzz test holds it to that), so the fault is injected: PyYAML's
    composer runs out of memory. That is a library failing under us, not our code mocked to pass."""
    path = write(HEADER + LESSON)
    assert cli(monkeypatch, capsys, "content", "check", str(path)) == (0, "OK: prog/program.yaml is valid.\n", "")

    def out_of_memory(self: object) -> None:
        raise MemoryError("fault injected by the test")

    monkeypatch.setattr(yaml.composer.Composer, "get_single_node", out_of_memory)
    for fmt in ("text", "json"):
        code, out, errors = cli(monkeypatch, capsys, "content", "check", "--format", fmt, str(path))
        # Nothing on stdout: a CI job or an editor plugin reading the findings sees no finding and no "OK".
        assert (code, out) == (3, ""), (fmt, out, errors)
        assert errors.count("\n") == 1 and errors.startswith(
            "error: internal error in the content check (MemoryError: fault injected by the test); this is a bug "
            "in Blendwise, not in your content: please report it"
        ), errors
        assert "Traceback" not in errors and "problem(s) found" not in errors


# ------------------------------------------------------------------------------------------------------------
# Validate by rendering: what passes the check renders at delivery


def _markdown_lesson(body: str) -> Path:
    text = HEADER + "  - id: intro\n    title: Intro\n    kind: lesson\n    body_file: lessons/intro.md\n"
    return write(text, {"lessons/intro.md": "---\ntitle: Intro\n---\n\nFirst line.\n" + body})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ learner.name | nosuchfilter }}", "unknown filter 'nosuchfilter' (allowed: abs, capitalize,"),
        (
            "{{ learner['nmae'] }}",
            "cannot be rendered for a sample learner: 'dict object' has no attribute 'nmae'",
        ),
        ("{% include 'other.md' %}", "'{% include %}' is not allowed in program text"),
        ("{% import 'm.j2' as m %}", "'{% import %}' is not allowed in program text"),
        (
            "{{ learner.first_name.foo }}",
            "cannot be rendered for a sample learner: 'str object' has no attribute",
        ),
        ("{{ 1/0 }}", "cannot be rendered for a sample learner: ZeroDivisionError: division by zero"),
        (
            "{{ learner.first_name[0] }}",
            "cannot be rendered for a learner with an empty name: str object has no",
        ),
        ("{{ 'ab' * 100000 }}", "repeating text or a list makes more than 10,000 items"),
        ("{{ 2 ** 100000 }}", "the exponent 100000 is too large"),
        ("{{ center }}{{ range(3) }}", "unknown template variable 'center'"),
    ],
)
def test_templates_that_fail_at_delivery_fail_the_check(template: str, message: str) -> None:
    _markdown_lesson(f"Second line.\n{template}\n")
    problems = problems_of(Path("prog/program.yaml"))
    assert problems and problems[0].startswith("prog/lessons/intro.md:7: step 'intro': "), problems
    assert message in problems[0], problems


def test_rendered_length_counts_not_the_source() -> None:
    # 24 characters of source, 9,000 rendered: the limit applies to what the learner receives.
    _markdown_lesson("{{ 'Some words here. ' * 500 }}\n")
    [problem] = problems_of(Path("prog/program.yaml"))
    assert problem.startswith("prog/lessons/intro.md:5: lesson 'intro' is 8,511 characters long"), problem


def test_empty_lesson_and_blank_questions_are_findings() -> None:
    text = HEADER + "".join(
        (
            "  - id: intro\n    title: Intro\n    kind: lesson\n    body_file: lessons/intro.md\n",
            "  - id: think\n    title: Think\n    kind: reflection\n    question: '   '\n",
            "  - id: share\n    title: Share\n    kind: prompt\n    text: '{% if false %}x{% endif %}'\n",
        )
    )
    problems = problems_of(write(text, {"lessons/intro.md": "---\ntitle: Intro\n---\n\n"}))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "lesson 'intro' has no text to show (empty, or a template that renders nothing)",
        "step 'think', question: is empty (only spaces, or a template that renders nothing); write the text to show",
        "step 'share', text: is empty (only spaces, or a template that renders nothing); write the text to show",
    ]


def test_documented_variables_all_render() -> None:
    fields = " ".join(
        f"{{{{ {name}.{attr} }}}}"
        for name, attrs in (
            ("learner", ("name", "first_name", "tz")),
            ("cohort", ("name", "start_date", "channel")),
            ("program", ("title", "id")),
            ("step", ("title", "id", "kind")),
            (
                "session",
                ("title", "start_local", "start_date", "start_time", "duration", "join_url", "location"),
            ),
        )
        for attr in attrs
    )
    session = "  - id: live\n    title: Live\n    kind: session\n    start: {day: 3, at: '14:00'}\n"
    path = write(HEADER + LESSON.replace("Hello.", f"'{fields} {{{{ due }}}}'") + "    due: 2d\n" + session)
    assert problems_of(path) == []


@pytest.mark.timeout(600)
def test_demo_runs_a_program_outside_content(tmp_path: Path) -> None:
    from tests.conftest import CONTENT

    folder = tmp_path / "drafts" / "my-feedback"
    shutil.copytree(CONTENT / "feedback-fundamentals", folder)
    done = run("demo", "--content", str(folder), "--learners", "1", "--database-url", f"sqlite:///{tmp_path}/d.db")
    assert done.returncode == 0, done.stderr
    assert "feedback-fundamentals" in done.stdout
    (folder / "program.yaml").write_text(HEADER + LESSON + "    due: soon\n", encoding="utf-8")
    done = run("demo", "--content", str(folder), "--database-url", f"sqlite:///{tmp_path}/d.db")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("due: 'soon' is not a duration; use forms like 15m, 2h, 1h30m, 3d, 1w")
