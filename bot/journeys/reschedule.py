"""Moving and cancelling a cohort's live session, set-wise over everyone enrolled.

A move shifts the session's start, end and check-in window, raises its revision (the calendar ``SEQUENCE``) and
re-plans the learners' timeline with a handful of statements whatever the cohort's size: the reminder, check-in
and close rows of the agenda are replaced, an invite not sent yet is shifted with the session, pending nudges
planned for the old time are skipped (and the new ones get new outbox keys, which carry the revision), and every
learner who already holds the invite gets a ``session_change`` row: the invite edited in place and a new
calendar file. RSVPs and attendance rows stay as they are.

A cancellation does the same planning for a session that no longer happens: its agenda rows go, pending nudges
are skipped, the step becomes ``skipped`` for everyone (so it leaves the completion rules: see
:func:`bot.journeys.progress.status_counts`), steps waiting on it are released, and completion is re-checked.

Each learner's log gets one ``rescheduled`` or ``cancelled`` event, so reports and the LRS see the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, delete, insert, literal, not_, select, update
from sqlalchemy.orm import Session

from bot.errors import InvalidInput
from bot.journeys import progress, timeline
from bot.journeys.context import FINAL_STATES, Context, lock
from bot.journeys.enrolment import session_agenda
from bot.journeys.model import SessionStep
from bot.journeys.people import person_tz_sql, zone_window
from bot.nudges.purposes import CHECKIN, SESSION_CHANGE, SESSION_REMIND, insert_planned, planned_columns
from bot.states import AgendaAction, DeliveryState, EnrollmentStatus, StepState, Verb
from bot.storage.db import rowcount
from bot.storage.events import object_id
from bot.storage.models import (
    AgendaItem,
    Cohort,
    Delivery,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.storage.types import to_ms

#: The agenda rows that belong to the session's own time (the invite's delivery follows its own unlock rule).
SESSION_ACTIONS = (AgendaAction.SESSION_REMIND, AgendaAction.CHECKIN, AgendaAction.CLOSE)
#: How far ahead an invite with no authored unlock time goes out (as at enrolment).
INVITE_AHEAD = timedelta(days=7)


@dataclass(frozen=True)
class Change:
    """What a move or cancellation did: the session's new revision, how many learners' invites are being
    updated, and how many pending nudges for the old plan were dropped."""

    sequence: int
    invites_updated: int
    nudges_dropped: int
    previous_start: datetime


def _progress_ids(live: LiveSessionRow) -> Select[Any]:
    """Every enrolled learner's progress row of the session's step."""
    return (
        select(StepProgress.id)
        .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
        .where(Enrollment.cohort_id == live.cohort_id, StepProgress.step_id == live.step_id)
    )


def _step(ctx: Context, session: Session, live: LiveSessionRow) -> SessionStep:
    cohort = session.get(Cohort, live.cohort_id)
    assert cohort is not None
    step = ctx.library.step(cohort.program_id, live.step_id)
    assert isinstance(step, SessionStep)
    return step


def _check_changeable(live: LiveSessionRow, now: datetime) -> None:
    if live.cancelled_at is not None:
        raise InvalidInput(f"'{live.title}' was cancelled; it cannot be moved or cancelled again.")
    if now >= live.end_at:
        raise InvalidInput(f"'{live.title}' has already taken place.")


def move(ctx: Context, session: Session, live: LiveSessionRow, start: datetime) -> Change:
    """Move ``live`` to ``start`` (aware), keeping its length and check-in window. Raises :class:`InvalidInput`
    for a cancelled or finished session, a start in the past, or the time it already has."""
    lock(session, LiveSessionRow, live.id)
    session.refresh(live)
    now = ctx.clock.now()
    _check_changeable(live, now)
    if start <= now:
        raise InvalidInput(f"The new time ({start:%Y-%m-%d %H:%M %Z}) has already passed.")
    if start == live.start_at:
        raise InvalidInput(f"'{live.title}' already starts at that time.")
    previous = live.start_at
    delta = start - previous
    live.start_at, live.end_at = live.start_at + delta, live.end_at + delta
    live.checkin_opens_at, live.checkin_closes_at = live.checkin_opens_at + delta, live.checkin_closes_at + delta
    live.checkin_state = "auto"
    live.sequence += 1
    session.flush()
    step = _step(ctx, session, live)
    ids = _progress_ids(live)
    _replan_session_rows(ctx, session, live, step, ids, now)
    if "unlock" not in step.model_fields_set:
        _shift_invite(session, ids, live, delta, now)
    session.execute(
        update(StepProgress)
        .where(StepProgress.id.in_(ids))
        .values(due_at=live.end_at)
        .execution_options(synchronize_session=False)
    )
    dropped = _drop_pending(session, ids, (SESSION_REMIND.name, CHECKIN.name, SESSION_CHANGE.name))
    updated = _plan_change(session, live, ids, now)
    _record(session, live, Verb.RESCHEDULED, now, {"from": previous.isoformat(), "to": start.isoformat()})
    return Change(live.sequence, updated, dropped, previous)


def cancel(ctx: Context, session: Session, live: LiveSessionRow) -> Change:
    """Cancel ``live``: nothing more is sent for it but the cancellation, and it leaves the completion rules."""
    lock(session, LiveSessionRow, live.id)
    session.refresh(live)
    now = ctx.clock.now()
    _check_changeable(live, now)
    live.cancelled_at = now
    live.checkin_state = "closed"
    live.sequence += 1
    session.flush()
    ids = _progress_ids(live)
    session.execute(
        delete(AgendaItem).where(AgendaItem.progress_id.in_(ids)).execution_options(synchronize_session=False)
    )
    # Every pending row about the step goes: an unsent invite, its reminders, session nudges, an earlier change.
    dropped = _drop_pending(session, ids, None)
    updated = _plan_change(session, live, ids, now)
    session.execute(
        update(StepProgress)
        .where(StepProgress.id.in_(ids), StepProgress.state.not_in(FINAL_STATES))
        .values(state=StepState.SKIPPED)
        .execution_options(synchronize_session=False)
    )
    _record(session, live, Verb.CANCELLED, now, {"start": live.start_at.isoformat()})
    _release(ctx, session, live, now)
    return Change(live.sequence, updated, dropped, live.start_at)


def _replan_session_rows(
    ctx: Context, session: Session, live: LiveSessionRow, step: SessionStep, ids: Select[Any], now: datetime
) -> None:
    """Replace the reminder, check-in and close rows of every open learner: one DELETE, then per time zone of the
    learners one INSERT per row kind, each zone's day-ahead reminders kept out of its night as at enrolment
    (:func:`bot.journeys.enrolment.session_agenda` with the zone's window)."""
    session.execute(
        delete(AgendaItem)
        .where(AgendaItem.progress_id.in_(ids), AgendaItem.action.in_(SESSION_ACTIONS))
        .execution_options(synchronize_session=False)
    )
    sp, e, p = StepProgress, Enrollment, Person
    cohort = session.get(Cohort, live.cohort_id)
    assert cohort is not None
    zone = person_tz_sql(ctx, cohort.tz)
    planned = (
        select(sp.id)
        .join(e, e.id == sp.enrollment_id)
        .join(p, p.id == e.person_id)
        .where(
            sp.id.in_(ids),
            sp.state.not_in(FINAL_STATES),
            # Completed learners keep their later sessions (see bot.nudges.tick), so a move reaches them too.
            e.status.in_((EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)),
        )
    )
    zones = session.scalars(planned.with_only_columns(zone).distinct()).all()
    reminders = ctx.settings.nudges.session_reminders
    for tz in zones:
        agenda = session_agenda(step, live, reminders, now, zone_window(ctx.settings, tz))
        for action, seq, fire, expires in agenda:
            rows = planned.where(zone == tz).with_only_columns(
                sp.id,
                sp.enrollment_id,
                literal(str(action)),
                literal(seq),
                literal(to_ms(fire) if fire else None),
                literal(to_ms(expires) if expires else None),
            )
            session.execute(
                insert(AgendaItem).from_select(
                    ["progress_id", "enrollment_id", "action", "seq", "fire_at", "expires_at"], rows
                )
            )


def _shift_invite(session: Session, ids: Select[Any], live: LiveSessionRow, delta: timedelta, now: datetime) -> None:
    """An invite timed by the session (a week before it, see :func:`bot.journeys.enrolment.build_template`)
    follows it: due a week before the new start, or now if that has passed. The sender still waits for each
    learner's working window, as for any step card. Its reminders keep their distance from it."""
    t = to_ms(now)
    due = max(to_ms(live.start_at - INVITE_AHEAD), t)
    shifted = AgendaItem.fire_at + int(delta.total_seconds() * 1000)
    pending = (AgendaItem.progress_id.in_(ids), AgendaItem.fire_at.is_not(None))
    session.execute(
        update(AgendaItem)
        .where(*pending, AgendaItem.action == AgendaAction.DELIVER)
        .values(fire_at=due)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(AgendaItem)
        .where(*pending, AgendaItem.action == AgendaAction.REMIND)
        .values(fire_at=case((shifted < t, t), else_=shifted))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(StepProgress)
        .where(StepProgress.id.in_(ids), StepProgress.state == StepState.LOCKED)
        .values(unlock_at=live.start_at - INVITE_AHEAD)
        .execution_options(synchronize_session=False)
    )


def _drop_pending(session: Session, ids: Select[Any], purposes: tuple[str, ...] | None) -> int:
    """Skip the outbox rows still pending for the old plan (conditional: a row being sent is left to finish)."""
    where = [Delivery.progress_id.in_(ids), Delivery.state == DeliveryState.PENDING]
    if purposes is not None:
        where.append(Delivery.purpose.in_(purposes))
    res = session.execute(
        update(Delivery)
        .where(*where)
        .values(state=DeliveryState.SKIPPED, last_error="superseded by a change to the session")
        .execution_options(synchronize_session=False)
    )
    return rowcount(res)


def _plan_change(session: Session, live: LiveSessionRow, ids: Select[Any], now: datetime) -> int:
    """A ``session_change`` row for every active learner who already holds the invite (an unsent invite will
    simply show the new revision)."""
    sp, e, p, t = StepProgress, Enrollment, Person, to_ms(now)
    stmt = (
        select(
            *planned_columns(
                SESSION_CHANGE,
                (sp.id, literal(live.sequence)),
                person_id=e.person_id,
                enrollment_id=e.id,
                progress_id=sp.id,
                cohort_id=e.cohort_id,
                due_at=t,
                now=t,
            )
        )
        .select_from(sp)
        .join(e, e.id == sp.enrollment_id)
        .join(p, p.id == e.person_id)
        .where(
            sp.id.in_(ids),
            sp.message_ref.is_not(None),
            e.status == EnrollmentStatus.ACTIVE,
            not_(p.opted_out),
        )
    )
    return insert_planned(session, stmt)


def _record(session: Session, live: LiveSessionRow, verb: Verb, now: datetime, extensions: dict[str, str]) -> None:
    """One event per enrolled learner (active or not: the session changed for everyone on its roster)."""
    rows = session.execute(
        select(Enrollment.id, Enrollment.person_id, Enrollment.program_id).where(
            Enrollment.cohort_id == live.cohort_id
        )
    ).all()
    if not rows:
        return
    session.execute(
        insert(LearningEvent),
        [
            {
                "ts": now,
                "person_id": person_id,
                "verb": verb.value,
                "object_type": "session",
                "object_id": object_id(program_id, live.step_id),
                "enrollment_id": enrollment_id,
                "cohort_id": live.cohort_id,
                "result": {"extensions": {**extensions, "sequence": live.sequence}},
                "context": {"extensions": {"session_id": live.id}},
            }
            for enrollment_id, person_id, program_id in rows
        ],
    )


def _release(ctx: Context, session: Session, live: LiveSessionRow, now: datetime) -> None:
    """A cancelled session no longer holds anyone back: steps waiting on it are released, and learners who had
    done everything else complete the program. Per enrolment, through the same code as a completed step; a
    cancellation is a rare, operator-driven change, not a hot path."""
    enrollments = session.scalars(
        select(Enrollment).where(
            and_(Enrollment.cohort_id == live.cohort_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        )
    ).all()
    for enrollment in enrollments:
        program = ctx.library.program(enrollment.program_id)
        timeline.release_dependents(ctx, session, enrollment, program, live.step_id, now)
        progress.check_program_completion(ctx, session, enrollment)
