"""Fuzzing the content check with mutants of the shipped programs (issue 14, acceptance).

Each example copies one shipped program, mutates it the way a careless edit, a bad merge or a hostile file would
(YAML-level: keys deleted, items duplicated, values of the wrong type or absurd size, template junk; text-level:
control characters, Unicode line separators, alias bombs, deep nesting, lines deleted, duplicated or cut), and runs
the check. The check must never raise, never take more than 5 s (hypothesis' per-example deadline), and report every
problem as ``path:line: message`` (``path: message`` for a whole file). Mutants that pass the check must also run:
a short virtual cohort on the real engine must leave no traceback in the log.
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


@settings(
    max_examples=30,
    deadline=timedelta(seconds=5),
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.sampled_from(PROGRAMS), seed=st.integers(0, 2**32 - 1))
def test_mutants_never_crash_or_hang_the_check(tmp_path: Path, program: str, seed: int) -> None:
    assert_findings(make_mutant(tmp_path, program, random.Random(seed)))


def _passing_mutants(tmp: Path, count: int) -> list[Path]:
    """The first ``count`` mutants (from a fixed seed) that pass the check, each in its own folder."""
    rng = random.Random(14)
    found: list[Path] = []
    for n in range(400):
        folder = make_mutant(tmp / f"m{n}", rng.choice(PROGRAMS), rng)
        if not assert_findings(folder):
            found.append(folder)
            if len(found) == count:
                break
    assert len(found) == count, "the mutations never produced a valid program"
    return found


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
def test_mutants_that_pass_the_check_run_a_virtual_cohort(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Two cohorts keep the suite quick on a loaded machine; the check-only fuzz above covers the breadth.
    folders = [_edge_mutant(tmp_path), *_passing_mutants(tmp_path, 1)]
    assert assert_findings(folders[0]) == []
    caplog.set_level(logging.WARNING)
    for n, folder in enumerate(folders):
        program_id = load_program(folder / "program.yaml").program.id
        result = run_demo(
            program_id=program_id,
            learners=2,
            seed=n,
            database_url=f"sqlite:///{tmp_path / f'sim{n}.db'}",
            content_dir=folder.parent,
            days=4,
        )
        assert result.console.sent, f"{folder}: nothing was delivered"
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, "\n".join(caplog.text.splitlines()[:40])
