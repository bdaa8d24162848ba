"""Live sessions: RSVP, check-in, attendance and the automatic ``missed``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from bot import replies
from bot.errors import InvalidInput, NotFound
from bot.journeys import progress
from bot.journeys.context import FINAL_STATES, Context, hold, lock, touch
from bot.states import StepState, Verb
from bot.storage.db import rowcount
from bot.storage.events import object_id, record_for
from bot.storage.models import Attendance, Cohort, Enrollment, LiveSessionRow, StepProgress
from bot.timewindow import zone


def live_session(session: Session, cohort: Cohort, step_id: str) -> LiveSessionRow:
    row = session.scalar(
        select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort.id, LiveSessionRow.step_id == step_id)
    )
    if row is None:
        raise NotFound(f"session in cohort '{cohort.name}'", step_id)
    return row


def attendance(session: Session, live: LiveSessionRow, enrollment: Enrollment) -> Attendance:
    row = session.scalar(
        select(Attendance).where(Attendance.session_id == live.id, Attendance.enrollment_id == enrollment.id)
    )
    if row is None:
        row = Attendance(session_id=live.id, enrollment_id=enrollment.id)
        session.add(row)
        session.flush()
    return row


def session_for_progress(session: Session, sp: StepProgress) -> tuple[Enrollment, LiveSessionRow]:
    enrollment = session.get(Enrollment, sp.enrollment_id)
    assert enrollment is not None
    live = session.scalar(
        select(LiveSessionRow).where(
            LiveSessionRow.cohort_id == enrollment.cohort_id, LiveSessionRow.step_id == sp.step_id
        )
    )
    if live is None:
        raise NotFound("live session", sp.step_id)
    return enrollment, live


def rsvp(ctx: Context, session: Session, sp: StepProgress, answer: str) -> str:
    """Record Going / Maybe / Can't make it. Returns the stored answer ('wait' when the session is full).

    Two RSVPs that arrive together are applied one after the other (the learner's lock), and a "yes" to a session
    with a capacity also locks the session, so two learners cannot both take its last seat.
    """
    if answer not in ("yes", "maybe", "no"):
        raise InvalidInput("RSVP must be yes, maybe or no.")
    hold(session, sp)
    enrollment, live = session_for_progress(session, sp)
    now = ctx.clock.now()
    if now >= live.end_at:
        raise InvalidInput("That session has already finished.")
    row = attendance(session, live, enrollment)
    if row.rsvp == answer:
        return answer
    stored = answer
    if answer == "yes" and live.capacity is not None and row.rsvp != "yes":
        lock(session, LiveSessionRow, live.id)
        going = session.scalar(
            select(func.count())
            .select_from(Attendance)
            .where(Attendance.session_id == live.id, Attendance.rsvp == "yes")
        )
        if (going or 0) >= live.capacity:
            stored = "wait"
    previous = row.rsvp
    row.rsvp = stored
    row.rsvp_at = now
    progress.open_step(ctx, sp)
    touch(enrollment, now)
    program_id = enrollment.program_id
    if stored == "yes":
        record_for(
            session,
            enrollment,
            ts=now,
            verb=Verb.REGISTERED,
            object_type="session",
            object_id=object_id(program_id, sp.step_id),
            result={"response": "yes"},
        )
    elif previous == "yes":
        record_for(
            session,
            enrollment,
            ts=now,
            verb=Verb.UNREGISTERED,
            object_type="session",
            object_id=object_id(program_id, sp.step_id),
            result={"response": stored},
        )
    return stored


def checkin_open(live: LiveSessionRow, now: datetime) -> bool:
    if live.checkin_state == "open":
        return True
    if live.checkin_state == "closed":
        return False
    return live.checkin_opens_at <= now <= live.checkin_closes_at


def check_in(
    ctx: Context,
    session: Session,
    sp: StepProgress,
    *,
    source: str = "checkin",
    minutes: float | None = None,
    extensions: dict[str, Any] | None = None,
) -> bool:
    """Record attendance. Returns False if already recorded (also by a check-in that arrived at the same moment).
    Raises InvalidInput outside the window. ``extensions`` join the event's context (e.g. the imported report)."""
    hold(session, sp)
    enrollment, live = session_for_progress(session, sp)
    now = ctx.clock.now()
    if live.cancelled_at is not None:
        # Whatever the source (a lead, voice or meeting presence still reported for it): it did not take place.
        raise InvalidInput(replies.session_cancelled_no_attendance(live.title))
    if source == "checkin" and not checkin_open(live, now):
        local = live.start_at.astimezone(zone(ctx.settings.timezone))
        if now < live.checkin_opens_at:
            raise InvalidInput(
                f"Check-in for '{live.title}' opens shortly before it starts ({local:%a %d %b, %H:%M %Z})."
            )
        raise InvalidInput(f"Check-in for '{live.title}' has closed. A lead can still mark you present.")
    row = attendance(session, live, enrollment)
    if row.attended_at is not None:
        return False
    if not _take_seat(session, live, row, now, source=source, minutes=minutes):
        session.refresh(row)
        if row.attended_at is not None:
            return False  # recorded meanwhile by another path (a lead, voice presence)
        if row.rsvp == "wait":
            raise InvalidInput(replies.waitlisted_checkin(live.title))
        raise InvalidInput(replies.session_full(live.title))
    for name, value in (("attended_at", now), ("source", source), ("minutes", minutes)):
        set_committed_value(row, name, value)
    record_for(
        session,
        enrollment,
        ts=now,
        verb=Verb.ATTENDED,
        object_type="session",
        object_id=object_id(enrollment.program_id, sp.step_id),
        result={"extensions": {"source": source, "minutes": minutes}},
        context={"extensions": {**(extensions or {}), "session_id": live.id}},
    )
    if sp.state == StepState.MISSED:
        # Late attendance recorded by a lead overrides the automatic "missed".
        sp.state = StepState.OPEN
    progress.complete(ctx, session, sp, source=source)
    return True


def _take_seat(
    session: Session, live: LiveSessionRow, row: Attendance, now: datetime, *, source: str, minutes: float | None
) -> bool:
    """Record attendance with one conditional UPDATE. A self check-in needs a seat: the waitlisted have none, and
    with a capacity someone without a "yes" gets one only while seats remain (attended plus reserved by a "yes"),
    so attendance never exceeds capacity. The session row is locked first, so two learners cannot both take the
    last seat. A lead's mark and voice presence record what happened and are not limited."""
    a = Attendance
    conditions = [a.id == row.id, a.attended_at.is_(None)]
    if source == "checkin":
        conditions.append(or_(a.rsvp.is_(None), a.rsvp != "wait"))
        if live.capacity is not None:
            lock(session, LiveSessionRow, live.id)
            other = aliased(Attendance)
            taken = (
                select(func.count())
                .select_from(other)
                .where(
                    other.session_id == live.id,
                    other.id != row.id,
                    or_(other.attended_at.is_not(None), other.rsvp == "yes"),
                )
                .scalar_subquery()
            )
            conditions.append(or_(a.rsvp == "yes", taken < live.capacity))
    changed = session.execute(
        update(a)
        .where(*conditions)
        .values(attended_at=now, source=source, minutes=minutes)
        .execution_options(synchronize_session=False)
    )
    return rowcount(changed) == 1


def set_checkin(live: LiveSessionRow, state: str) -> None:
    if state not in ("open", "closed", "auto"):
        raise InvalidInput("Use: checkin open|close <session>")
    live.checkin_state = state


def mark_missed(ctx: Context, session: Session, progress_ids: list[int]) -> int:
    """Sessions that ended without attendance become ``missed`` (used by the tick for one batch)."""
    now = ctx.clock.now()
    rows = session.scalars(
        select(StepProgress).where(and_(StepProgress.id.in_(progress_ids), StepProgress.state.not_in(FINAL_STATES)))
    ).all()
    for sp in rows:
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        sp.state = StepState.MISSED
        record_for(
            session,
            enrollment,
            ts=now,
            verb=Verb.MISSED,
            object_type="session",
            object_id=object_id(enrollment.program_id, sp.step_id),
        )
    return len(rows)
