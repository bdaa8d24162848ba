"""Set-wise enrolment: ``enroll_many`` writes, for every learner, exactly the rows and events a single ``enroll``
writes, groups time zones correctly, and enrolling someone twice stays a no-op."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.app import Runtime
from bot.errors import PermissionDenied
from bot.storage.db import transaction
from bot.storage.models import (
    AgendaItem,
    Attendance,
    Cohort,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)
from tests.conftest import COHORT_START

PROGRAM = "feedback-fundamentals"  # live sessions, prerequisites and reminders: every kind of agenda row
ZONES = ["Europe/London", "America/New_York", None, "Asia/Tokyo", "America/New_York", "Australia/Sydney"]


def _cohort(rt: Runtime, session: Session, name: str) -> Cohort:
    return rt.engine.create_cohort(
        session, name=name, program_id=PROGRAM, platform="console", workspace="console", start=COHORT_START,
        channel=f"ch-{name}",
    )


def _people(rt: Runtime, session: Session, prefix: str) -> list[Person]:
    return [
        rt.engine.person(session, "console", "console", f"{prefix}{i}", name=f"P {i}", tz=tz)
        for i, tz in enumerate(ZONES)
    ]


def _timeline(session: Session, enrollment_id: int) -> dict[str, Any]:
    """Everything enrolment materialised for one learner, without ids that differ between cohorts."""
    steps = session.execute(
        select(
            StepProgress.step_id, StepProgress.kind, StepProgress.required, StepProgress.state,
            StepProgress.waiting_on, StepProgress.unlock_at, StepProgress.due_at, StepProgress.attempts,
        )
        .where(StepProgress.enrollment_id == enrollment_id)
        .order_by(StepProgress.id)
    ).all()
    agenda = session.execute(
        select(StepProgress.step_id, AgendaItem.action, AgendaItem.seq, AgendaItem.fire_at, AgendaItem.expires_at)
        .join(StepProgress, StepProgress.id == AgendaItem.progress_id)
        .where(AgendaItem.enrollment_id == enrollment_id)
        .order_by(AgendaItem.id)
    ).all()
    attendance = session.execute(
        select(LiveSessionRow.step_id, Attendance.rsvp, Attendance.attended_at)
        .join(LiveSessionRow, LiveSessionRow.id == Attendance.session_id)
        .where(Attendance.enrollment_id == enrollment_id)
        .order_by(LiveSessionRow.step_id)
    ).all()
    events = session.execute(
        select(LearningEvent.ts, LearningEvent.verb, LearningEvent.object_type, LearningEvent.object_id,
               LearningEvent.result, LearningEvent.context)
        .where(LearningEvent.enrollment_id == enrollment_id)
    ).all()
    e = session.get(Enrollment, enrollment_id)
    assert e is not None
    return {
        "enrollment": (e.program_id, e.enrolled_at, e.status, e.nudges_ignored, e.auto_paused, e.last_activity_at),
        "steps": [tuple(r) for r in steps],
        "agenda": [tuple(r) for r in agenda],
        "attendance": [tuple(r) for r in attendance],
        "events": [tuple(r) for r in events],
    }


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Enrollment, StepProgress, AgendaItem, Attendance, LearningEvent)
    )


def test_bulk_enrolment_writes_what_single_enrolments_write(rt: Runtime) -> None:
    with transaction(rt.factory) as session:
        bulk, single = _cohort(rt, session, "bulk"), _cohort(rt, session, "single")
        people_bulk, people_single = _people(rt, session, "b"), _people(rt, session, "s")
        ids = rt.engine.enroll_many(session, bulk, people_bulk)
        singles = {p.id: rt.engine.enroll(session, single, p).id for p in people_single}
    assert set(ids) == {p.id for p in people_bulk}
    with rt.factory() as session:
        for mine, theirs in zip(people_bulk, people_single, strict=True):
            got, want = _timeline(session, ids[mine.id]), _timeline(session, singles[theirs.id])
            assert got == want
            assert got["steps"] and got["agenda"] and got["attendance"]
            assert [e[1] for e in got["events"]] == ["registered"]
        # Different zones really got different timelines (the grouping is by zone, not one template for all).
        london = _timeline(session, ids[people_bulk[0].id])["agenda"]
        tokyo = _timeline(session, ids[people_bulk[3].id])["agenda"]
        assert london != tokyo
        # The learner without a zone follows the cohort's (the program's Europe/London), like London.
        assert _timeline(session, ids[people_bulk[2].id])["agenda"] == london


def test_enrolling_again_is_a_no_op(rt: Runtime) -> None:
    with transaction(rt.factory) as session:
        cohort = _cohort(rt, session, "c")
        people = _people(rt, session, "p")
        first = rt.engine.enroll_many(session, cohort, people[:3])
    with rt.factory() as session:
        before = _counts(session)
    with transaction(rt.factory) as session:
        cohort = session.merge(cohort)
        people = [session.merge(p) for p in people]
        # Three already enrolled, three new, and one given twice in the same call.
        again = rt.engine.enroll_many(session, cohort, [*people, people[4]])
        assert rt.engine.enroll(session, cohort, people[0]).id == first[people[0].id]
    assert {k: again[k] for k in first} == first
    with rt.factory() as session:
        after = _counts(session)
        per_learner = len(_timeline(session, first[people[0].id])["steps"])
        assert after[0] == before[0] + 3
        assert after[1] == before[1] + 3 * per_learner
        assert after[4] == before[4] + 3
        registered = session.scalars(
            select(LearningEvent.person_id).where(LearningEvent.verb == "registered")
        ).all()
        assert sorted(registered) == sorted(p.id for p in people)


def test_someone_from_another_workspace_stops_the_whole_batch(rt: Runtime) -> None:
    with transaction(rt.factory) as session:
        cohort = _cohort(rt, session, "c")
    with rt.factory() as session:
        before = _counts(session)
    with pytest.raises(PermissionDenied), transaction(rt.factory) as session:
        cohort = session.merge(cohort)
        mine = _people(rt, session, "p")
        stranger = rt.engine.person(session, "console", "elsewhere", "x", name="X")
        rt.engine.enroll_many(session, cohort, [*mine, stranger])
    with rt.factory() as session:
        assert _counts(session) == before


def test_nobody_to_enrol(rt: Runtime) -> None:
    with transaction(rt.factory) as session:
        cohort = _cohort(rt, session, "c")
        assert rt.engine.enroll_many(session, cohort, []) == {}
