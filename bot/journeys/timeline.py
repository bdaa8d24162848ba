"""Timelines: cohorts, releasing dependants, snooze and pause.

Enrolment (:mod:`bot.journeys.enrolment`) *materialises* each learner's timeline (``step_progress`` + ``agenda``
rows) once, and the tick (:mod:`bot.nudges.tick`) turns due agenda rows into outbox rows set-wise. The only
per-learner Python scheduling work after enrolment happens when a prerequisite completes (:func:`release_dependents`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, aliased

from bot.errors import InvalidInput
from bot.journeys import people
from bot.journeys.context import Context, hold, touch
from bot.journeys.model import AnyStep, Program, SessionStart, SessionStep
from bot.nudges.purposes import REMIND, Purpose, enqueue
from bot.states import AgendaAction, EnrollmentStatus, StepState
from bot.storage.models import (
    AgendaItem,
    Cohort,
    CohortLead,
    Delivery,
    Enrollment,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.timewindow import Window, local_instant, zone


def create_cohort(
    ctx: Context,
    session: Session,
    *,
    name: str,
    program_id: str,
    platform: str,
    workspace: str,
    start: date,
    tz: str | None = None,
    channel: str | None = None,
    leads: Iterable[Person] = (),
    join_urls: Mapping[str, str] | None = None,
) -> Cohort:
    program = ctx.library.program(program_id)
    tz = tz or program.tz
    zone(tz)
    if session.scalar(select(Cohort.id).where(Cohort.workspace == workspace, Cohort.name == name)):
        raise InvalidInput(f"A cohort named '{name}' already exists.")
    cohort = Cohort(
        name=name,
        program_id=program_id,
        platform=platform,
        workspace=workspace,
        start_date=start,
        tz=tz,
        channel=channel,
        created_at=ctx.clock.now(),
    )
    session.add(cohort)
    session.flush()
    for lead in leads:
        session.add(CohortLead(cohort_id=cohort.id, person_id=lead.id))
    for step in program.sessions:
        session.add(live_row(step, cohort, (join_urls or {}).get(step.id)))
    session.flush()
    return cohort


def live_row(step: SessionStep, cohort: Cohort, join_url: str | None = None) -> LiveSessionRow:
    """The live-session row ``step`` gets in ``cohort`` (``content timeline`` builds them without saving);
    ``join_url`` is the cohort's own link, overriding the program's."""
    begin = session_start(step, cohort)
    return LiveSessionRow(
        cohort_id=cohort.id,
        step_id=step.id,
        title=step.title,
        start_at=begin,
        end_at=begin + step.duration,
        checkin_opens_at=begin - step.checkin.opens_before,
        checkin_closes_at=begin + step.checkin.closes_after,
        join_url=join_url or step.join_url,
        capacity=step.capacity,
    )


def session_start(step: SessionStep, cohort: Cohort) -> datetime:
    if isinstance(step.start, SessionStart):
        return local_instant(
            cohort.start_date + timedelta(days=step.start.day), step.start.at, step.start.tz or cohort.tz
        )
    return step.start.astimezone(UTC)


def due_after(step: AnyStep, delivered: datetime, window: Window) -> datetime | None:
    """When ``step`` is due if it reaches the learner at ``delivered``.

    ``due`` runs from the delivery, in working days: the learner's non-working days (``window.weekdays``, in their
    zone) are not counted, so a step unlocked on a Saturday and delivered on Monday keeps its whole time, and a
    ``due: 2d`` delivered on Friday is due on Tuesday, not on Sunday. A session is due when it ends, which its
    live-session row knows, so it has no due here."""
    if isinstance(step, SessionStep) or step.due is None:
        return None
    local = delivered.astimezone(zone(window.tz)).replace(tzinfo=None)
    end = local + step.due
    day = local.date()
    while day < end.date():
        day += timedelta(days=1)
        if day.weekday() not in window.weekdays:
            end += timedelta(days=1)
    if end.date() - local.date() > timedelta(days=3660):  # no working day at all: plain calendar time
        return delivered + step.due
    return local_instant(end.date(), end.time(), window.tz)


def reminder_offsets(ctx: Context, step: AnyStep, program: Program) -> list[timedelta]:
    if not ctx.settings.nudges.reminders or isinstance(step, SessionStep):
        return []
    policy = step.reminders or program.defaults.reminders
    return list(policy.after) if policy.enabled else []


# A completed step's release, built once (every learner press that completes a step runs it). On the tables: the
# ORM would take an entity UPDATE run with parameters for a bulk update by key.
_steps: Any = StepProgress.__table__
_agenda: Any = AgendaItem.__table__
_COUNT_OFF = (
    update(_steps)
    .where(
        _steps.c.enrollment_id == bindparam("of_enrollment"),
        _steps.c.step_id.in_(bindparam("step_ids", expanding=True)),
        _steps.c.waiting_on > 0,
    )
    .values(waiting_on=_steps.c.waiting_on - 1)
    .returning(_steps.c.id, _steps.c.step_id, _steps.c.waiting_on)
)
_RELEASED_IDS: Any = bindparam("ids", expanding=True)
_FIRE_AT = bindparam("new_fire_at", type_=_agenda.c.fire_at.type)
_DELIVER_AT = (
    update(_agenda)
    .where(_agenda.c.progress_id.in_(_RELEASED_IDS), _agenda.c.action == AgendaAction.DELIVER)
    .values(fire_at=_FIRE_AT)
)
_REMIND_AT = (
    update(_agenda)
    .where(
        _agenda.c.progress_id.in_(_RELEASED_IDS),
        _agenda.c.action == AgendaAction.REMIND,
        _agenda.c.seq == bindparam("of_seq"),
    )
    .values(fire_at=_FIRE_AT)
)
_DUE_AT = (
    update(_steps)
    .where(_steps.c.id.in_(_RELEASED_IDS))
    .values(due_at=bindparam("new_due_at", type_=_steps.c.due_at.type))
)
#: The released steps' zone, program, step and unlock time, per installation zone (the last fallback).
_released_rows: dict[str, Any] = {}


def _released_rows_statement(ctx: Context) -> Any:
    stmt = _released_rows.get(ctx.settings.timezone)
    if stmt is None:
        sp, e = StepProgress, Enrollment
        stmt = _released_rows[ctx.settings.timezone] = (
            select(people.person_tz_sql(ctx, Cohort.tz), e.program_id, sp.step_id, sp.unlock_at, sp.id)
            .select_from(sp)
            .join(e, e.id == sp.enrollment_id)
            .join(Person, Person.id == e.person_id)
            .join(Cohort, Cohort.id == e.cohort_id)
            .where(sp.id.in_(_RELEASED_IDS))
        )
    return stmt


def release_dependents(
    ctx: Context, session: Session, enrollment: Enrollment, program: Program, step_id: str, now: datetime
) -> None:
    """A prerequisite completed: count it off every step waiting on it and schedule the ones now free."""
    dependents = [s for s in program.steps if step_id in s.unlock.after]
    if not dependents:
        return
    # Counted off in SQL (``waiting_on - 1``), never computed in Python from a value another transaction may have
    # changed: two prerequisites completing at once must both count, and only the last one releases the step.
    counted = session.execute(
        _COUNT_OFF, {"of_enrollment": enrollment.id, "step_ids": [dep.id for dep in dependents]}
    ).all()
    _schedule_released(ctx, session, [progress_id for progress_id, _, waiting_on in counted if not waiting_on], now)


def release_not_applicable(ctx: Context, session: Session, progress_ids: Sequence[int], now: datetime) -> int:
    """Sessions the tick found not applicable (late joiners on a timeline planned before that rule) hold nothing
    back, as at enrolment: count them off every step waiting on them and schedule the steps now free. Set-wise:
    one UPDATE per session step, then a few per group of released steps sharing a zone, step and unlock time.
    Returns how many steps were released."""
    if not progress_ids:
        return 0
    sp, e, other = StepProgress, Enrollment, aliased(StepProgress)
    pairs = session.execute(
        select(e.program_id, sp.step_id)
        .distinct()
        .select_from(sp)
        .join(e, e.id == sp.enrollment_id)
        .where(sp.id.in_(progress_ids))
    ).all()
    released: list[int] = []
    for program_id, step_id in pairs:
        if program_id not in ctx.library:
            continue
        dependents = [s.id for s in ctx.library.program(program_id).steps if step_id in s.unlock.after]
        if not dependents:
            continue
        learners = (
            select(other.enrollment_id)
            .join(e, e.id == other.enrollment_id)
            .where(other.id.in_(progress_ids), other.step_id == step_id, e.program_id == program_id)
        )
        # Counted off in SQL, as release_dependents does: a prerequisite completing at the same time counts too.
        counted = session.execute(
            update(sp)
            .where(sp.enrollment_id.in_(learners), sp.step_id.in_(dependents), sp.waiting_on > 0)
            .values(waiting_on=sp.waiting_on - 1)
            .returning(sp.id, sp.waiting_on)
            .execution_options(synchronize_session=False)
        ).all()
        released += [progress_id for progress_id, waiting_on in counted if waiting_on == 0]
    _schedule_released(ctx, session, released, now)
    return len(released)


def _schedule_released(ctx: Context, session: Session, progress_ids: list[int], now: datetime) -> None:
    """Give steps whose last prerequisite just went their delivery, reminder and due times: computed once per
    (zone, program, step, unlock time), in that zone's working window, and written to the whole group."""
    if not progress_ids:
        return
    rows = session.execute(_released_rows_statement(ctx), {"ids": progress_ids}).all()
    groups: dict[tuple[str, str, str, datetime | None], list[int]] = {}
    for tz, program_id, step_id, unlock_at, progress_id in rows:
        groups.setdefault((tz, program_id, step_id, unlock_at), []).append(progress_id)
    for (tz, program_id, step_id, unlock_at), ids in groups.items():
        program = ctx.library.program(program_id)
        dep = program.step(step_id)
        window = people.zone_window(ctx.settings, tz)  # as release_dependents: a pause does not move the plan
        deliver_at = window.next_open(max(unlock_at or now, now))
        session.execute(_DELIVER_AT, {"ids": ids, "new_fire_at": deliver_at})
        for seq, offset in enumerate(reminder_offsets(ctx, dep, program), start=1):
            session.execute(_REMIND_AT, {"ids": ids, "of_seq": seq, "new_fire_at": window.next_open(deliver_at + offset)})
        due = due_after(dep, deliver_at, window)
        if due is not None:
            session.execute(_DUE_AT, {"ids": ids, "new_due_at": due})


def snooze(ctx: Context, session: Session, sp: StepProgress, until: datetime) -> datetime:
    """Hold reminders for this step until ``until`` and add one reminder then."""
    enrollment = session.get(Enrollment, sp.enrollment_id)
    person = session.get(Person, enrollment.person_id) if enrollment else None
    assert enrollment is not None and person is not None
    cohort = session.get(Cohort, enrollment.cohort_id)
    hold(session, sp)
    until = people.window(ctx, person, cohort).next_open(until)
    sp.snoozed_until = until
    touch(enrollment, ctx.clock.now())
    # Reminders that would have fired during the snooze are replaced by the single one added below; moving
    # them all to ``until`` would send several identical reminders at once when the snooze ends.
    session.execute(
        delete(AgendaItem).where(
            AgendaItem.progress_id == sp.id,
            AgendaItem.action == AgendaAction.REMIND,
            AgendaItem.fire_at < until,
        )
    )
    # Fired agenda rows are gone, but their reminders' outbox keys (remind:<progress>:<seq>) are not: pick a
    # sequence number neither the agenda nor the outbox has used, or the new reminder would be deduplicated away.
    # The outbox is asked by exact key (its unique index), a window of candidates at a time.
    last = session.scalar(
        select(func.max(AgendaItem.seq)).where(AgendaItem.progress_id == sp.id, AgendaItem.action == AgendaAction.REMIND)
    )
    seq = max(100, (last or 0) + 1)
    while True:
        candidates = {REMIND.key(sp.id, n): n for n in range(seq, seq + 16)}
        used = set(session.scalars(select(Delivery.key).where(Delivery.key.in_(candidates))))
        free = [n for key, n in candidates.items() if key not in used]
        if free:
            seq = free[0]
            break
        seq += 16
    session.add(
        AgendaItem(progress_id=sp.id, enrollment_id=sp.enrollment_id, action=AgendaAction.REMIND, seq=seq, fire_at=until)
    )
    session.flush()
    return until


def snooze_all(ctx: Context, session: Session, person: Person, delta: timedelta) -> datetime:
    until = ctx.clock.now() + delta
    open_steps = session.scalars(
        select(StepProgress)
        .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
        .where(Enrollment.person_id == person.id, StepProgress.state == StepState.OPEN, Enrollment.status == EnrollmentStatus.ACTIVE)
    ).all()
    for sp in open_steps:
        until = snooze(ctx, session, sp, ctx.clock.now() + delta)
    return until


def pause(ctx: Context, session: Session, person: Person, until: datetime | None) -> None:
    """Vacation pause: nothing is sent before ``until`` (None resumes). Planned messages wait, nothing is lost."""
    person.paused_until = until
    if until is None:
        session.execute(
            update(Enrollment).where(Enrollment.person_id == person.id).values(auto_paused=False, nudges_ignored=0)
        )
    # The sender parked messages that came due during the old pause at its end. Make them due now, so that
    # resuming early (or shortening the pause) brings them back; the sender re-checks the window either way.
    # Rows waiting out a retry backoff have attempts > 0 and keep their time.
    now = ctx.clock.now()
    session.execute(
        update(Delivery)
        .where(
            Delivery.person_id == person.id,
            Delivery.state == "pending",
            Delivery.attempts == 0,
            Delivery.due_at > now,
        )
        .values(due_at=now)
    )


def queue_channel_post(
    ctx: Context,
    session: Session,
    cohort: Cohort,
    purpose: Purpose,
    payload: dict[str, Any],
    *,
    key: Sequence[object] | None = None,
) -> int | None:
    """Plan a post in ``cohort``'s channel, keyed by ``key`` (default: the cohort). Returns the new row's id,
    or ``None`` if that key was planned already."""
    if not cohort.channel:
        raise InvalidInput(f"Cohort '{cohort.name}' has no channel yet; an admin can set one.")
    return enqueue(
        session,
        purpose,
        (cohort.id,) if key is None else key,
        now=ctx.clock.now(),
        cohort_id=cohort.id,
        payload=payload,
    )
