"""Progress: completing steps, status figures, program completion, the roster, and inbound dedupe.

State changes and the learning events that record them are written in the same transaction, so the event log and
the state tables never disagree.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bot.errors import InvalidInput, NotFound, PermissionDenied
from bot.journeys import timeline
from bot.journeys.context import FINAL_STATES, Context, hold, hold_enrollment, step_context, touch
from bot.journeys.model import QuizStep, ReflectionStep
from bot.states import AgendaAction, EnrollmentStatus, StepKind, StepState, Verb
from bot.storage.db import rowcount
from bot.storage.events import object_id, record, record_for
from bot.storage.models import (
    AgendaItem,
    Attendance,
    Cohort,
    CohortPost,
    Enrollment,
    InboundSeen,
    Person,
    StepProgress,
)


def get(session: Session, progress_id: int) -> StepProgress:
    sp = session.get(StepProgress, progress_id)
    if sp is None:
        raise NotFound("step progress", progress_id)
    return sp


# Statements of a learner's press, built once: building and cache-keying them cost more than running them.
#: The cohort comes along: almost every press composes a reply card, which needs it.
_OWNED = (
    select(StepProgress, Enrollment, Cohort)
    .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
    .join(Cohort, Cohort.id == Enrollment.cohort_id)
    .where(StepProgress.id == bindparam("progress_id"))
)
_steps = cast(Any, StepProgress.__table__)
#: Conditional, so that only one transaction ever moves the step to done, even one that skipped the lock. On the
#: table: the ORM would take an entity UPDATE run with parameters for a bulk update by key.
_COMPLETE = (
    update(_steps)
    .where(_steps.c.id == bindparam("progress_id"), _steps.c.state.not_in(FINAL_STATES))
    .values(
        state=StepState.DONE,
        done_at=bindparam("new_done_at", type_=_steps.c.done_at.type),
        opened_at=bindparam("new_opened_at", type_=_steps.c.opened_at.type),
    )
)
_STEPS_OF = select(StepProgress).where(StepProgress.enrollment_id == bindparam("enrollment_id"))
_ATTENDED = (
    select(func.count())
    .select_from(Attendance)
    .where(Attendance.enrollment_id == bindparam("enrollment_id"), Attendance.attended_at.is_not(None))
)


def owned(session: Session, progress_id: int, person: Person) -> StepProgress:
    """The progress row, but only if it belongs to ``person``: a button forwarded to someone else does nothing.
    One statement reads the row, its enrolment and cohort (the press needs them next)."""
    row = session.execute(_OWNED, {"progress_id": progress_id}).first()
    if row is None:
        raise NotFound("step progress", progress_id)
    sp, enrollment, _ = row
    if enrollment.person_id != person.id:
        raise PermissionDenied("That button belongs to someone else's journey.")
    return sp


def seen(ctx: Context, session: Session, key: str | None) -> bool:
    """Record an inbound dedupe key; True if it was already processed (a replay or a double click).

    ``INSERT … ON CONFLICT DO NOTHING``: when one message arrives twice at once (a platform retry under a new
    event id), the second insert waits for the first transaction and then inserts nothing, a clean no-op instead
    of an ``IntegrityError`` at commit.
    """
    if not key:
        return False
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(InboundSeen)
        .values(key=key, seen_at=ctx.clock.now())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(InboundSeen.key)
    ).first()
    return inserted is None


def complete(ctx: Context, session: Session, sp: StepProgress, *, source: str = "learner") -> bool:
    """Mark a step done. Returns False when it was already final (idempotent, also under concurrent clicks)."""
    hold(session, sp)
    if sp.state in FINAL_STATES:
        return False
    now = ctx.clock.now()
    enrollment, program, step = step_context(ctx, session, sp)
    opened_at = sp.opened_at or now
    changed = session.execute(_COMPLETE, {"progress_id": sp.id, "new_done_at": now, "new_opened_at": opened_at})
    if rowcount(changed) == 0:
        session.refresh(sp)
        return False
    for name, value in (("state", StepState.DONE), ("done_at", now), ("opened_at", opened_at)):
        set_committed_value(sp, name, value)
    touch(enrollment, now)
    on_time = sp.due_at is None or now <= sp.due_at
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.COMPLETED,
        object_type="session" if sp.kind == StepKind.SESSION else "step",
        object_id=object_id(program.id, step.id),
        result={"completion": True, "extensions": {"on_time": on_time, "source": source}},
    )
    session.flush()
    timeline.release_dependents(ctx, session, enrollment, program, step.id, now)
    check_program_completion(ctx, session, enrollment)
    return True


def status_counts(ctx: Context, session: Session, enrollment: Enrollment) -> dict[str, Any]:
    """Progress figures for one enrolment (also used by the completion rule and the learner's `progress`)."""
    program = ctx.library.program(enrollment.program_id)
    rows = session.scalars(_STEPS_OF, {"enrollment_id": enrollment.id}).all()
    by_id = {r.step_id: r for r in rows}
    required = [s for s in program.steps if s.required and s.kind != StepKind.SESSION]
    # A cancelled session is ``skipped`` for everyone: it leaves the attendance rule (nobody can attend it).
    # A session that had started before the learner enrolled (``n/a``) leaves it too: they could not attend it.
    out_of_rule = (StepState.SKIPPED, StepState.NOT_APPLICABLE)
    sessions = [s for s in program.steps if s.kind == StepKind.SESSION and by_id[s.id].state not in out_of_rule]
    attended = session.scalar(_ATTENDED, {"enrollment_id": enrollment.id})
    quizzes = [s for s in program.steps if isinstance(s, QuizStep) and s.required]
    return {
        "required_total": len(required),
        "required_done": sum(1 for s in required if by_id[s.id].state == StepState.DONE),
        "sessions_total": len(sessions),
        "sessions_required": sum(1 for s in sessions if s.required),
        "sessions_attended": int(attended or 0),
        "quizzes_total": len(quizzes),
        "quizzes_passed": sum(1 for s in quizzes if by_id[s.id].passed),
        "steps_total": sum(1 for r in rows if r.state != StepState.NOT_APPLICABLE),
        "steps_done": sum(1 for r in rows if r.state == StepState.DONE),
    }


def check_program_completion(ctx: Context, session: Session, enrollment: Enrollment) -> bool:
    if enrollment.status != EnrollmentStatus.ACTIVE:
        return False
    program = ctx.library.program(enrollment.program_id)
    rules = program.completion
    c = status_counts(ctx, session, enrollment)
    needed_sessions = (
        min(rules.min_sessions_attended, c["sessions_total"])
        if rules.min_sessions_attended is not None
        else c["sessions_required"]
    )
    ok = (
        (rules.required_steps == "none" or c["required_done"] >= c["required_total"])
        and (not rules.quizzes_passed or c["quizzes_passed"] >= c["quizzes_total"])
        and c["sessions_attended"] >= needed_sessions
    )
    if not ok:
        return False
    now = ctx.clock.now()
    changed = session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .values(status="completed", completed_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) == 0:
        return False  # another transaction completed the program first
    set_committed_value(enrollment, "status", "completed")
    set_committed_value(enrollment, "completed_at", now)
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.COMPLETED,
        object_type="program",
        object_id=object_id(program.id),
        result={"completion": True},
    )
    # Nothing left to nudge about: cancel the step reminders. Later cards (optional now) and live sessions stay:
    # completing early must not cut a learner off from a session they said yes to.
    session.execute(
        delete(AgendaItem).where(AgendaItem.enrollment_id == enrollment.id, AgendaItem.action == AgendaAction.REMIND)
    )
    return True


def open_step(ctx: Context, sp: StepProgress) -> None:
    """A learner looked at a step (opened it from a reminder, started a quiz)."""
    if sp.state == StepState.LOCKED:
        sp.state = StepState.OPEN
        sp.opened_at = ctx.clock.now()


def thread_reply(
    ctx: Context, session: Session, post: CohortPost, person: Person, message_id: str, text: str
) -> StepProgress | None:
    """A reply in a cohort thread: participation, and completion of the prompt step if it is one."""
    now = ctx.clock.now()
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.cohort_id == post.cohort_id, Enrollment.person_id == person.id)
    )
    if enrollment is None:
        return None
    # Locked before the fact is written: two replies at once complete the prompt once.
    hold_enrollment(session, enrollment.id)
    program = ctx.library.program(enrollment.program_id)
    record(
        session,
        ts=now,
        person_id=person.id,
        verb=Verb.REPLIED,
        object_type="prompt",
        object_id=object_id(program.id, post.step_id) if post.step_id else f"cohort/{post.cohort_id}/post/{post.id}",
        enrollment_id=enrollment.id,
        cohort_id=post.cohort_id,
        result={"response": text[:500]},
        context={"extensions": {"message_id": message_id}},
    )
    touch(enrollment, now)
    if post.step_id is None:
        return None
    sp = session.scalar(
        select(StepProgress).where(StepProgress.enrollment_id == enrollment.id, StepProgress.step_id == post.step_id)
    )
    if sp is not None and sp.state not in FINAL_STATES:
        complete(ctx, session, sp, source="thread")
    return sp


def reflect(ctx: Context, session: Session, sp: StepProgress, text: str) -> None:
    hold(session, sp)
    enrollment, program, step = step_context(ctx, session, sp)
    if not isinstance(step, ReflectionStep):
        raise InvalidInput("That step is not a reflection.")
    words = len(text.split())
    if words < step.min_words:
        raise InvalidInput(f"Please write at least {step.min_words} words (you wrote {words}).")
    if sp.state in FINAL_STATES:
        return
    now = ctx.clock.now()
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.REFLECTED,
        object_type="step",
        object_id=object_id(program.id, step.id),
        result={"response": text[:4000]},
    )
    complete(ctx, session, sp, source="reflection")
