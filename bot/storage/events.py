"""Writing the learning-event log. Append-only: nothing in Blendwise updates or deletes these rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.states import Verb
from bot.storage.models import LearningEvent

#: Every verb the log may hold (see :class:`bot.states.Verb`).
VERBS = tuple(Verb)


def object_id(program_id: str, step_id: str | None = None, question_id: str | None = None) -> str:
    """Stable activity ids: ``program/<p>``, ``program/<p>/step/<s>``, ``program/<p>/step/<s>/question/<q>``."""
    out = f"program/{program_id}"
    if step_id:
        out += f"/step/{step_id}"
    if question_id:
        out += f"/question/{question_id}"
    return out


def record(
    session: Session,
    *,
    ts: datetime,
    person_id: int,
    verb: str,
    object_type: str,
    object_id: str,
    enrollment_id: int | None = None,
    cohort_id: int | None = None,
    result: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> LearningEvent:
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}")
    event = LearningEvent(
        ts=ts,
        person_id=person_id,
        verb=verb,
        object_type=object_type,
        object_id=object_id,
        enrollment_id=enrollment_id,
        cohort_id=cohort_id,
        result=result,
        context=context,
    )
    session.add(event)
    return event


def record_for(
    session: Session,
    enrollment: Any,
    *,
    ts: datetime,
    verb: str,
    object_type: str,
    object_id: str,
    result: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> LearningEvent:
    """:func:`record` for a fact about one enrolment: actor, registration and cohort come from the enrolment."""
    return record(
        session,
        ts=ts,
        person_id=enrollment.person_id,
        verb=verb,
        object_type=object_type,
        object_id=object_id,
        enrollment_id=enrollment.id,
        cohort_id=enrollment.cohort_id,
        result=result,
        context=context,
    )
