"""``blendwise content timeline``: the schedule enrolment writes, shown for sample zones, with its flags; and the
shipped programs' schedules are clean for London, New York and Tokyo."""

from __future__ import annotations

import subprocess
from datetime import date, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.clock import VirtualClock
from bot.journeys.library import Library
from bot.journeys.timetable import DEFAULT_ZONES, NIGHT, OVERDUE, WEEKEND, timetable
from bot.states import AgendaAction
from bot.storage.models import AgendaItem, Enrollment, Person, StepProgress
from bot.timewindow import local_instant
from tests.conftest import CONTENT, ROOT, make_cohort, make_settings
from tests.unit.helpers import build_runtime, write_programs

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")
MONDAY = date(2026, 3, 2)

PROGRAM = """
id: weekly
title: Weekly
tz: Europe/London
steps:
  - id: kickoff
    title: Kickoff
    kind: session
    start: {day: 0, at: "16:00"}
  - id: friday
    title: Friday lesson
    kind: lesson
    body: Read this on Friday.
    unlock: {day: 4, at: "08:00"}
    due: 1d
  - id: weekend
    title: Saturday reflection
    kind: reflection
    question: What did you try?
    unlock: {day: 5}
    due: 2d
  - id: after-friday
    title: After Friday
    kind: quiz
    unlock: {day: 4, after: [friday]}
    due: 3d
    questions:
      - id: q1
        text: Pick one
        options: [{text: A, correct: true}, {text: B}]
"""

LATE_INVITE = """
id: late-invite
title: Late invite
tz: Europe/London
steps:
  - id: kickoff
    title: Kickoff
    kind: session
    start: {day: 0, at: "16:00"}
    unlock: {day: 2}
"""


def test_the_timeline_is_what_enrolment_writes(sqlite_url, tmp_path, console: ConsoleAdapter):
    """Same functions, same schedule: the timetable's unlock, delivery and due times equal the rows a real
    enrolment writes for learners in those zones (the timetable enrols a week before the start, at 09:00)."""
    clock = VirtualClock(local_instant(MONDAY - timedelta(days=7), time(9, 0), "Europe/London"))
    rt = build_runtime(sqlite_url, tmp_path, clock, console, {"weekly": PROGRAM})
    try:
        make_cohort(rt, "weekly", [("ldn", "Europe/London"), ("tyo", "Asia/Tokyo"), ("nyc", "America/New_York")])
        shown = {tl.tz: {r.step_id: r for r in tl.rows} for tl in timetable(
            rt.library, rt.settings, "weekly", MONDAY, None, list(DEFAULT_ZONES)
        )}
        with rt.factory() as session:
            rows = session.execute(
                select(Person.tz, StepProgress.step_id, StepProgress.unlock_at, StepProgress.due_at, AgendaItem.fire_at)
                .join(Enrollment, Enrollment.person_id == Person.id)
                .join(StepProgress, StepProgress.enrollment_id == Enrollment.id)
                .join(AgendaItem, AgendaItem.progress_id == StepProgress.id)
                .where(AgendaItem.action == AgendaAction.DELIVER)
            ).all()
        assert len(rows) == 12
        for tz, step_id, unlock_at, due_at, fire_at in rows:
            row = shown[tz][step_id]
            assert (row.unlock, row.due if fire_at else due_at) == (unlock_at, due_at), (tz, step_id)
            if fire_at is not None:  # a blocked step waits for its prerequisite in the database
                assert row.delivered == fire_at, (tz, step_id)
    finally:
        rt.db.dispose()


def test_weekend_unlocks_keep_their_due_time_and_arrive_on_a_working_day(tmp_path):
    library = Library.from_dir(write_programs(tmp_path, {"weekly": PROGRAM}))
    (london,) = timetable(library, make_settings("sqlite://"), "weekly", MONDAY, None, ["Europe/London"])
    rows = {r.step_id: r for r in london.rows}
    weekend = rows["weekend"]
    assert (weekend.unlock.weekday(), weekend.delivered.weekday()) == (5, 0)  # Saturday unlock, Monday delivery
    assert weekend.due - weekend.delivered == timedelta(days=2)
    # 08:00 authored, delivered at 09:00 when working hours begin; the quiz waits for both its prerequisite and its
    # own unlock (09:30 by default).
    assert rows["friday"].delivered.hour == 9 and rows["after-friday"].delivered == rows["after-friday"].unlock
    # Due in working days: a day after a Friday delivery is Monday, three after is Wednesday.
    assert rows["friday"].due == rows["friday"].delivered + timedelta(days=3)
    assert rows["after-friday"].due == rows["after-friday"].delivered + timedelta(days=5)
    assert not [r for r in london.rows if r.flags]


def flagged_deliveries() -> list[str]:
    library = Library.from_dir(CONTENT)
    settings = make_settings("sqlite://")
    found = []
    for program_id in library.ids():
        for start in (MONDAY, MONDAY + timedelta(days=2)):  # a Monday and a mid-week start
            for tl in timetable(library, settings, program_id, start, None, list(DEFAULT_ZONES)):
                found += [
                    f"{program_id} (start {start}) {r.step_id} for {tl.tz}: {', '.join(r.flags)}"
                    for r in tl.rows
                    if r.flags
                ]
    return found


def test_shipped_programs_have_no_weekend_night_or_overdue_delivery():
    """Issue 14's acceptance: for learners in London, New York and Tokyo. A failure lists each step to move
    (content authors: change its ``day:``)."""
    assert flagged_deliveries() == []


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLENDWISE, "--config", str(cwd / "app.yaml"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    content = write_programs(tmp_path, {"weekly": PROGRAM, "late-invite": LATE_INVITE})
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'x.db'}\ncontent_dir: {content}\n", encoding="utf-8"
    )
    return tmp_path


def test_cli_prints_each_zone_and_flags_overdue_on_arrival(workdir):
    done = run(workdir, "content", "timeline", "weekly", "--start", "2026-03-02", "--zones", "Asia/Tokyo,Europe/Paris")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Learner in Asia/Tokyo" in done.stdout and "Learner in Europe/Paris" in done.stdout
    assert "Learner in Europe/London" not in done.stdout
    assert "Sat 07 Mar 09:30" in done.stdout and "Mon 09 Mar 09:00" in done.stdout  # the weekend unlock's delivery
    late = run(workdir, "content", "timeline", "late-invite", "--start", "2026-03-02")
    assert late.returncode == 1
    assert late.stdout.count(f"[{OVERDUE}]") == 3  # the invite arrives after the session, in every zone
    assert {WEEKEND, NIGHT}.isdisjoint(late.stdout.split("[")[1:2])


def test_cli_refuses_bad_options_in_one_line(workdir):
    for args, message in (
        (("--start", "2026-02-30"), "error: --start: '2026-02-30' is not a date (YYYY-MM-DD)"),
        (("--start", "2026-03-02", "--zones", "Mars/Base"), "error: --zones: unknown time zone 'Mars/Base'"),
        (("--start", "2026-03-02", "--tz", "Nowhere"), "error: --tz: unknown time zone 'Nowhere'"),
    ):
        done = run(workdir, "content", "timeline", "weekly", *args)
        assert done.returncode == 1 and done.stderr.startswith(message), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    done = run(workdir, "content", "timeline", "nope", "--start", "2026-03-02")
    assert done.returncode == 1 and "nope" in done.stderr


ZONED_PREWORK = """
id: zoned
title: Zoned
tz: America/New_York
steps:
  - id: read-first
    title: Read first
    kind: lesson
    body: Before the clinic.
    unlock: {day: 4}
  - id: clinic
    title: Clinic
    kind: session
    start: {day: 4, at: "12:00"}
    prework: [read-first]
"""


def test_content_check_warns_about_times_the_week_changes(workdir):
    """Issue 14: an authored 08:00 silently became 09:00, a Saturday unlock silently became Monday, and the pre-work
    rule compared a learner-local 09:30 with a 12:00 New York start, so Los Angeles learners got the pre-work half an
    hour after the session began. All three are warnings: the content is valid and loads."""
    write_programs(workdir, {"zoned": ZONED_PREWORK})
    done = run(workdir, "content", "check", str(workdir / "content"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].endswith("is valid (3 timing warning(s) above).")
    weekly, zoned = "content/weekly/program.yaml", "content/zoned/program.yaml"
    assert [line.split(" ", 1)[0] for line in lines[:-1]] == [f"{weekly}:13:", f"{weekly}:19:", f"{zoned}:14:"]
    assert "unlocks at 08:00, outside working_hours 09:00-17:30: it arrives at 09:00" in lines[0]
    assert "unlocks on day 5, a Saturday" in lines[1]
    assert "pre-work 'read-first' reaches learners in America/Los_Angeles only when session 'clinic'" in lines[2]
    as_json = run(workdir, "content", "check", str(workdir / "content"), "--format", "json")
    assert as_json.returncode == 0
    assert '"ok": true' in as_json.stdout and as_json.stdout.count('"message": "warning: ') == 3
