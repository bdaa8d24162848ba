"""Spaced reinforcement over a virtual clock: FSRS brings wrong answers back inside working hours, capped per week.

The tests run on two small programs of their own, so the shipped programs can mark (or unmark) questions for
reinforcement without moving these numbers: ``recall`` has the feedback-fundamentals pre-work rhythm (lessons on
days 0 and 1, a quiz on Friday, day 4) and no marked question, so a card appears only for a wrong answer;
``recall-marked`` marks a single-choice question and leaves a multiple-choice one (the check refuses the mark there)
and a single-choice one unmarked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.journeys.model import QuizStep
from bot.reinforcement.cards import collect_cards
from bot.reinforcement.models import ReinforcementCard
from bot.reporting import Filters, build_report
from bot.storage.db import transaction
from bot.storage.models import Delivery, Enrollment, LearningEvent, Person, QuizAnswer, StepProgress
from bot.timewindow import zone
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime
from tests.unit.test_report import at, press, take_quiz

RECALL = """
id: recall
title: Recall
tz: Europe/London
steps:
  - id: behaviour-lesson
    title: Behaviour, not labels
    kind: lesson
    body: Describe what a camera could record.
    unlock: {day: 0}
    due: 2d
  - id: sbi-lesson
    title: Situation, Behaviour, Impact
    kind: lesson
    body: Name the moment, the behaviour and its effect.
    unlock: {day: 1}
    due: 2d
  - id: check
    title: Pre-work check
    kind: quiz
    unlock: {day: 4, after: [sbi-lesson]}
    due: 3d
    pass_mark: 0.75
    retry: {max_attempts: 3}
    questions:
      - id: observable-behaviour
        text: Which one describes a behaviour?
        options:
          - text: You seemed disengaged.
          - text: You checked your phone three times.
            correct: true
          - text: You don't care.
      - id: impact-part
        text: What does the Impact part describe?
        options:
          - text: The effect the behaviour had.
            correct: true
          - text: What it says about the person.
      - id: first-response
        text: Your report was "confusing". First response?
        options:
          - text: Where did it start to lose you?
            correct: true
          - text: Explain why you wrote it that way.
      - id: timing
        text: Good timing for feedback? Choose all that apply.
        multiple: true
        options:
          - text: Soon after the event.
            correct: true
          - text: At the annual review.
          - text: In private, when it redirects.
            correct: true
"""

RECALL_MARKED = """
id: recall-marked
title: Recall, marked
tz: Europe/London
steps:
  - id: marked-check
    title: Marked check
    kind: quiz
    questions:
      - id: marked
        text: Which one describes a behaviour?
        reinforce: true
        options:
          - text: You checked your phone three times.
            correct: true
          - text: You seemed disengaged.
      - id: marked-multiple
        text: Good timing for feedback? Choose all that apply.
        multiple: true
        options:
          - text: Soon after the event.
            correct: true
          - text: In private, when it redirects.
            correct: true
          - text: At the annual review.
      - id: unmarked
        text: What does the Impact part describe?
        options:
          - text: The effect the behaviour had.
            correct: true
          - text: What it says about the person.
"""


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(
        db_url,
        tmp_path,
        clock,
        console,
        {"recall": RECALL, "recall-marked": RECALL_MARKED},
        nudges={"max_reinforcement_per_week": 1},
    )
    yield runtime
    runtime.db.dispose()


def recalls(console, user: str):
    return [s for s in console.messages_to(user) if s.message.title == "Quick recall" and s.message.buttons]


def recalls_all(console, user: str):
    return [s for s in console.messages_to(user) if s.message.title == "Quick recall"]


def answer_recall(rt, console, user: str, correct: bool):
    sent = recalls(console, user)[-1]
    with rt.factory() as session:
        card = session.get(ReinforcementCard, int(sent.message.buttons[0].value.split(".")[0]))
        question = next(
            q for q in rt.library.step(card.program_id, card.step_id).questions if q.id == card.question_id
        )
    pick = next(i for i, o in enumerate(question.options) if o.correct == correct)
    button = next(b for b in sent.message.buttons if b.value.endswith(f".{pick}"))
    console.press(user, sent, button)
    return sent, button


def cards(rt, user: str) -> list[ReinforcementCard]:
    with rt.factory() as session:
        return list(
            session.scalars(
                select(ReinforcementCard)
                .join(Person, Person.id == ReinforcementCard.person_id)
                .where(Person.user_id == user, ReinforcementCard.active.is_(True))
                .order_by(ReinforcementCard.id)
            )
        )


def quiz_day(rt, clock, console, wrong: set[int]) -> None:
    make_cohort(rt, "recall", [("ana", "Europe/London")])
    at(clock, 0, 10)
    rt.step()
    press(console, "ana", "lesson.done")
    at(clock, 1, 10)
    rt.step()
    press(console, "ana", "lesson.done")
    at(clock, 4, 10)  # Friday 6 March
    rt.step()
    take_quiz(rt, console, "ana", wrong=wrong, program="recall", quiz="check")


def test_wrong_answer_comes_back_in_working_hours_and_feeds_retention(rt, clock, console):
    quiz_day(rt, clock, console, wrong={0})
    rt.tick()
    (card,) = cards(rt, "ana")
    assert card.reason == "wrong" and card.question_id == "observable-behaviour"
    # FSRS "Again" on Friday 10:00 -> due a day later, Saturday, which is not a working day.
    assert card.due_at == datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    at(clock, 5, 10, 30)
    rt.step()
    assert recalls_all(console, "ana") == []
    with rt.factory() as session:
        d = session.scalar(select(Delivery).where(Delivery.purpose == "reinforce"))
    local = d.due_at.astimezone(zone("Europe/London"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)  # Monday 09:00, when working hours open
    at(clock, 7, 9, 0)
    rt.step()
    (sent,) = recalls_all(console, "ana")
    assert sent.message.kind == "quiz" and len(sent.message.buttons) >= 2
    rt.step()  # planning again while one is out changes nothing
    assert len(recalls_all(console, "ana")) == 1

    clock.advance(timedelta(minutes=20))
    old = answer_recall(rt, console, "ana", correct=True)
    (card,) = cards(rt, "ana")
    assert card.reviews == 1 and card.asked_at is None
    assert "Correct" in recalls_all(console, "ana")[-1].message.body
    first_gap = card.due_at - clock.now()
    assert first_gap > timedelta(days=1)  # a correct recall pushes the next review further out
    with rt.factory() as session:
        answers = session.scalars(select(QuizAnswer).where(QuizAnswer.reinforcement.is_(True))).all()
        assert [(a.correct, a.attempt) for a in answers] == [(True, 1001)]
        event = session.scalars(
            select(LearningEvent).where(LearningEvent.verb == "answered").order_by(LearningEvent.id.desc())
        ).first()
        assert event.result["extensions"]["reinforcement"] is True
        report = build_report(session, rt.engine, Filters())
    assert report.learners[0].retention == 100.0
    # A double click on the old card records nothing.
    console.press("ana", *old)
    assert cards(rt, "ana")[0].reviews == 1

    # The next review comes when FSRS says (and the weekly cap of 1 allows); a wrong answer brings it back sooner.
    until_recall(rt, clock, console, 2)
    answer_recall(rt, console, "ana", correct=False)
    (card,) = cards(rt, "ana")
    assert card.lapses == 1 and card.due_at - clock.now() < first_gap
    with rt.factory() as session:
        assert build_report(session, rt.engine, Filters()).learners[0].retention == 50.0


def test_an_unanswered_recall_goes_stale_and_comes_back(rt, clock, console):
    """The planner probes before it plans; a stale micro-quiz is work even when nothing else is (no new answer, no
    card free and due), or the learner would never be asked again."""
    quiz_day(rt, clock, console, wrong={0})
    at(clock, 5, 10, 30)
    rt.step()  # planned for Monday 09:00, and never answered
    at(clock, 7, 9, 0)
    rt.step()
    assert len(recalls_all(console, "ana")) == 1
    at(clock, 11, 10)  # more than five days after it was asked
    rt.step()
    (card,) = cards(rt, "ana")
    assert card.asked_at is None and card.due_at == clock.now() + timedelta(days=1)
    at(clock, 14, 9, 30)
    rt.step()
    assert len(recalls_all(console, "ana")) == 2


def test_weekly_cap_and_one_at_a_time(rt, clock, console):
    quiz_day(rt, clock, console, wrong={0, 1})
    rt.tick()
    assert len(cards(rt, "ana")) == 2
    at(clock, 7, 9, 0)  # Monday: both cards are due
    rt.step()
    assert len(recalls_all(console, "ana")) == 1  # one at a time
    answer_recall(rt, console, "ana", correct=True)
    for day in range(8, 14):  # the rest of the week: the cap (1 per 7 days) holds the second card back
        at(clock, day, 11)
        rt.step()
    assert len(recalls_all(console, "ana")) == 1
    at(clock, 14, 9, 30)  # a week after the first: the second one may go
    rt.step()
    assert len(recalls_all(console, "ana")) == 2
    with rt.factory() as session:
        due = sorted(session.scalars(select(Delivery.due_at).where(Delivery.purpose == "reinforce")))
    assert due[1] - due[0] >= timedelta(days=7)
    for d in due:
        local = d.astimezone(zone("Europe/London"))
        assert local.weekday() < 5 and 9 <= local.hour < 17


def test_questions_marked_for_reinforcement_become_cards_even_when_right(rt, clock, console):
    program = rt.library.program("recall-marked")
    quiz = next(s for s in program.steps if isinstance(s, QuizStep) and any(q.reinforce for q in s.questions))
    make_cohort(rt, "recall-marked", [("ana", "Europe/London")])
    with transaction(rt.factory) as session:
        sp = session.scalar(
            select(StepProgress)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .where(StepProgress.step_id == quiz.id)
        )
        sp.state = "open"
        for qi, q in enumerate(quiz.questions):
            right = [i for i, o in enumerate(q.options) if o.correct]
            rt.engine.answer(session, sp, 1, qi, right)
    with transaction(rt.factory) as session:
        collect_cards(session, rt.engine, clock.now())
        again = collect_cards(session, rt.engine, clock.now())
    assert again == 0  # answers already carded are never looked at again
    active = cards(rt, "ana")
    marked = {q.id for q in quiz.questions if q.reinforce and not q.multiple}
    assert marked == {"marked"}  # the multiple-choice question and the unmarked one never become cards
    assert {c.question_id for c in active} == marked
    assert all(c.reason == "marked" for c in active)


def until_recall(rt, clock, console, n: int, *, days: int = 30) -> None:
    """Tick hour by hour until the ``n``-th micro-quiz reached ana."""
    for _ in range(days * 24):
        if len(recalls_all(console, "ana")) >= n:
            return
        clock.advance(timedelta(hours=1))
        rt.step()
    raise AssertionError(f"no micro-quiz #{n} within {days} days")
