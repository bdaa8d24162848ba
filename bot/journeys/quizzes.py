"""Quizzes: grading, answering one question at a time, multi-select toggles and retries.

:func:`grade` is the one grading rule; catch-up recap quizzes (:mod:`bot.live.recaps`) and spaced reinforcement
(:mod:`bot.records.reinforce`) use it too, so a question is never right in one place and wrong in another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.errors import InvalidInput
from bot.journeys import progress
from bot.journeys.context import FINAL_STATES, Context, hold, step_context, touch
from bot.journeys.model import Program, QuizStep
from bot.states import StepState, Verb
from bot.storage.events import object_id, record_for
from bot.storage.models import Enrollment, QuizAnswer, StepProgress


@dataclass(frozen=True)
class QuizOutcome:
    """What happened when a learner answered one question."""

    progress: StepProgress
    question_index: int
    correct: bool
    choice: list[int]
    finished: bool
    passed: bool | None
    score: float | None
    duplicate: bool = False


def grade(correct_flags: Sequence[bool], choice: Iterable[int]) -> bool:
    """True when the chosen options are exactly the correct ones (one option for a single-choice question)."""
    return set(choice) == {i for i, ok in enumerate(correct_flags) if ok}


def quiz_state(sp: StepProgress) -> dict[str, Any]:
    state = dict(sp.scratch or {})
    state.setdefault("attempt", max(sp.attempts, 1))
    state.setdefault("q", 0)
    state.setdefault("correct", 0)
    state.setdefault("selected", [])
    return state


def answer(
    ctx: Context, session: Session, sp: StepProgress, attempt: int, question_index: int, choice: list[int]
) -> QuizOutcome:
    """Grade one answer. A stale or repeated answer (double click, replayed request) records nothing.

    Under :func:`~bot.journeys.context.hold`, two answers to one question that arrive together are graded one
    after the other, and the second sees the question already answered.
    """
    hold(session, sp)
    enrollment, program, step = step_context(ctx, session, sp)
    if not isinstance(step, QuizStep):
        raise InvalidInput("That step is not a quiz.")
    state = quiz_state(sp)
    if sp.state in FINAL_STATES or attempt != state["attempt"] or question_index != state["q"]:
        return QuizOutcome(sp, question_index, False, choice, sp.state in FINAL_STATES, sp.passed, sp.score, True)
    if question_index >= len(step.questions):
        raise InvalidInput("That question is not part of this quiz.")
    question = step.questions[question_index]
    if not choice or any(c < 0 or c >= len(question.options) for c in choice):
        raise InvalidInput("Please pick one of the options shown.")
    now = ctx.clock.now()
    progress.open_step(ctx, sp)
    sp.attempts = attempt
    correct = grade([o.correct for o in question.options], choice)
    session.add(
        QuizAnswer(
            progress_id=sp.id,
            attempt=attempt,
            question_id=question.id,
            choice=",".join(str(c) for c in sorted(choice)),
            correct=correct,
            answered_at=now,
        )
    )
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.ANSWERED,
        object_type="question",
        object_id=object_id(program.id, step.id, question.id),
        result={
            "success": correct,
            "response": "[,]".join(str(c) for c in sorted(choice)),
            "extensions": {"attempt": attempt},
        },
    )
    touch(enrollment, now)
    state["correct"] += int(correct)
    state["q"] = question_index + 1
    state["selected"] = []
    sp.scratch = state
    if state["q"] < len(step.questions):
        session.flush()
        return QuizOutcome(sp, question_index, correct, choice, False, None, None)
    passed, score = _finish_attempt(ctx, session, sp, enrollment, program, step, state, attempt, now)
    return QuizOutcome(sp, question_index, correct, choice, True, passed, score)


def _finish_attempt(
    ctx: Context,
    session: Session,
    sp: StepProgress,
    enrollment: Enrollment,
    program: Program,
    step: QuizStep,
    state: dict[str, Any],
    attempt: int,
    now: datetime,
) -> tuple[bool, float]:
    """Score the attempt, record passed/failed, and complete or fail the step."""
    score = state["correct"] / len(step.questions)
    passed = score >= step.pass_mark
    sp.score = score if sp.score is None else max(sp.score, score)
    sp.passed = bool(sp.passed) or passed
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.PASSED if passed else Verb.FAILED,
        object_type="step",
        object_id=object_id(program.id, step.id),
        result={
            "score": {"scaled": round(score, 4), "raw": state["correct"], "min": 0, "max": len(step.questions)},
            "success": passed,
            "extensions": {"attempt": attempt},
        },
    )
    session.flush()
    if passed or step.complete_on == "attempt":
        progress.complete(ctx, session, sp, source="quiz")
    elif attempt >= step.retry.max_attempts:
        sp.state = StepState.FAILED
        sp.done_at = now
    return passed, score


def toggle_choice(session: Session, sp: StepProgress, attempt: int, qi: int, option: int) -> None:
    hold(session, sp)
    state = quiz_state(sp)
    if sp.state in FINAL_STATES or attempt != state["attempt"] or qi != state["q"]:
        return
    selected = set(state["selected"])
    selected ^= {option}
    state["selected"] = sorted(selected)
    sp.scratch = state


def retry_quiz(ctx: Context, session: Session, sp: StepProgress) -> None:
    hold(session, sp)
    _, _, step = step_context(ctx, session, sp)
    assert isinstance(step, QuizStep)
    state = quiz_state(sp)
    if sp.state in FINAL_STATES:
        raise InvalidInput("This quiz is already finished.")
    if state["q"] < len(step.questions):
        return  # still mid-attempt: nothing to reset (e.g. a double click on Retry)
    if state["attempt"] >= step.retry.max_attempts:
        raise InvalidInput("You have used every attempt for this quiz.")
    sp.scratch = {"attempt": state["attempt"] + 1, "q": 0, "correct": 0, "selected": []}
