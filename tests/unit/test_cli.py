"""The blendwise CLI, run as a real subprocess against a temporary app.yaml and database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.storage.db import make_engine
from tests.conftest import CONTENT, ROOT

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLENDWISE, "--config", str(cwd / "app.yaml"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def workdir(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "app.yaml").write_text(
        f"database_url: {db_url}\ncontent_dir: {CONTENT}\ntimezone: Europe/London\n", encoding="utf-8"
    )
    return tmp_path


@pytest.fixture
def sqlite_workdir(tmp_path: Path) -> Path:
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'fresh.db'}\ncontent_dir: {CONTENT}\n", encoding="utf-8"
    )
    return tmp_path


def test_content_check_passes_on_the_shipped_programs(sqlite_workdir):
    done = run(sqlite_workdir, "content", "check", str(CONTENT))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: ")


def test_content_check_reports_path_and_line(sqlite_workdir):
    programs = {
        "duplicate": "  - id: one\n    title: One\n    kind: lesson\n    body: Hello.\n"
        "  - id: one\n    title: Again\n    kind: lesson\n    body: Again.\n",
        "unknown-kind": "  - id: one\n    title: One\n    kind: lesson\n    body: Hello.\n"
        "  - id: two\n    title: Two\n    kind: webinar\n",
    }
    for name, steps in programs.items():
        folder = sqlite_workdir / "broken" / name
        folder.mkdir(parents=True)
        (folder / "program.yaml").write_text(f"id: {name}\ntitle: Broken\nsteps:\n{steps}", encoding="utf-8")
    done = run(sqlite_workdir, "content", "check", "broken")
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    for line in lines:
        path, lineno, message = line.split(":", 2)
        assert path.endswith("program.yaml") and lineno.isdigit() and message.strip()
    assert (
        "broken/duplicate/program.yaml:8: duplicate step id 'one' (already used by the step at line 4)"
        in lines
    )
    assert any(
        line.startswith("broken/unknown-kind/program.yaml:8: step 'two': unknown step kind 'webinar'")
        for line in lines
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_db_upgrade_on_a_fresh_sqlite_file(sqlite_workdir):
    done = run(sqlite_workdir, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Database is up to date."
    engine = make_engine(f"sqlite:///{sqlite_workdir / 'fresh.db'}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"people", "cohorts", "enrollments", "step_progress", "deliveries", "learning_events"} <= tables
    assert run(sqlite_workdir, "db", "upgrade").returncode == 0  # idempotent


def test_people_import(workdir):
    (workdir / "roster.csv").write_text(
        "platform,user_id,name,email,tz,manager\n"
        "console,mia,Mia Manager,mia@example.com,America/New_York,\n"
        "console,ana,Ana Learner,ana@example.com,Europe/London,mia\n",
        encoding="utf-8",
    )
    done = run(workdir, "people", "import", "roster.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Imported 2 people from roster.csv (2 new, 0 updated)."
    again = run(workdir, "people", "import", "roster.csv")
    assert (again.returncode, again.stdout.strip()) == (0, "Imported 2 people from roster.csv (0 new, 2 updated).")


def test_people_import_with_a_bad_time_zone(sqlite_workdir):
    workdir = sqlite_workdir
    (workdir / "roster.csv").write_text(
        "platform,user_id,name,email,tz,manager\n"
        "console,mia,Mia Manager,mia@example.com,America/New_York,\n"
        "console,ana,Ana Learner,ana@example.com,Mars/Base,mia\n",
        encoding="utf-8",
    )
    done = run(workdir, "people", "import", "roster.csv")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[0].startswith("roster.csv:3: unknown time zone 'Mars/Base'")
    assert "Traceback" not in done.stderr


def test_cohort_create_enroll_list_and_report(workdir):
    create = run(
        workdir,
        "cohort",
        "create",
        "spring",
        "--program",
        "feedback-fundamentals",
        "--start",
        "2026-03-02",
        "--channel",
        "C-SPRING",
        "--lead",
        "lee",
    )
    assert create.returncode == 0, create.stderr
    assert (
        create.stdout.strip()
        == "Created cohort spring (feedback-fundamentals), starting 2026-03-02 in Europe/London."
    )
    enroll = run(workdir, "cohort", "enroll", "spring", "ana", "bo", "--create")
    assert (enroll.returncode, enroll.stdout.strip()) == (0, "Enrolled 2 in spring.")
    listing = run(workdir, "cohort", "list")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if "spring" in line)
    cells = [c.strip() for c in row.strip("│┃ ").split("│")]
    assert cells == [
        "spring",
        "feedback-fundamentals",
        "console",
        "2026-03-02",
        "Europe/London",
        "C-SPRING",
        "2",
    ]

    as_csv = run(workdir, "report", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    header = as_csv.stdout.splitlines()[0].split(",")
    assert header[:6] == ["person_id", "platform", "user_id", "name", "email", "manager"]
    assert {"steps_completed", "steps_total", "quiz_average", "sessions_attended", "sessions_missed"} <= set(
        header
    )
    assert sorted(r["user_id"] for r in rows) == ["ana", "bo"]
    assert {r["cohort"] for r in rows} == {"spring"} and {r["steps_completed"] for r in rows} == {"0"}

    as_json = run(workdir, "report", "--format", "json", "--cohort", "spring")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert set(data) >= {"generated_at", "learners", "cohorts"}
    assert sorted(r["user_id"] for r in data["learners"]) == ["ana", "bo"]
    assert [c["cohort"] for c in data["cohorts"]] == ["spring"]


def test_cohort_errors_are_one_line(sqlite_workdir):
    workdir = sqlite_workdir
    bad_program = run(workdir, "cohort", "create", "x", "--program", "nope", "--start", "2026-03-02")
    assert bad_program.returncode == 1
    assert bad_program.stderr.strip() == "error: no program with id 'nope'"
    bad_date = run(workdir, "cohort", "create", "x", "--program", "feedback-fundamentals", "--start", "March")
    assert (bad_date.returncode, bad_date.stderr.strip()) == (
        1,
        "error: --start: 'March' is not a date (YYYY-MM-DD)",
    )
    unknown = run(workdir, "cohort", "enroll", "nowhere", "ana")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: no cohort with id 'nowhere'")
    bad_format = run(workdir, "report", "--format", "xml")
    assert bad_format.returncode == 1 and "--format must be table, csv, json or html" in bad_format.stderr
