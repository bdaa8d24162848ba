"""Quiz grading through the real dispatcher: single and multiple choice, feedback, pass mark, retries, replays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.messages import Button
from bot.storage.models import LearningEvent, QuizAnswer
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime, count, events, progress

PROGRAM = """
id: quizzes
title: Quizzes
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: check
    title: Behaviour check
    kind: quiz
    pass_mark: 1.0
    retry: {max_attempts: 2}
    questions:
      - id: single
        text: Which one is a behaviour?
        options:
          - text: Seemed bored
            feedback: That is an interpretation.
          - text: Checked the phone three times
            correct: true
            feedback: A camera could record it.
          - text: Does not care
        explanation: Behaviour is what a camera could record.
      - id: timing
        text: Good timing for feedback?
        multiple: true
        options:
          - text: Soon after the event
            correct: true
            feedback: The details are fresh.
          - text: At the annual review
            feedback: Far too late.
          - text: In private
            correct: true
        explanation: Timely and private feedback is easiest to hear.
  - id: practice
    title: Practice round
    kind: quiz
    complete_on: attempt
    pass_mark: 1.0
    retry: {max_attempts: 1}
    questions:
      - id: only
        text: Pick the right one.
        options:
          - text: Right
            correct: true
          - text: Wrong
"""

MONDAY_0930 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"quizzes": PROGRAM})
    make_cohort(runtime, "quizzes", [("ana", "Europe/London")])
    clock.set(MONDAY_0930)
    runtime.step()
    yield runtime
    runtime.db.dispose()


def card(console: ConsoleAdapter, title: str) -> Sent:
    found = [s for s in console.messages_to("ana") if s.message.title == title]
    assert len(found) == 1, [s.message.title for s in console.messages_to("ana")]
    return found[0]


def btn(sent: Sent, action: str, label: str | None = None) -> Button:
    for b in sent.message.buttons:
        if b.action == action and (label is None or label in b.label):
            return b
    raise AssertionError(f"no {action} {label!r} button on {[b.label for b in sent.message.buttons]}")


def answer(console: ConsoleAdapter, sent: Sent, label: str) -> None:
    console.press("ana", sent, btn(sent, "quiz.answer", label))


def choose(console: ConsoleAdapter, sent: Sent, *labels: str) -> None:
    for label in labels:
        console.press("ana", sent, btn(sent, "quiz.toggle", label))
    console.press("ana", sent, btn(sent, "quiz.submit"))


def answers(rt: Runtime) -> list[tuple[int, str, str, bool]]:
    with rt.factory() as session:
        rows = session.query(QuizAnswer).order_by(QuizAnswer.id).all()
        return [(r.attempt, r.question_id, r.choice, r.correct) for r in rows]


def test_single_choice_correct_shows_feedback_and_the_next_question_in_place(rt, console):
    quiz = card(console, "Behaviour check")
    assert "Question 1 of 2" in quiz.message.body
    answer(console, quiz, "Checked the phone")
    body = quiz.message.body
    assert "✅ **Correct.**" in body
    assert "Checked the phone three times: A camera could record it." in body
    assert "Behaviour is what a camera could record." in body
    assert "Question 2 of 2" in body
    assert len(quiz.history) == 1  # the same message was replaced, nothing new was sent
    assert answers(rt) == [(1, "single", "1", True)]


def test_single_choice_wrong_names_the_right_answer(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Seemed bored")
    body = quiz.message.body
    assert "❌ **Not quite.**" in body
    assert "Seemed bored: That is an interpretation." in body
    assert "Correct answer: **Checked the phone three times**" in body
    assert "Behaviour is what a camera could record." in body
    assert answers(rt) == [(1, "single", "0", False)]


def test_multiple_choice_toggles_then_grades_on_submit(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Checked the phone")
    console.press("ana", quiz, btn(quiz, "quiz.toggle", "At the annual review"))
    assert "☑ At the annual review" in [b.label for b in quiz.message.buttons]
    console.press("ana", quiz, btn(quiz, "quiz.toggle", "At the annual review"))  # toggled off again
    assert "☐ At the annual review" in [b.label for b in quiz.message.buttons]
    choose(console, quiz, "Soon after", "In private")
    body = quiz.message.body
    assert "✅ **Correct.**" in body
    assert "Soon after the event: The details are fresh." in body
    assert "Timely and private feedback is easiest to hear." in body
    assert "You scored 100%. Passed." in body
    assert answers(rt) == [(1, "single", "1", True), (1, "timing", "0,2", True)]


def test_multiple_choice_partly_right_is_wrong(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Checked the phone")
    choose(console, quiz, "Soon after")
    assert "❌ **Not quite.**" in quiz.message.body
    assert "Correct answer: **Soon after the event, In private**" in quiz.message.body
    assert answers(rt)[-1] == (1, "timing", "0", False)


def test_submit_with_nothing_selected_asks_for_a_choice(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Checked the phone")
    response = console.press("ana", quiz, btn(quiz, "quiz.submit"))
    assert response.ephemeral is not None and "Pick at least one option" in response.ephemeral.body
    assert len(answers(rt)) == 1


def test_pass_mark_reached_completes_the_quiz(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Checked the phone")
    choose(console, quiz, "Soon after", "In private")
    sp = progress(rt, "ana", "check")
    assert (sp.state, sp.passed, sp.score) == ("done", True, 1.0)
    assert [e.verb for e in events(rt, user="ana") if e.object_id == "program/quizzes/step/check"] == [
        "delivered",
        "passed",
        "completed",
    ]
    assert not [b for b in quiz.message.buttons if b.action == "quiz.retry"]


def test_below_pass_mark_offers_try_again_until_max_attempts_then_fails(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Checked the phone")
    choose(console, quiz, "Soon after")  # 1 of 2: below the 100% pass mark
    assert "You scored 50%." in quiz.message.body
    assert "The pass mark is 100%. You have 1 more attempt(s)." in quiz.message.body
    assert progress(rt, "ana", "check").state == "open"
    console.press("ana", quiz, btn(quiz, "quiz.retry"))
    assert "Question 1 of 2" in quiz.message.body
    assert "Attempt 2 of 2" in quiz.message.context
    answer(console, quiz, "Seemed bored")
    choose(console, quiz, "Soon after", "In private")
    sp = progress(rt, "ana", "check")
    assert (sp.state, sp.passed, sp.attempts) == ("failed", False, 2)
    assert "That was the last attempt" in quiz.message.body
    assert not [b for b in quiz.message.buttons if b.action == "quiz.retry"]
    assert [e.verb for e in events(rt, user="ana") if e.verb in ("passed", "failed", "completed")] == [
        "failed",
        "failed",
    ]
    assert [(a, q) for a, q, _, _ in answers(rt)] == [
        (1, "single"),
        (1, "timing"),
        (2, "single"),
        (2, "timing"),
    ]


def test_a_second_attempt_can_pass(rt, console):
    quiz = card(console, "Behaviour check")
    answer(console, quiz, "Seemed bored")
    choose(console, quiz, "In private")
    console.press("ana", quiz, btn(quiz, "quiz.retry"))
    answer(console, quiz, "Checked the phone")
    choose(console, quiz, "Soon after", "In private")
    sp = progress(rt, "ana", "check")
    assert (sp.state, sp.passed, sp.score) == ("done", True, 1.0)


def test_complete_on_attempt_completes_even_when_failed(rt, console):
    quiz = card(console, "Practice round")
    answer(console, quiz, "Wrong")
    sp = progress(rt, "ana", "practice")
    assert (sp.state, sp.passed, sp.score) == ("done", False, 0.0)
    verbs = [
        e.verb for e in events(rt, user="ana") if e.object_id.startswith("program/quizzes/step/practice")
    ]
    assert verbs == ["delivered", "answered", "failed", "completed"]


def test_double_click_records_one_answer(rt, console):
    quiz = card(console, "Behaviour check")
    stale = btn(quiz, "quiz.answer", "Checked the phone")
    console.press("ana", quiz, stale)
    console.press("ana", quiz, stale)  # the same button again: the card has moved on
    assert count(rt, QuizAnswer) == 1
    assert count(rt, LearningEvent, LearningEvent.verb == "answered") == 1
    assert "Question 2 of 2" in quiz.message.body


def test_replayed_request_with_the_same_dedupe_key_records_once(rt, console):
    quiz = card(console, "Behaviour check")
    first = btn(quiz, "quiz.answer", "Checked the phone")
    console.press("ana", quiz, first, dedupe_key="evt-1")
    replay = console.press("ana", quiz, first, dedupe_key="evt-1")
    assert replay.ephemeral is None and replay.replace is None
    assert count(rt, QuizAnswer) == 1
    assert count(rt, LearningEvent, LearningEvent.verb == "answered") == 1
