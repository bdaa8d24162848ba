"""Set-wise enrolment from the command line: ``cohort enroll --file`` and ``people import --enroll``, as real
subprocesses against a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.storage.db import make_engine, session_factory
from bot.storage.models import Enrollment, LearningEvent, Person, StepProgress
from tests.conftest import CONTENT
from tests.unit.test_cli import run

#: Each test starts the CLI several times (a start-up loads and renders every program), slow on a loaded machine.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def workdir(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "app.yaml").write_text(
        f"database_url: {db_url}\ncontent_dir: {CONTENT}\ntimezone: Europe/London\n", encoding="utf-8"
    )
    created = run(tmp_path, "cohort", "create", "spring", "--program", "feedback-fundamentals", "--start",
                  "2026-03-02")
    assert created.returncode == 0, created.stderr
    return tmp_path


def _enrolled(db_url: str) -> dict[str, int]:
    """user id -> number of step rows, for everyone enrolled."""
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(Person.user_id, func.count(StepProgress.id))
                .join(Enrollment, Enrollment.person_id == Person.id)
                .join(StepProgress, StepProgress.enrollment_id == Enrollment.id)
                .group_by(Person.user_id)
            ).all()
            registered = session.scalar(
                select(func.count()).select_from(LearningEvent).where(LearningEvent.verb == "registered")
            )
            assert registered == len(rows)
            return {user: n for user, n in rows}
    finally:
        engine.dispose()


def test_enroll_from_a_roster_file_and_again_is_a_no_op(workdir: Path, db_url: str) -> None:
    roster = workdir / "roster.csv"
    roster.write_text(
        "\ufeffplatform,user_id,name\n" + "".join(f"console,u{i},User {i}\n" for i in range(250)) + "\n",
        encoding="utf-8",
    )
    refused = run(workdir, "cohort", "enroll", "spring", "--file", str(roster))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: unknown user id(s) in console:console: u0, u1, u2, u3, u4, u5, u6, u7, u8, u9 and 240 more "
        "(import them with 'people import', or pass --create)"
    )
    done = run(workdir, "cohort", "enroll", "spring", "--file", str(roster), "--create")
    assert (done.returncode, done.stdout.strip()) == (0, "Enrolled 250 in spring."), done.stderr
    first = _enrolled(db_url)
    assert set(first) == {f"u{i}" for i in range(250)}
    assert len(set(first.values())) == 1 and next(iter(first.values())) > 1

    # A plain list, overlapping the roster, plus ids on the command line: only the new ones are added.
    plain = workdir / "more.txt"
    plain.write_text("u1\nu2\n\nnew-1\n", encoding="utf-8")
    again = run(workdir, "cohort", "enroll", "spring", "new-2", "u3", "--file", str(plain), "--create")
    assert again.returncode == 0, again.stderr
    second = _enrolled(db_url)
    assert set(second) == set(first) | {"new-1", "new-2"}
    assert {k: second[k] for k in first} == first


def test_enroll_file_mistakes_are_one_line(workdir: Path) -> None:
    missing = run(workdir, "cohort", "enroll", "spring", "--file", str(workdir / "nope.csv"))
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("nope.csv: no such file")
    bad = workdir / "bad.csv"
    bad.write_text("platform,name\nconsole,Ana\n", encoding="utf-8")
    no_column = run(workdir, "cohort", "enroll", "spring", "--file", str(bad))
    assert no_column.returncode == 1
    assert no_column.stderr.strip().endswith("bad.csv:1: a CSV roster needs a user_id column")
    empty_id = workdir / "empty.csv"
    empty_id.write_text("platform,user_id,name\nconsole,ana,Ana\nconsole,,Bo\n", encoding="utf-8")
    hole = run(workdir, "cohort", "enroll", "spring", "--file", str(empty_id))
    assert hole.returncode == 1
    assert hole.stderr.strip().endswith("empty.csv:3: user_id is empty")
    nobody = run(workdir, "cohort", "enroll", "spring")
    assert nobody.returncode != 0
    for done in (missing, no_column, hole, nobody):
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_people_import_can_enroll(workdir: Path, db_url: str) -> None:
    roster = workdir / "roster.csv"
    roster.write_text(
        "platform,user_id,name,email,tz,manager\n"
        "console,mia,Mia Manager,mia@example.com,America/New_York,\n"
        "console,ana,Ana Learner,ana@example.com,Asia/Tokyo,mia\n",
        encoding="utf-8",
    )
    done = run(workdir, "people", "import", str(roster), "--enroll", "spring")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"Imported 2 people from {roster} (2 new, 0 updated).", "Enrolled 2 in spring."
    ]
    assert set(_enrolled(db_url)) == {"mia", "ana"}
    unknown = run(workdir, "people", "import", str(roster), "--enroll", "autumn")
    assert unknown.returncode == 1
    assert "autumn" in unknown.stderr and "Traceback" not in unknown.stderr
