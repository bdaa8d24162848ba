"""Late joiners: a learner enrolled after a live session started is never invited, reminded or asked to check in
for it; the session is "n/a" for them, leaves their attendance rule and shows as such in every report view; once
its recap is released they get the catch-up lesson instead (at release, or after enrolling later)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select, update

from bot.events import Actor, CommandInvoked
from bot.nudges.digests import digest_message
from bot.reporting import Filters, build_report
from bot.storage.db import transaction
from bot.storage.models import (
    AgendaItem,
    Cohort,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)
from tests.conftest import make_cohort

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "live" / "samples" / "kickoff.vtt"


def _enrol(rt, user_id: str, manager: Person | None = None) -> None:
    with transaction(rt.factory) as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == "c1"))
        person = rt.engine.person(session, "console", "console", user_id, name=user_id.title(), tz="Europe/London")
        if manager is not None:
            person.manager_id = session.merge(manager).id
        rt.engine.enroll(session, cohort, person)


def _state(rt, user_id: str, step_id: str = "kickoff") -> str:
    with rt.factory() as session:
        return session.scalar(
            select(StepProgress.state)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(Person.user_id == user_id, StepProgress.step_id == step_id)
        )


def _about_kickoff(console, user_id: str, title: str) -> list:
    """Invites, reminders and check-in prompts for the session titled ``title``."""
    out = []
    for sent in console.messages_to(user_id):
        m = sent.message
        session_buttons = any(b.action in ("rsvp.yes", "session.checkin") for b in m.buttons)
        if title in (m.title or "") or (session_buttons and title in (m.text or "")):
            out.append(sent)
    return out


def test_a_late_joiner_gets_no_invite_and_the_session_is_not_applicable(rt, clock, console):
    make_cohort(rt, "new-manager-onboarding", [("ana", "Europe/London")], manager="boss")
    with rt.factory() as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
        boss = session.scalar(select(Person).where(Person.user_id == "boss"))
    clock.set(kickoff.start_at + timedelta(minutes=10))
    rt.step()
    _enrol(rt, "bo", boss)  # ten minutes into the kickoff
    for _ in range(12):  # through the session, its check-in and close, and the days after
        clock.advance(timedelta(hours=6))
        rt.step()

    assert _state(rt, "ana") == "missed" and _state(rt, "bo") == "n/a"
    assert _about_kickoff(console, "ana", kickoff.title)
    assert not _about_kickoff(console, "bo", kickoff.title)
    assert not any(f.filename.endswith(".ics") for s in console.messages_to("bo") for f in s.message.attachments)
    assert console.messages_to("bo"), "bo gets the rest of the program"
    with rt.factory() as session:
        verbs = set(
            session.scalars(
                select(LearningEvent.verb)
                .join(Person, Person.id == LearningEvent.person_id)
                .where(Person.user_id == "bo", LearningEvent.object_id.like("%/step/kickoff"))
            )
        )
        assert verbs == set()  # never missed, never delivered
        bo = session.scalar(select(Enrollment).join(Person).where(Person.user_id == "bo"))
        counts = rt.engine.status_counts(session, bo)
        # The attendance rule (min_sessions_attended: 2) counts only the closing session for bo.
        assert counts["sessions_total"] == 1
        assert counts["steps_total"] == len(rt.library.program("new-manager-onboarding").steps) - 1

        report = build_report(session, rt.engine, Filters())
        rows = {r.user_id: r for r in report.learners}
        assert (rows["bo"].sessions_not_applicable, rows["bo"].sessions_total, rows["bo"].sessions_missed) == (1, 1, 0)
        assert (rows["ana"].sessions_not_applicable, rows["ana"].sessions_total) == (0, 2)
        assert rows["bo"].steps_total == rows["ana"].steps_total - 1
        table = list(csv.DictReader(io.StringIO(report.to_csv())))
        assert {r["user_id"]: r["sessions_not_applicable"] for r in table} == {"ana": "0", "bo": "1"}
        digest = digest_message(session, rt.engine, session.merge(boss)).body
    line = next(line for line in digest.splitlines() if "**Bo**" in line)
    assert "sessions 0/1 (+1 n/a, before they joined)" in line and "missed" not in line


def test_late_joiners_get_the_catch_up_once_the_recap_is_released(rt, clock, console):
    make_cohort(rt, "new-manager-onboarding", [("ana", "Europe/London")])
    with rt.factory() as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
    clock.set(kickoff.start_at + timedelta(minutes=10))
    _enrol(rt, "bo")  # during the session
    clock.set(kickoff.end_at + timedelta(hours=1))
    rt.step()
    lead = Actor("console", "console", "lead")
    attach = CommandInvoked(lead, "recording kickoff https://rec.example.com/k c1", attachments=(("k.vtt", SAMPLE.read_bytes()),))
    rt.dispatcher.handle(attach)
    released = rt.dispatcher.handle(CommandInvoked(lead, "recap release kickoff c1")).ephemeral.body
    assert "2 catch-up lesson(s)" in released  # ana missed it; bo joined late
    _enrol(rt, "cy")  # after the release: the planner after the next tick sends cy's
    clock.advance(timedelta(hours=2))
    rt.step()
    # Catch-ups wait for the learners' working hours: the next morning.
    clock.set(datetime.combine(clock.now().date() + timedelta(days=1), time(11, 0), tzinfo=UTC))
    rt.step()
    rt.step()  # a second pass sends nothing twice
    for user in ("ana", "bo", "cy"):
        catchups = [s for s in console.messages_to(user) if (s.message.title or "").startswith("Catch-up")]
        assert len(catchups) == 1, user
    assert _state(rt, "cy") == "n/a"


def test_a_timeline_planned_before_the_rule_is_corrected_by_the_tick(rt, clock, console):
    make_cohort(rt, "new-manager-onboarding", [("dee", "Europe/London")])
    with transaction(rt.factory) as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
        # As an older release would have left it: a full timeline, for someone who joined after the start.
        session.execute(update(Enrollment).values(enrolled_at=kickoff.start_at + timedelta(minutes=5)))
    clock.set(kickoff.start_at + timedelta(minutes=10))
    rt.step()
    clock.set(kickoff.end_at + timedelta(days=1))
    rt.step()
    assert _state(rt, "dee") == "n/a"
    assert not _about_kickoff(console, "dee", kickoff.title)


WAITING = """
id: waiting
title: Waiting
tz: Europe/London
defaults:
  reminders: {enabled: true, after: [1d]}
steps:
  - id: kickoff
    title: Kickoff
    kind: session
    start: {day: 0, at: "14:00"}
    duration: 1h
  - id: debrief
    title: Debrief
    kind: lesson
    body: What the kickoff decided.
    due: 2d
    unlock: {after: [kickoff]}
"""


def test_steps_waiting_on_a_session_the_tick_makes_not_applicable_are_released(db_url, tmp_path, clock, console):
    """As at enrolment, a session that is n/a for a learner holds nothing back: corrected by the tick (a timeline
    planned before the rule), the lesson waiting on it is delivered, with its reminder and due date."""
    from tests.unit.helpers import build_runtime

    rt = build_runtime(db_url, tmp_path, clock, console, {"waiting": WAITING})
    try:
        make_cohort(rt, "waiting", [("dee", "Europe/London"), ("eve", "Europe/London")])
        with transaction(rt.factory) as session:
            kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
            # As an older release left it: a full timeline, for Dee who joined after the start.
            dee = select(Person.id).where(Person.user_id == "dee").scalar_subquery()
            session.execute(
                update(Enrollment)
                .where(Enrollment.person_id == dee)
                .values(enrolled_at=kickoff.start_at + timedelta(minutes=5))
            )
        clock.set(kickoff.start_at + timedelta(minutes=10))  # Monday 14:10 London, inside working hours
        rt.step()
        rt.step()  # the released lesson, planned by the first tick, goes out now
        assert _state(rt, "dee") == "n/a"
        assert _state(rt, "dee", "debrief") == "open"
        assert [s.message.title for s in console.messages_to("dee") if "Debrief" in (s.message.title or "")]
        assert _state(rt, "eve", "debrief") == "locked", "Eve's kickoff still holds her lesson back"
        with rt.factory() as session:
            sp = session.scalar(
                select(StepProgress)
                .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
                .join(Person, Person.id == Enrollment.person_id)
                .where(Person.user_id == "dee", StepProgress.step_id == "debrief")
            )
            assert sp is not None and sp.waiting_on == 0
            reminders = session.scalars(
                select(AgendaItem.fire_at).where(AgendaItem.progress_id == sp.id, AgendaItem.action == "remind")
            ).all()
        assert sp.due_at == datetime(2026, 3, 4, 14, 10, tzinfo=UTC), "due 2 working days after delivery"
        assert reminders == [datetime(2026, 3, 3, 14, 10, tzinfo=UTC)], "one day after delivery"
    finally:
        rt.db.dispose()


def test_a_session_reminder_already_planned_is_not_sent_once_the_session_is_not_applicable(rt, clock, console):
    """The outbox renders a session reminder at send time: a session that became n/a for the learner after the
    reminder was planned (the tick's correction of an older timeline) gets no reminder, like an attended one."""
    from bot.nudges.purposes import SESSION_REMIND
    from bot.storage.models import Delivery

    make_cohort(rt, "new-manager-onboarding", [("dee", "Europe/London")])
    with rt.factory() as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
    clock.set(kickoff.start_at - timedelta(minutes=14))
    rt.tick()  # plans the invite and the 15-minute reminder
    reminders = select(Delivery.state).where(Delivery.purpose == SESSION_REMIND.name)
    with transaction(rt.factory) as session:
        assert session.scalars(reminders).all() == ["pending"], "a session reminder is waiting to be sent"
        session.execute(
            update(StepProgress).where(StepProgress.step_id == "kickoff").values(state="n/a", due_at=None)
        )
    rt.drain()
    with rt.factory() as session:
        assert "sent" not in session.scalars(reminders).all()
