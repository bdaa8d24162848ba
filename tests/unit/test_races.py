"""One click is one fact, also when two clicks arrive at the same instant (issue 11, point 2).

Each test lines up pairs of distinct inbound events with a ``threading.Barrier`` and sends them through the real
:class:`~bot.dispatcher.Dispatcher`, each thread in its own transaction, as two web workers would. It runs on SQLite
and on PostgreSQL (when ``BLENDWISE_TEST_DATABASE_URL`` is set), where the old check-then-set code recorded two
``completed`` events for two Done clicks and lost a prerequisite's wait. No timing is asserted: only counts.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.events import (
    Actor,
    ButtonPressed,
    CommandInvoked,
    InboundEvent,
    ModalSubmitted,
    Response,
    ThreadReply,
)
from bot.ports import SORRY
from bot.storage.models import AgendaItem, Attendance, LearningEvent, Person, QuizAnswer
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, count, progress

PAIRS = 12

PROGRAM = """
id: races
title: Races
tz: Europe/London
defaults:
  reminders: {enabled: false}
completion:
  min_sessions_attended: 0
steps:
  - id: read-a
    title: Read A
    kind: lesson
    body: The first half.
  - id: read-b
    title: Read B
    kind: lesson
    body: The second half.
  - id: check
    title: Check
    kind: quiz
    unlock: {after: [read-a, read-b]}
    pass_mark: 1.0
    retry: {max_attempts: 2}
    questions:
      - id: one
        text: Pick the right one.
        options:
          - text: Right
            correct: true
          - text: Wrong
  - id: think
    title: Think
    kind: reflection
    question: What will you try first?
  - id: hello
    title: Say hello
    kind: prompt
    text: Introduce yourself to the cohort in this thread.
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 0, at: "14:00"}
    duration: 1h
    checkin: {opens_before: 10m, closes_after: 30m}
"""

#: Learners x00..x11 race the same action twice; y00..y11 race two different actions or prerequisites.
XS = [f"x{i:02d}" for i in range(PAIRS)]
YS = [f"y{i:02d}" for i in range(PAIRS)]
MONDAY_0930 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CHECKIN_OPEN = datetime(2026, 3, 2, 13, 55, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"races": PROGRAM})
    make_cohort(runtime, "races", [(u, "Europe/London") for u in XS + YS])
    clock.set(MONDAY_0930)
    runtime.step()
    yield runtime
    runtime.db.dispose()


def actor(user: str) -> Actor:
    return Actor("console", "console", user)


def press(user: str, action: str, value: str, key: str) -> ButtonPressed:
    return ButtonPressed(actor(user), action, value, None, key)


def pid(rt: Runtime, user: str, step: str) -> str:
    return str(progress(rt, user, step).id)


def race(rt: Runtime, pairs: list[tuple[InboundEvent, InboundEvent]]) -> list[Response]:
    """Send each pair from two threads released together; pairs run one after another."""
    responses: list[Response] = []
    for pair in pairs:
        barrier = threading.Barrier(len(pair))
        lock = threading.Lock()

        def send(event: InboundEvent, barrier: threading.Barrier = barrier, lock: threading.Lock = lock) -> None:
            barrier.wait(timeout=60)
            response = rt.dispatcher.handle(event)
            with lock:
                responses.append(response)

        threads = [threading.Thread(target=send, args=(event,)) for event in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a racing handler never finished"
    return responses


def active_now(rt: Runtime, users: list[str]) -> None:
    """Each learner does something at the racing instant first (an RSVP "maybe", which records no fact).

    Their enrolment's last activity is then already "now", so the racing clicks write no change to the enrolment
    row, and no accidental row lock from that write lines the two transactions up: only the code under test may.
    """
    for u in users:
        rt.dispatcher.handle(press(u, "rsvp.maybe", pid(rt, u, "workshop"), f"{u}-maybe"))


def facts(rt: Runtime, verb: str, suffix: str) -> Counter[int]:
    """How many ``verb`` events each enrolment has on the object whose id ends with ``suffix``."""
    with rt.factory() as session:
        rows = session.execute(
            select(LearningEvent.enrollment_id, LearningEvent.object_id).where(LearningEvent.verb == verb)
        ).all()
    return Counter(e for e, obj in rows if e is not None and obj.endswith(suffix))


def per_learner(rt: Runtime, users: list[str], verb: str, suffix: str) -> list[int]:
    counts = facts(rt, verb, suffix)
    return [counts[progress(rt, u, "read-a").enrollment_id] for u in users]


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """Log records at ERROR or above (an exception traceback from the dispatcher is one)."""
    caplog.set_level(logging.WARNING)
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_two_done_clicks_record_one_completion(rt, errors):
    race(rt, [(press(u, "lesson.done", pid(rt, u, "read-a"), f"{u}-1"),
               press(u, "lesson.done", pid(rt, u, "read-a"), f"{u}-2")) for u in XS])
    assert per_learner(rt, XS, "completed", "/step/read-a") == [1] * PAIRS
    # One release of dependants: the quiz still waits on read-b.
    assert [progress(rt, u, "check").waiting_on for u in XS] == [1] * PAIRS
    assert [progress(rt, u, "read-a").state for u in XS] == ["done"] * PAIRS
    assert errors() == []


def test_two_prerequisites_completed_at_once_release_the_quiz_once(rt, errors):
    active_now(rt, YS)
    race(rt, [(press(u, "lesson.done", pid(rt, u, "read-a"), f"{u}-a"),
               press(u, "lesson.done", pid(rt, u, "read-b"), f"{u}-b")) for u in YS])
    assert per_learner(rt, YS, "completed", "/step/read-a") == [1] * PAIRS
    assert per_learner(rt, YS, "completed", "/step/read-b") == [1] * PAIRS
    assert [progress(rt, u, "check").waiting_on for u in YS] == [0] * PAIRS
    with rt.factory() as session:
        ids = [progress(rt, u, "check").id for u in YS]
        unscheduled = session.scalars(
            select(AgendaItem.progress_id).where(
                AgendaItem.progress_id.in_(ids), AgendaItem.action == "deliver", AgendaItem.fire_at.is_(None)
            )
        ).all()
    assert unscheduled == [], "a quiz whose prerequisites are both done must be scheduled"
    assert errors() == []


def test_two_quiz_answers_to_one_question_grade_once(rt, errors):
    for u in YS:  # open the quiz the ordinary way first
        rt.dispatcher.handle(press(u, "lesson.done", pid(rt, u, "read-a"), f"{u}-a"))
        rt.dispatcher.handle(press(u, "lesson.done", pid(rt, u, "read-b"), f"{u}-b"))
    race(rt, [(press(u, "quiz.answer", f"{pid(rt, u, 'check')}.1.0.0", f"{u}-right"),
               press(u, "quiz.answer", f"{pid(rt, u, 'check')}.1.0.1", f"{u}-wrong")) for u in YS])
    assert per_learner(rt, YS, "answered", "/step/check/question/one") == [1] * PAIRS
    passed = per_learner(rt, YS, "passed", "/step/check")
    failed = per_learner(rt, YS, "failed", "/step/check")
    assert [p + f for p, f in zip(passed, failed, strict=True)] == [1] * PAIRS
    assert per_learner(rt, YS, "completed", "/step/check") == passed
    with rt.factory() as session:
        answers = Counter(
            session.scalars(
                select(QuizAnswer.progress_id).where(QuizAnswer.progress_id.in_([progress(rt, u, "check").id for u in YS]))
            )
        )
    assert sorted(answers.values()) == [1] * PAIRS
    assert errors() == []


def test_two_rsvps_register_once(rt, errors):
    race(rt, [(press(u, "rsvp.yes", pid(rt, u, "workshop"), f"{u}-1"),
               press(u, "rsvp.yes", pid(rt, u, "workshop"), f"{u}-2")) for u in XS])
    assert per_learner(rt, XS, "registered", "/step/workshop") == [1] * PAIRS
    assert errors() == []


def test_two_checkins_record_one_attendance(rt, clock, errors):
    clock.set(CHECKIN_OPEN)
    race(rt, [(press(u, "session.checkin", pid(rt, u, "workshop"), f"{u}-1"),
               press(u, "session.checkin", pid(rt, u, "workshop"), f"{u}-2")) for u in XS])
    assert per_learner(rt, XS, "attended", "/step/workshop") == [1] * PAIRS
    assert per_learner(rt, XS, "completed", "/step/workshop") == [1] * PAIRS
    assert count(rt, Attendance, Attendance.attended_at.is_not(None)) == PAIRS
    assert errors() == []


def test_two_reflections_record_one_fact(rt, errors):
    race(rt, [(ModalSubmitted(actor(u), "reflection.submit", pid(rt, u, "think"), "Ask first, then tell.", f"{u}-1"),
               ModalSubmitted(actor(u), "reflection.submit", pid(rt, u, "think"), "Listen before advising.", f"{u}-2"))
              for u in YS])
    assert per_learner(rt, YS, "reflected", "/step/think") == [1] * PAIRS
    assert per_learner(rt, YS, "completed", "/step/think") == [1] * PAIRS
    assert errors() == []


def the_thread(console: ConsoleAdapter) -> tuple[str, str]:
    [post] = [s for s in console.channel_posts("cohort-1") if s.message.title == "Discussion: Say hello"]
    return post.ref.channel, post.ref.ts


def test_one_thread_message_under_two_event_ids_is_one_reply(rt, console, errors):
    channel, thread = the_thread(console)
    race(rt, [(ThreadReply(actor(u), channel, thread, "Hi, I am new here.", f"m-{u}"),
               ThreadReply(actor(u), channel, thread, "Hi, I am new here.", f"m-{u}")) for u in XS])
    assert per_learner(rt, XS, "replied", "/step/hello") == [1] * PAIRS
    assert per_learner(rt, XS, "completed", "/step/hello") == [1] * PAIRS
    assert errors() == [], "a duplicate delivery of one message must be a clean no-op"


def test_two_replies_at_once_complete_the_prompt_once(rt, console, errors):
    channel, thread = the_thread(console)
    active_now(rt, YS)
    race(rt, [(ThreadReply(actor(u), channel, thread, "Hello all.", f"m-{u}-1"),
               ThreadReply(actor(u), channel, thread, "And one more thing.", f"m-{u}-2")) for u in YS])
    assert per_learner(rt, YS, "replied", "/step/hello") == [2] * PAIRS  # two messages are two facts
    assert per_learner(rt, YS, "completed", "/step/hello") == [1] * PAIRS
    assert errors() == []


def test_two_first_events_from_a_new_person_create_one_person(rt, errors):
    newcomers = [f"new{i:02d}" for i in range(PAIRS)]
    responses = race(rt, [(CommandInvoked(actor(u), "help", dedupe_key=f"{u}-1"),
                           CommandInvoked(actor(u), "help", dedupe_key=f"{u}-2")) for u in newcomers])
    with rt.factory() as session:
        rows = session.scalars(select(Person.user_id).where(Person.user_id.in_(newcomers))).all()
    assert Counter(rows) == Counter({u: 1 for u in newcomers})
    assert len(responses) == 2 * PAIRS
    assert all(r.ephemeral is not None and r.ephemeral.text != SORRY for r in responses), "nobody gets the apology"
    assert errors() == [], "the second first event must find the person, not log an IntegrityError"
