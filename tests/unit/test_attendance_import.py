"""Attendance imported from Zoom, Google Meet and Teams participant reports (issue 12).

The three fixtures in ``tests/data/attendance`` follow each tool's documented export layout and describe the
same workshop (Wednesday 4 March 2026, 14:00-15:00 London): Ana joins three times with overlaps (Zoom and Teams),
Bo stays 8-14 minutes, Cyrille is matched by name only (accents and case folded), Di by an upper-case email,
two learners are both called Sam Lee, a guest matches nobody, and the lead is in the meeting too. The session
step says ``checkin: {min_minutes: 15}``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.errors import InvalidInput
from bot.events import Actor, CommandInvoked
from bot.live.attendance import ReportError, import_report, parse_report
from bot.states import Verb
from bot.storage.db import transaction
from bot.storage.models import Attendance, Cohort, Enrollment, Person
from tests.conftest import ROOT
from tests.unit.helpers import build_runtime, events
from tests.unit.test_cli import run as blendwise

DATA = ROOT / "tests" / "data" / "attendance"
PROGRAM = """
id: live
title: Live
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 2, at: "14:00"}
    duration: 1h
    checkin: {min_minutes: 15}
"""
LEARNERS = [
    ("ana", "Ana Souza", "ana@example.com"),
    ("bo", "Bo Lindqvist", "bo@example.com"),
    ("cy", "Cyrille Dupré", "cyrille@example.com"),
    ("di", "Di Nguyen", "di@example.com"),
    ("sam1", "Sam Lee", None),
    ("sam2", "Sam Lee", None),
]
AFTER = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"live": PROGRAM})
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with transaction(runtime.factory) as session:
        lead = runtime.engine.person(
            session, "console", "console", "lee", name="Lee Lead", email="lee@example.com"
        )
        cohort = runtime.engine.create_cohort(
            session, name="c1", program_id="live", platform="console", workspace="console",
            start=datetime(2026, 3, 2).date(), channel="cohort-1", leads=[lead],
        )  # fmt: skip
        for user_id, name, email in LEARNERS:
            person = runtime.engine.person(session, "console", "console", user_id, name=name, email=email)
            runtime.engine.enroll(session, cohort, person)
    runtime.step()
    yield runtime
    runtime.db.dispose()


def run_import(rt: Runtime, filename: str, data: bytes | None = None, **kw: object):
    report = parse_report(data if data is not None else (DATA / filename).read_bytes(), filename)
    if rt.clock.now() < AFTER and not kw.pop("early", False):
        rt.clock.set(AFTER)  # type: ignore[attr-defined]
    with transaction(rt.factory) as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == "c1"))
        live = rt.engine.live_session(session, cohort, "workshop")
        return import_report(rt.engine, session, live, report, **kw)  # type: ignore[arg-type]


def attendance(rt: Runtime) -> dict[str, tuple[str | None, float | None]]:
    with rt.factory() as session:
        rows = session.execute(
            select(Person.user_id, Attendance.source, Attendance.minutes)
            .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(Attendance.attended_at.is_not(None))
        ).all()
    return {user: (source, minutes) for user, source, minutes in rows}


#: What each report says once matched, merged and held against the 15-minute minimum.
EXPECTED = {
    # Zoom: Ana's three joins (13:59:30-14:20, 14:10-14:30, 14:45-14:55) merge to 40.5 min, not 51;
    # Di's two (14:05-14:20, 14:18-14:25) to 20, not 22.
    "zoom.csv": ({"ana": 40.5, "cy": 59.8, "di": 20.0}, {"Bo Lindqvist": 8.0}, ["iPhone de Marc"]),
    # Meet gives one total per person; Di's 15 minutes meet the minimum exactly.
    "meet.csv": ({"ana": 52.0, "cy": 45.0, "di": 15.0}, {"Bo Lindqvist": 14.0}, ["Marc"]),
    # Teams: the In-Meeting Activities section (one row per join) wins over the Participants totals.
    "teams.csv": ({"ana": 40.5, "cy": 59.8, "di": 20.0}, {"Bo Lindqvist": 8.0}, ["Marc (Guest)"]),
}


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_each_tool_matched_merged_and_held_to_the_minimum(rt: Runtime, filename: str):
    recorded, below, unmatched = EXPECTED[filename]
    tool = filename.removesuffix(".csv")
    result = run_import(rt, filename)
    assert result.tool == tool and result.min_minutes == 15
    assert {name: minutes for name, minutes, _ in result.recorded} == {
        n: m for n, m in zip(["Ana Souza", "Cyrille Dupré", "Di Nguyen"], recorded.values(), strict=True)
    }
    assert dict(result.below) == below
    assert [r.name for r in result.unmatched] == unmatched
    assert [(r.name, n) for r, n in result.ambiguous] == [("Sam Lee", 2)]  # never guessed
    assert [r.name for r in result.leads] == ["Lee Lead"]
    assert attendance(rt) == {user: (tool, minutes) for user, minutes in recorded.items()}
    if filename != "meet.csv":
        assert dict((n, j) for n, _, j in result.recorded) == {
            "Ana Souza": 3,
            "Cyrille Dupré": 1,
            "Di Nguyen": 2,
        }
    # The same learning event as the check-in button, with the tool and the report noted.
    attended = events(rt, Verb.ATTENDED)
    assert len(attended) == 3
    assert all(e.result["extensions"]["source"] == tool for e in attended)
    assert all(e.context["extensions"]["report"] == filename for e in attended)
    assert all(e.context["extensions"]["tool"] == tool for e in attended)
    text = result.text()
    assert "Recorded (3): Ana Souza (40.5 min, 3 joins merged)" in text or filename == "meet.csv"
    assert "Matches several learners, not recorded (1): " + f"{filename}:" in text


def test_reimport_records_nothing_new_and_checkins_stand(rt: Runtime):
    first = run_import(rt, "zoom.csv")
    assert len(first.recorded) == 3
    again = run_import(rt, "teams.csv")
    assert again.recorded == []
    assert sorted(n for n, _ in again.already) == ["Ana Souza", "Cyrille Dupré", "Di Nguyen"]
    assert len(events(rt, Verb.ATTENDED)) == 3
    assert attendance(rt)["ana"] == ("zoom", 40.5)  # the first record stands
    assert "No new attendance was recorded." in again.text()


def test_a_lower_minimum_from_the_command_line(rt: Runtime):
    result = run_import(rt, "zoom.csv", min_minutes=5)
    assert "Bo Lindqvist" in [n for n, _, _ in result.recorded]


def test_teams_participants_only_utf8_bom_comma(rt: Runtime):
    """A Teams report saved as UTF-8 CSV without its activities section: the per-person totals count."""
    text = (DATA / "teams.csv").read_bytes().decode("utf-16")
    text = text.split("3. In-Meeting Activities")[0]
    out = io.StringIO()
    writer = csv.writer(out)
    for line in text.splitlines():
        writer.writerow(line.split("\t") if line.strip() else [])
    result = run_import(rt, "teams-summary.csv", out.getvalue().encode("utf-8-sig"))
    assert {n: m for n, m, _ in result.recorded} == {
        "Ana Souza": 40.5,
        "Cyrille Dupré": 59.8,
        "Di Nguyen": 20.0,
    }


def test_not_before_the_session(rt: Runtime, clock: VirtualClock):
    clock.set(datetime(2026, 3, 4, 13, 0, tzinfo=UTC))
    with pytest.raises(InvalidInput, match=r"^'Workshop' has not started yet"):
        run_import(rt, "zoom.csv", early=True)
    assert attendance(rt) == {}


def test_not_for_a_cancelled_session(rt: Runtime):
    from bot.journeys.reschedule import cancel

    with transaction(rt.factory) as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == "c1"))
        cancel(rt.engine, session, rt.engine.live_session(session, cohort, "workshop"))
    with pytest.raises(InvalidInput, match=r"^'Workshop' was cancelled"):
        run_import(rt, "zoom.csv")
    assert attendance(rt) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            (DATA / "zoom.csv").read_text().replace("03/04/2026 02:45:00 PM", "03/04/2026 25:99 PM"),
            "zoom.csv:8: '03/04/2026 25:99 PM' in Join Time is not a date and time",
        ),
        (
            (DATA / "meet.csv").read_text().replace("15 min", "fifteen"),
            "meet.csv:6: 'fifteen' in Duration is not a duration",
        ),
        ("Name,Email\nAna,ana@example.com\n", "zoom.csv: line 1: this is not a Zoom, Google Meet or Teams"),
        (
            "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes)\n"
            "Ana,a@x.example,03/04/2026 02:45:00 PM,03/04/2026 02:15:00 PM,1\n",
            "zoom.csv:2: the participant leaves (14:15) before joining (14:45)",
        ),
        (b"PK\x03\x04\x00\x00binary", "zoom.csv: this looks like a binary file"),
        (b"Name,Email\n\xff\xfe\xfa", "zoom.csv: line 2: the file is not UTF-8 text"),
    ],
)
def test_bad_files_give_one_line_naming_the_row(data: str | bytes, message: str):
    with pytest.raises(ReportError) as err:
        parse_report(
            data.encode() if isinstance(data, str) else data,
            "zoom.csv" if "meet" not in message else "meet.csv",
        )
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_forced_format_must_match():
    with pytest.raises(ReportError, match=r"meet\.csv: line 1: this is not a Zoom participants report"):
        parse_report((DATA / "meet.csv").read_bytes(), "meet.csv", "zoom")


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    content = tmp_path / "content" / "live"
    content.mkdir(parents=True)
    (content / "program.yaml").write_text(PROGRAM.lstrip(), encoding="utf-8")
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'cli.db'}\ncontent_dir: {tmp_path / 'content'}\n"
        "timezone: Europe/London\n",
        encoding="utf-8",
    )
    roster = "platform,user_id,name,email,tz,manager\n" + "".join(
        f"console,{u},{n},{e or ''},Europe/London,\n" for u, n, e in [("lee", "Lee Lead", None), *LEARNERS]
    )
    (tmp_path / "roster.csv").write_text(roster, encoding="utf-8")
    for args in (
        ("people", "import", "roster.csv"),
        (
            "cohort",
            "create",
            "c1",
            "--program",
            "live",
            "--start",
            "2020-03-02",
            "--platform",
            "console",
            "--lead",
            "lee",
        ),
        ("cohort", "enroll", "c1", *[u for u, _, _ in LEARNERS]),
    ):
        done = blendwise(tmp_path, *args)
        assert done.returncode == 0, done.stderr
    return tmp_path


def test_cli_imports_and_refuses_a_bad_file_in_one_line(workdir: Path):
    bad = workdir / "bad.csv"
    bad.write_text(
        (DATA / "zoom.csv").read_text().replace("03/04/2026 02:45:00 PM", "yesterday"), encoding="utf-8"
    )
    done = blendwise(workdir, "session", "attendance", "import", "c1", "workshop", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: bad.csv:8: 'yesterday' in Join Time is not a date and time such as 03/12/2026 03:05:10 PM"
    ]
    done = blendwise(workdir, "session", "attendance", "import", "c1", "workshop", str(DATA / "teams.csv"))
    assert done.returncode == 0, done.stderr
    assert (
        "Recorded (3): Ana Souza (40.5 min, 3 joins merged), Cyrille Dupré (59.8 min), Di Nguyen (20 min, 2 joins merged)"
        in done.stdout
    )
    assert "Not matched to a learner, not recorded (1): teams.csv:28 Marc (Guest)" in done.stdout
    again = blendwise(
        workdir,
        "session",
        "attendance",
        "import",
        "c1",
        "workshop",
        str(DATA / "zoom.csv"),
        "--format",
        "zoom",
    )
    assert again.returncode == 0, again.stderr
    assert "No new attendance was recorded." in again.stdout


# ------------------------------------------------------------------------------------------------ chat
def learn(rt: Runtime, user: str, args: str, attachments: tuple[tuple[str, bytes], ...] = ()) -> str:
    event = CommandInvoked(Actor("console", "console", user), args, attachments=attachments)
    return rt.dispatcher.handle(event).ephemeral.body  # type: ignore[union-attr]


def test_a_lead_attaches_the_report_to_learn_attendance(rt: Runtime, clock: VirtualClock):
    clock.set(AFTER)
    meet = ("meet.csv", (DATA / "meet.csv").read_bytes())
    assert "participant report" in learn(rt, "lee", "attendance workshop")  # no file: says what to attach
    refused = learn(rt, "ana", "attendance workshop c1", (meet,))
    assert "lead" in refused.lower() and attendance(rt) == {}  # learners cannot import attendance
    body = learn(rt, "lee", "attendance workshop", (meet,))
    assert body.startswith(
        "Attendance for 'Workshop' (c1) from the Google Meet report meet.csv, minimum 15 min:"
    )
    assert "Recorded (3): Ana Souza (52 min), Cyrille Dupré (45 min), Di Nguyen (15 min)" in body
    assert set(attendance(rt)) == {"ana", "cy", "di"}
    bad = learn(
        rt, "lee", "attendance workshop", (("meet.csv", b"First name,Last name,Email,Duration\nA,B,,soon\n"),)
    )
    assert bad == "meet.csv:2: 'soon' in Duration is not a duration such as 52 min or 1h 5m 3s"
