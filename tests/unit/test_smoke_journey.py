"""A learner's first days through a shipped program, on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.storage.models import Delivery, Enrollment, Person, StepProgress
from tests.conftest import make_cohort


def test_first_lesson_arrives_in_working_hours_and_completes(rt, clock, console):
    make_cohort(rt, "feedback-fundamentals", [("ana", "Europe/London"), ("bo", "America/New_York")])
    rt.step()
    # 07:00 UTC on Monday: too early for London (07:00) and New York (02:00); nothing goes out yet.
    assert console.messages_to("ana") == [] or all(
        m.message.kind == "session" for m in console.messages_to("ana")
    )
    clock.advance(timedelta(hours=3))  # 10:00 London, 05:00 New York
    rt.step()
    lessons = [s for s in console.messages_to("ana") if s.message.kind == "lesson"]
    assert lessons, "the first lesson reaches the London learner at 09:30 local"
    assert not [s for s in console.messages_to("bo") if s.message.kind == "lesson"]
    sent, done = console.last_with_button("ana", "lesson.done")
    console.press("ana", sent, done)
    console.press("ana", sent, done)  # a double click records nothing new
    with rt.factory() as session:
        states = dict(
            session.execute(
                select(StepProgress.step_id, StepProgress.state)
                .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
                .join(Person, Person.id == Enrollment.person_id)
                .where(Person.user_id == "ana")
            ).all()
        )
        assert states["why-feedback-matters"] == "done"
    # A second tick plans nothing new.
    before = _count(rt)
    rt.tick()
    assert _count(rt) == before


def _count(rt) -> int:
    with rt.factory() as session:
        return session.scalar(select(func.count()).select_from(Delivery))
