"""Fuzzing the content check with mutants of the shipped programs (issue 14, acceptance).

Each example copies one shipped program, mutates it the way a careless edit, a bad merge or a hostile file would
(YAML-level: keys deleted, items duplicated, values of the wrong type or absurd size, template junk; text-level:
control characters, Unicode line separators, alias bombs, deep nesting, lines deleted, duplicated or cut), and runs
the check. The check must never raise, never take more than 5 s (hypothesis' per-example deadline), and report every
problem as ``path:line: message`` (``path: message`` for a whole file). Every mutant that passes the check also runs
a short virtual cohort on the real engine (two learners to day 8), which must leave no traceback in the log; none
is sampled away. Of the 30 examples about 6 pass the check, so the whole test costs about 20 s.
"""

from __future__ import annotations

import copy
import logging
import random
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.demo import run_demo
from bot.journeys.loader import check_problems, load_program
from tests.conftest import CONTENT

PROGRAMS = sorted(p.name for p in CONTENT.iterdir() if (p / "program.yaml").is_file())
FINDING = re.compile(r"[^\n]+?(?::\d+)?: [^\n]+")

JUNK = [
    "{{",
    "{% if %}",
    "{{ learner['nmae'] }}",
    "{{ 1/0 }}",
    "{{ learner.name | nosuchfilter }}",
    "{% include 'other.md' %}",
    "{{ 'a' * 99999 }}",
    "{{ 2 ** 99999 }}",
    "{{ learner.first_name.foo }}",
    "{{ learner.first_name[0] }}",
    "{{ session.title }}",
    "{{ learner.name }} {{ due }}",
    "{% for c in learner.name %}{{ c }}{% endfor %}",
    "{{ range(99999999) }}",
    "{{ learner.__class__ }}",
]
VALUES: list[Any] = [
    None, 0, -1, 3650, 9999999999, 10**30, 1.5, float("nan"), "", "   ", "x", [], {}, True, "9999999999w",
    "999999w", "52w", "0s", "2026-13-45", "9999-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00", "25:00",
    "../../outside.md", "lessons/\x00.md", "\ud800", "a" * 5000, ["x", "y"], {"after": ["nowhere"]},
]  # fmt: skip
INSERTS = ["\x00", "\x07", "\x1b", "\u2028", "\u2029", "\x85", "\ufeff", "\t", ":", "{", "[", "&a ", "*a", "'", '"',
           "\n- ", "<<: *x", "{{", "%", "!!python/object:os.system ", "---\n"]  # fmt: skip


# ------------------------------------------------------------------------------------------------------------
# Mutations


def _places(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the document, found iteratively."""
    places: list[tuple[Any, Any]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            places.append((node, key))
            stack.append(node[key])
    return places


def mutate_data(data: Any, rng: random.Random) -> Any:
    data = copy.deepcopy(data)
    places = _places(data)
    for _ in range(rng.randint(1, 3)):
        parent, key = rng.choice(places)
        operation = rng.choice(["delete", "replace", "duplicate", "junk", "junk"])
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif operation == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif isinstance(parent[key], str):
            text = parent[key]
            at = rng.randint(0, len(text))
            parent[key] = text[:at] + rng.choice(JUNK) + text[at:]
        places = _places(data)
        if not places:
            break
    return data


def mutate_text(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    operation = rng.choice(["insert", "insert", "delete", "duplicate", "swap", "truncate", "bomb", "nest"])
    if operation == "insert":
        at = rng.randint(0, len(text))
        return text[:at] + rng.choice(INSERTS) + text[at:]
    if operation == "delete":
        del lines[rng.randrange(len(lines))]
    elif operation == "duplicate":
        n = rng.randrange(len(lines))
        lines.insert(n, lines[n])
    elif operation == "swap":
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    elif operation == "truncate":
        return text[: rng.randint(0, len(text))]
    elif operation == "bomb":
        width, depth = rng.randint(2, 10), rng.randint(5, 12)
        bomb = ["b0: &b0 [x, x]"] + [f"b{n}: &b{n} [" + ", ".join([f"*b{n - 1}"] * width) + "]" for n in range(1, depth)]
        return "\n".join(bomb) + "\n" + text
    else:
        depth = rng.choice([30, 200, 1000])
        return text + "\nnested: " + "[" * depth + "]" * depth + "\n"
    return "\n".join(lines)


def make_mutant(tmp: Path, program: str, rng: random.Random) -> Path:
    """A copy of a shipped program with one round of mutations; returns its folder."""
    folder = tmp / program
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(CONTENT / program, folder)
    path = folder / "program.yaml"
    text = path.read_text(encoding="utf-8")
    kind = rng.choice(["data", "data", "text", "text", "lesson"])
    if kind == "data":
        mutated = mutate_data(yaml.safe_load(text), rng)
        text = yaml.safe_dump(mutated, sort_keys=False, allow_unicode=rng.random() < 0.5, width=1000)
    elif kind == "text":
        text = mutate_text(text, rng)
    else:
        lessons = sorted((folder / "lessons").glob("*.md"))
        lesson = rng.choice(lessons)
        lesson.write_text(mutate_text(lesson.read_text(encoding="utf-8"), rng) + rng.choice(JUNK), encoding="utf-8")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return folder


def assert_findings(folder: Path) -> list[str]:
    problems = [str(p) for p in check_problems(folder)]
    for problem in problems:
        assert FINDING.fullmatch(problem), f"not a path:line: finding: {problem!r}"
    return problems


# ------------------------------------------------------------------------------------------------------------
# The fuzz tests


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, "\n".join(caplog.text.splitlines()[:40])


#: Examples per run of the fuzz test; every one that passes the check also runs a short cohort (about 2 s each).
EXAMPLES = 30


def _short_cohort(folder: Path, tmp: Path, seed: int) -> None:
    """Two learners from the cohort's set-up to day 8, which takes in the first live session of every shipped
    program (day 7 at the latest). The clock jumps from one due moment to the next (agenda, outbox, a learner's
    next action), so the run costs a runtime build and a few dozen ticks. Steps that unlock later are rendered by
    the check itself (validate by rendering), not delivered here."""
    program_id = load_program(folder / "program.yaml").program.id
    result = run_demo(
        program_id=program_id,
        learners=2,
        seed=seed,
        database_url=f"sqlite:///{tmp / f'sim{seed}.db'}",
        content_dir=folder.parent,
        days=8,
    )
    try:
        assert result.console.sent, f"{folder}: nothing was delivered"
    finally:
        result.runtime.db.dispose()


@pytest.mark.timeout(600)
def test_mutants_never_crash_or_hang_the_check_and_the_passing_ones_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check gets hypothesis' 5 s deadline per mutant; a mutant it passes then runs a short virtual cohort,
    outside that deadline (a runtime build is not what the deadline is about), and the log must hold no
    traceback. Every passing mutant runs, none is sampled away."""
    passing: dict[str, Path] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=timedelta(seconds=5),
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(program=st.sampled_from(PROGRAMS), seed=st.integers(0, 2**32 - 1))
    def check(program: str, seed: int) -> None:
        folder = make_mutant(tmp_path / f"{program}-{seed}", program, random.Random(seed))
        if not assert_findings(folder):
            passing[folder.parent.name] = folder

    check()
    assert passing, "no mutant passed the check: the cohort half of this test ran nothing"
    caplog.set_level(logging.WARNING)
    for n, folder in enumerate(passing.values()):
        _short_cohort(folder, tmp_path, n)
    assert_no_tracebacks(caplog)


def _edge_mutant(tmp: Path) -> Path:
    """Valid but extreme: the longest durations, the largest capacity, a template looping over a name."""
    folder = tmp / "edge" / "sales-enablement-sprint"
    shutil.copytree(CONTENT / "sales-enablement-sprint", folder)
    path = folder / "program.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for step in data["steps"]:
        if step["kind"] == "session":
            step["capacity"] = 100_000
            step["session_reminders"] = ["52w", "1s"]
            step["duration"] = "52w"
        else:
            step["due"] = "52w"
            step["reminders"] = {"after": ["1s", "52w"]}
        if step["kind"] == "prompt":
            step["text"] += " {% for c in learner.name %}{{ c }}{% endfor %}"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.timeout(600)
def test_an_extreme_but_valid_program_runs_a_virtual_cohort(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _edge_mutant(tmp_path)
    assert assert_findings(folder) == []
    caplog.set_level(logging.WARNING)
    _short_cohort(folder, tmp_path, 0)
    assert_no_tracebacks(caplog)
