"""A missed session becomes a catch-up lesson that completes the program.

ana attends the kickoff and bo misses it. The lead attaches the recording and the transcript from chat, the recap
is drafted by a (fake) OpenAI-compatible server through the real ``openai`` client, reviewed and released. bo gets
the catch-up lesson, takes the recap quiz, and the catch-up counts toward the attendance rule; ana gets the
recording link. Everything else of the program is completed through the normal engine.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.app import build
from bot.events import Actor, CommandInvoked
from bot.live.models import LiveCatchup
from bot.reporting import build_report
from bot.storage.db import transaction
from bot.storage.models import Attendance, Enrollment, LearningEvent, LiveSessionRow, Person, StepProgress
from tests.conftest import make_cohort, make_settings
from tests.fakes.openai_api import VALID_RECAP, Reply, fake_openai

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "live" / "samples" / "kickoff.vtt"


def lead_command(rt, args, attachments=()):
    event = CommandInvoked(Actor("console", "console", "lead"), args, attachments=attachments)
    return rt.dispatcher.handle(event).ephemeral.body


def test_missed_session_to_catch_up_to_completion(db_url, clock, console):
    with fake_openai() as fake:
        settings = make_settings(db_url, llm={"base_url": fake.base_url, "model": "local-recap"})
        rt = build(settings, clock=clock, adapters={"console": console})
        console.start(rt.dispatcher)
        try:
            _journey(rt, clock, console, fake)
        finally:
            rt.db.dispose()


def _journey(rt, clock, console, fake):
    make_cohort(rt, "new-manager-onboarding", [("ana", "America/New_York"), ("bo", "America/New_York")])
    with rt.factory() as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
    # ana checks in during the kickoff; bo does not.
    clock.set(kickoff.start_at + timedelta(minutes=2))
    rt.step()
    sent, button = console.last_with_button("ana", "session.checkin")
    console.press("ana", sent, button)
    clock.set(kickoff.end_at + timedelta(hours=1))
    rt.step()
    with rt.factory() as session:
        states = dict(
            session.execute(
                select(Person.user_id, StepProgress.state)
                .join(Enrollment, Enrollment.person_id == Person.id)
                .join(StepProgress, StepProgress.enrollment_id == Enrollment.id)
                .where(StepProgress.step_id == "kickoff")
            ).all()
        )
    assert states == {"ana": "done", "bo": "missed"}

    # The lead attaches the recording and transcript from chat; the fake model first answers badly, then well.
    fake.script(Reply(content='{"summary": "too short"}'), Reply(content=json.dumps(VALID_RECAP)))
    text = lead_command(
        rt, "recording kickoff https://rec.example.com/kickoff c1", (("kickoff.vtt", SAMPLE.read_bytes()),)
    )
    assert "Recording and transcript saved" in text and "AI draft" in text
    assert len(fake.requests) == 2
    assert "Rui Costa:" in fake.requests[0]["body"]["messages"][1]["content"]
    rt.drain()
    ready = [s for s in console.messages_to("lead") if s.message.title.startswith("Recap draft ready")]
    assert ready and any(b.action == "recap.release" for b in ready[-1].message.buttons)

    review = lead_command(rt, "recap review kickoff c1")
    assert "AI draft (local-recap)" in review and "Whose meeting is a one-on-one?" in review
    assert "Missed it: 1 learner(s)" in review
    # Nothing has gone to learners before release.
    assert not [s for s in console.messages_to("bo") if s.message.title.startswith("Catch-up")]

    assert "1 catch-up lesson(s)" in lead_command(rt, "recap release kickoff c1")
    assert "0 catch-up lesson(s)" in lead_command(rt, "recap release kickoff c1")  # idempotent
    clock.advance(timedelta(hours=1))
    rt.drain()
    catchups = [s for s in console.messages_to("bo") if s.message.title.startswith("Catch-up")]
    assert len(catchups) == 1
    card = catchups[0]
    assert "Key points" in card.message.body and "https://rec.example.com/kickoff" in card.message.body
    recordings = [s for s in console.messages_to("ana") if s.message.title.startswith("Recording")]
    assert len(recordings) == 1 and not [
        s for s in console.messages_to("bo") if s.message.title.startswith("Recording")
    ]

    # bo takes the recap quiz: one wrong answer, then right ones; the last answer completes the catch-up.
    quiz = next(b for b in card.message.buttons if b.action == "catchup.quiz")
    console.press("bo", card, quiz)
    console.press("bo", card, card.message.buttons[0])  # "Their own output": wrong
    assert "Not quite" in card.message.body and "'I deliver' to 'we deliver'" in card.message.body
    stale = card.message.buttons[0]
    console.press("bo", card, next(b for b in card.message.buttons if b.label == "The team member's"))
    console.press("bo", card, stale)  # a stale button from an earlier card does nothing
    console.press("bo", card, next(b for b in card.message.buttons if b.label == "Move it to another day"))
    assert "You're caught up" in card.message.body and "2/3 correct" in card.message.body

    with rt.factory() as session:
        bo = session.scalar(select(Enrollment).join(Person).where(Person.user_id == "bo"))
        c = session.scalar(select(LiveCatchup).where(LiveCatchup.enrollment_id == bo.id))
        assert c.state == "done" and c.correct == 2
        attendance = session.scalar(
            select(Attendance).where(Attendance.enrollment_id == bo.id, Attendance.session_id == kickoff.id)
        )
        assert attendance.source == "catch_up" and attendance.attended_at is not None
        caught = session.scalars(select(LearningEvent).where(LearningEvent.verb == "caught-up")).all()
        assert len(caught) == 1 and caught[0].result["score"]["raw"] == 2
        assert rt.engine.status_counts(session, bo)["sessions_attended"] == 1
        report = {r.user_id: r for r in build_report(session, rt.engine).learners}
    assert report["bo"].sessions_attended == 0 and report["bo"].sessions_caught_up == 1
    assert report["bo"].sessions_missed == 1
    assert report["ana"].sessions_attended == 1 and report["ana"].sessions_caught_up == 0

    # The rest of the program, done through the engine, completes bo's enrolment thanks to the catch-up.
    _finish_program(rt, clock, "bo")
    with rt.factory() as session:
        bo = session.scalar(select(Enrollment).join(Person).where(Person.user_id == "bo"))
        assert bo.status == "completed"
        ana = session.scalar(select(Enrollment).join(Person).where(Person.user_id == "ana"))
        assert ana.status == "active"  # ana did not do the rest


def _finish_program(rt, clock, user):
    """Complete every remaining step (pass quizzes, attend the closing session) for ``user``."""
    with transaction(rt.factory) as session:
        enrollment = session.scalar(select(Enrollment).join(Person).where(Person.user_id == user))
        program = rt.library.program(enrollment.program_id)
        closing = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "closing"))
        clock.set(closing.start_at + timedelta(minutes=1))
        for step in program.steps:
            sp = session.scalar(
                select(StepProgress).where(
                    StepProgress.enrollment_id == enrollment.id, StepProgress.step_id == step.id
                )
            )
            if sp.state in ("done", "missed"):
                continue
            if step.kind == "session":
                rt.engine.check_in(session, sp)
            elif step.kind == "quiz":
                sp.passed = True
                rt.engine.complete(session, sp, source="test")
            else:
                rt.engine.complete(session, sp, source="test")
