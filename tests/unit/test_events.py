"""The learning-event log: one row per fact, xAPI-shaped ids, written in the same transaction as the state."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage.models import LearningEvent, StepProgress
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, button, enrollment, events, progress

PROGRAM = """
id: evented
title: Evented
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: read
    title: Read
    kind: lesson
    body: Read this.
  - id: check
    title: Check
    kind: quiz
    retry: {max_attempts: 1}
    questions:
      - id: q1
        text: Pick right.
        options:
          - text: Right
            correct: true
          - text: Wrong
  - id: talk
    title: Talk
    kind: prompt
    text: Say something.
  - id: live
    title: Live
    kind: session
    start: {day: 1, at: "14:00"}
    duration: 1h
"""

SHAPE = re.compile(r"^program/evented(/step/[a-z0-9_-]+(/question/[a-z0-9_-]+)?)?$")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"evented": PROGRAM})
    make_cohort(runtime, "evented", [("ana", "Europe/London"), ("bo", "Europe/London")])
    yield runtime
    runtime.db.dispose()


def at(rt: Runtime, clock: VirtualClock, when: datetime) -> None:
    clock.set(when)
    rt.step()


def play(rt: Runtime, clock: VirtualClock, console: ConsoleAdapter) -> None:
    """Ana does everything (twice-clicking along the way); Bo fails the quiz and misses the session."""
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    sent, b = button(console, "ana", "lesson.done", "Read")
    console.press("ana", sent, b)
    console.press("ana", sent, b)
    for user, label in (("ana", "Right"), ("bo", "Wrong")):
        sent, _ = button(console, user, "quiz.answer", "Check")
        b = next(x for x in sent.message.buttons if x.label == label)
        console.press(user, sent, b)
        console.press(user, sent, b)
    sent, b = button(console, "ana", "rsvp.yes", "Live session: Live")
    console.press("ana", sent, b)
    console.press("ana", sent, b)
    post = next(s for s in console.channel_posts("cohort-1") if s.message.title == "Discussion: Talk")
    console.reply_in_thread("ana", post, "Something.")
    at(rt, clock, utc(2026, 3, 3, 13, 55))
    sent, b = button(console, "ana", "session.checkin", "Check in: Live")
    console.press("ana", sent, b)
    console.press("ana", sent, b)
    at(rt, clock, utc(2026, 3, 3, 15, 0))
    at(rt, clock, utc(2026, 3, 3, 16, 0))


def test_every_fact_is_recorded_exactly_once(rt, clock, console):
    play(rt, clock, console)
    ana = Counter((e.verb, e.object_type, e.object_id) for e in events(rt, user="ana"))
    assert ana == Counter(
        {
            ("registered", "program", "program/evented"): 1,
            ("delivered", "step", "program/evented/step/read"): 1,
            ("delivered", "step", "program/evented/step/check"): 1,
            ("delivered", "step", "program/evented/step/talk"): 1,
            ("delivered", "session", "program/evented/step/live"): 1,
            ("completed", "step", "program/evented/step/read"): 1,
            ("answered", "question", "program/evented/step/check/question/q1"): 1,
            ("passed", "step", "program/evented/step/check"): 1,
            ("completed", "step", "program/evented/step/check"): 1,
            ("registered", "session", "program/evented/step/live"): 1,
            ("replied", "prompt", "program/evented/step/talk"): 1,
            ("completed", "step", "program/evented/step/talk"): 1,
            ("attended", "session", "program/evented/step/live"): 1,
            ("completed", "session", "program/evented/step/live"): 1,
            ("completed", "program", "program/evented"): 1,
        }
    )
    bo = Counter(
        (e.verb, e.object_id) for e in events(rt, user="bo") if e.verb not in ("delivered", "registered")
    )
    assert bo == Counter(
        {
            ("answered", "program/evented/step/check/question/q1"): 1,
            ("failed", "program/evented/step/check"): 1,
            ("missed", "program/evented/step/live"): 1,
        }
    )
    for e in events(rt):
        assert SHAPE.match(e.object_id), e.object_id
        assert e.enrollment_id is not None and e.cohort_id is not None
        assert e.ts.tzinfo is not None


def test_event_results_carry_the_outcome(rt, clock, console):
    play(rt, clock, console)
    [answered] = [e for e in events(rt, "answered", "ana")]
    assert answered.result == {"success": True, "response": "0", "extensions": {"attempt": 1}}
    [passed] = events(rt, "passed", "ana")
    assert passed.result["score"] == {"scaled": 1.0, "raw": 1, "min": 0, "max": 1}
    [failed] = events(rt, "failed", "bo")
    assert failed.result["success"] is False and failed.result["score"]["scaled"] == 0.0
    [attended] = events(rt, "attended", "ana")
    assert attended.ts == utc(2026, 3, 3, 13, 55)
    assert attended.result == {"extensions": {"source": "checkin", "minutes": None}}


def test_event_time_matches_the_state_change(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    clock.set(utc(2026, 3, 2, 11, 15))
    sent, b = button(console, "ana", "lesson.done", "Read")
    console.press("ana", sent, b)
    [done] = [e for e in events(rt, "completed", "ana") if e.object_id.endswith("/read")]
    assert done.ts == progress(rt, "ana", "read").done_at == utc(2026, 3, 2, 11, 15)
    [delivered] = [e for e in events(rt, "delivered", "ana") if e.object_id.endswith("/read")]
    assert delivered.ts == utc(2026, 3, 2, 9, 30)


def test_state_and_event_commit_or_roll_back_together(rt, clock, console):
    at(rt, clock, utc(2026, 3, 2, 9, 30))
    pid = progress(rt, "ana", "read").id
    with rt.factory() as session:
        sp = session.get(StepProgress, pid)
        assert rt.engine.complete(session, sp)
        session.flush()
        inside = session.scalar(
            select(func.count()).select_from(LearningEvent).where(LearningEvent.verb == "completed")
        )
        assert inside == 1  # visible in the same unit of work...
        session.rollback()  # ...and gone with it
    assert progress(rt, "ana", "read").state == "open"
    assert events(rt, "completed") == []
    # Committed through the dispatcher, state and event arrive together.
    sent, b = button(console, "ana", "lesson.done", "Read")
    console.press("ana", sent, b)
    assert progress(rt, "ana", "read").state == "done"
    assert len(events(rt, "completed", "ana")) == 1
    assert enrollment(rt, "ana").status == "active"
