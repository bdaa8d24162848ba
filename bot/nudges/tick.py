"""The tick: plan due work set-wise over the database.

One tick is a handful of SQL statements, whatever the number of learners:

1. **Claim** due agenda rows (``fire_at <= :now``) into a scratch table and delete them from the agenda. The
   index on ``fire_at`` makes the idle check an index probe, so an idle tick at 100,000 enrolments costs about a
   millisecond.
2. **Plan** outbox rows from the claimed rows with ``INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING``. Keys are
   derived from the agenda row (``deliver:<progress id>``, ``remind:<progress id>:<seq>``...), so running a tick
   twice, or two ticks racing, never plans a message twice.
3. **Apply** state changes set-wise: sessions with no attendance become
   ``missed`` (with their learning events), the ignored-nudge counters go up, and enrolments that ignored too many
   nudges are paused automatically (with one polite notice).

Nothing here renders or sends: the sender (:mod:`bot.nudges.outbox`) does that, one message at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import cast

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ColumnElement, Executable, Select

from bot.nudges.purposes import (
    AUTOPAUSE,
    CHECKIN,
    COHORT_PROMPT,
    REMIND,
    SESSION_REMIND,
    STEP_CARD,
    planned_columns,
    planned_insert,
)
from bot.states import (
    FINAL_STEP_STATES,
    AgendaAction,
    EnrollmentStatus,
    PurposeName,
    StepKind,
    StepState,
    Verb,
)
from bot.storage.db import rowcount
from bot.storage.models import (
    AgendaItem,
    Attendance,
    Delivery,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.storage.types import to_ms

log = logging.getLogger(__name__)

@dataclass
class TickResult:
    claimed: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    missed: int = 0
    auto_paused: int = 0
    #: Progress rows of sessions this tick found not applicable (late joiners on a timeline planned before that
    #: rule): the caller releases the steps waiting on them (see :func:`bot.journeys.timeline.release_not_applicable`).
    not_applicable: list[int] = field(default_factory=list)

    @property
    def total_planned(self) -> int:
        return sum(self.planned.values())


#: Which agenda action each planning statement needs; statements whose action is not due are skipped.
ACTION_OF = {
    "deliver": AgendaAction.DELIVER,
    PurposeName.COHORT_PROMPT: AgendaAction.DELIVER,
    PurposeName.REMIND: AgendaAction.REMIND,
    PurposeName.SESSION_REMIND: AgendaAction.SESSION_REMIND,
    PurposeName.CHECKIN: AgendaAction.CHECKIN,
}

_REACHABLE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)

#: The tick's instant (epoch ms), its batch size and the auto-pause threshold: every statement below is built once
#: per dialect and run with these bound, because building and cache-keying ~15 statements on every tick cost more
#: CPU than SQLite took to run them.
T = bindparam("t", type_=BigInteger)
BATCH = bindparam("batch", type_=Integer)
AUTO_PAUSE_AFTER = bindparam("auto_pause_after", type_=Integer)


def _claim_table() -> Table:
    """The scratch table of claimed agenda rows: TEMPORARY, so it lives per connection and never needs cleaning
    up across processes."""
    return Table(
        "tick_claim",
        MetaData(),
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("progress_id", BigInteger, nullable=False),
        Column("enrollment_id", BigInteger, nullable=False),
        Column("action", String(16), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("expires_at", BigInteger),
        prefixes=["TEMPORARY"],
    )


@dataclass(frozen=True)
class _Statements:
    """Every statement of a tick, built once per dialect over that dialect's claim table."""

    claim: Table
    create_claim: Executable
    probe: Executable
    clear_claim: Executable
    fill_claim: Executable
    drop_claimed: Executable
    count_actions: Executable
    not_applicable: Executable
    #: (purpose name, INSERT ... SELECT), in planning order.
    plans: tuple[tuple[str, Executable], ...]
    missed_events: Executable
    missed_state: Executable
    count_ignored: Executable
    plan_auto_pause: Executable
    auto_pause: Executable


@lru_cache(maxsize=4)
def _statements_for(dialect: str) -> _Statements:
    claim = _claim_table()
    missed_events, missed_state = _close_missed_sessions(claim)
    count_ignored, plan_auto_pause, auto_pause = _count_ignored_nudges(dialect)
    return _Statements(
        claim=claim,
        create_claim=CreateTable(claim, if_not_exists=True),
        # Idle fast path: one probe of the partial index. Most ticks end here.
        probe=select(AgendaItem.id).where(AgendaItem.fire_at <= T).limit(1),
        clear_claim=claim.delete(),
        fill_claim=claim.insert().from_select(
            ["id", "progress_id", "enrollment_id", "action", "seq", "expires_at"],
            select(
                AgendaItem.id,
                AgendaItem.progress_id,
                AgendaItem.enrollment_id,
                AgendaItem.action,
                AgendaItem.seq,
                AgendaItem.expires_at,
            )
            .where(AgendaItem.fire_at <= T)
            .order_by(AgendaItem.fire_at)
            .limit(BATCH),
        ),
        # Claimed rows leave the agenda: what they caused is recorded in the outbox and the event log. A DELETE
        # touches no index on PostgreSQL (an UPDATE of fired_at rewrote every index entry: 1.8 s per 100,000 rows).
        drop_claimed=delete(AgendaItem)
        .where(AgendaItem.id.in_(select(claim.c.id)))
        .execution_options(synchronize_session=False),
        count_actions=select(claim.c.action, func.count()).group_by(claim.c.action),
        not_applicable=_skip_sessions_started_before_enrolment(claim),
        plans=tuple(
            (name, planned_insert(dialect, stmt))
            for name, stmt in (
                ("deliver", _plan_step_cards(claim)),
                (COHORT_PROMPT.name, _plan_cohort_prompts(claim)),
                (REMIND.name, _plan_reminders(claim)),
                *_plan_session_nudges(claim),
            )
        ),
        missed_events=missed_events,
        missed_state=missed_state,
        count_ignored=count_ignored,
        plan_auto_pause=plan_auto_pause,
        auto_pause=auto_pause,
    )


def _wants(actions: dict[str, int], name: str) -> bool:
    """Whether a claimed agenda row has the action statement ``name`` needs; when none has, the statement would
    find nothing, and the tick skips it (most ticks claim one or two kinds of action)."""
    return name not in ACTION_OF or ACTION_OF[name] in actions


def _base(claim: Table) -> Select[tuple[()]]:
    """The claimed rows joined to their progress, enrolment and person: the frame every nudge statement selects
    from."""
    a, sp, e, p = claim.c, StepProgress, Enrollment, Person
    return (
        select()
        .select_from(claim)
        .join(sp, sp.id == a.progress_id)
        .join(e, e.id == a.enrollment_id)
        .join(p, p.id == e.person_id)
    )


def _active() -> ColumnElement[bool]:
    """Enrolments still running for people who have not opted out."""
    return and_(Enrollment.status == EnrollmentStatus.ACTIVE, not_(Person.opted_out))


def _reachable() -> ColumnElement[bool]:
    """Active or completed enrolments of people who have not opted out. Completing a program ends the nudges
    about its steps, but not its later live sessions (a learner who said yes still gets their reminders and
    check-in) nor its later optional steps, which arrive marked optional."""
    return and_(Enrollment.status.in_(_REACHABLE), not_(Person.opted_out))


#: A tick that planned at least this many deliveries refreshes the outbox's statistics on PostgreSQL.
ANALYZE_AFTER = 5_000


def tick(session: Session, now: datetime, *, auto_pause_after: int = 3, batch: int = 250_000) -> TickResult:
    """Run one planning pass inside ``session``'s transaction (the caller commits)."""
    result = TickResult()
    t = to_ms(now)
    bind = session.get_bind()
    dialect = bind.dialect.name if isinstance(bind, Engine) else bind.engine.dialect.name
    st = _statements_for(dialect)
    at = {"t": t}

    if session.execute(st.probe, at).first() is None:
        return result

    _claim_due(session, st, dialect, t, batch)
    actions = {row[0]: row[1] for row in session.execute(st.count_actions)}
    result.claimed = sum(actions.values())

    # A session that had started when the learner enrolled is not applicable to them; the caller releases the
    # steps waiting on the rows returned.
    result.not_applicable = list(session.execute(st.not_applicable).scalars())
    for name, stmt in st.plans:
        if _wants(actions, name):
            result.planned[name] = rowcount(session.execute(stmt, at)) + result.planned.get(name, 0)
    if AgendaAction.CLOSE in actions:  # otherwise both statements would touch no row
        result.missed = rowcount(session.execute(st.missed_events, at))
        session.execute(st.missed_state)
    # Ignored nudges: every reminder planned now counts; enough of them in a row pauses reminders politely.
    if result.planned.get(REMIND.name):
        pause = {"t": t, "auto_pause_after": auto_pause_after}
        session.execute(st.count_ignored, pause)
        result.planned[AUTOPAUSE.name] = rowcount(session.execute(st.plan_auto_pause, pause)) + result.planned.get(
            AUTOPAUSE.name, 0
        )
        result.auto_paused = rowcount(session.execute(st.auto_pause, pause))
    if dialect == "postgresql" and result.total_planned >= ANALYZE_AFTER:
        # The burst is in the outbox before autovacuum notices it. Until then PostgreSQL plans each sender claim
        # on statistics that hold no pending rows: it reads and sorts every due row per batch of 200 instead of
        # reading the batch from the head of the claim-order index, and draining the burst becomes quadratic.
        # ANALYZE samples this transaction's own new rows.
        session.execute(text("ANALYZE deliveries"))
    if result.total_planned or result.missed:
        log.info(
            "tick planned %s (claimed %d agenda rows, %d missed sessions, %d auto-paused)",
            {k: v for k, v in result.planned.items() if v},
            result.claimed,
            result.missed,
            result.auto_paused,
        )
    return result


def _claim_due(session: Session, st: _Statements, dialect: str, t: int, batch: int) -> None:
    """Move a batch of due agenda rows into the per-connection scratch table and out of the agenda.

    Every planning statement reads only that table, so their cost is proportional to the work due now, not to the
    size of the agenda.
    """
    session.execute(st.create_claim)
    session.execute(st.clear_claim)
    session.execute(st.fill_claim, {"t": t, "batch": batch})
    if dialect == "postgresql":
        # A fresh temporary table has no statistics; without them PostgreSQL plans the joins below as nested
        # loops over an assumed handful of rows, which is ruinous for a 100,000-row burst.
        session.execute(text("ANALYZE tick_claim"))
    session.execute(st.drop_claimed)


def _skip_sessions_started_before_enrolment(claim: Table) -> Executable:
    """A session that had started when the learner enrolled is not applicable to them: no invite, reminder,
    check-in or "missed" from a timeline planned before that rule (enrolment now plans none), set-wise over the
    claimed rows. The statement returns the rows changed, for the caller to release what waits on them."""
    sp, e, ls = StepProgress, Enrollment, LiveSessionRow
    started_before = (
        select(literal(1))
        .select_from(e)
        .join(ls, and_(ls.cohort_id == e.cohort_id, ls.step_id == sp.step_id))
        .where(e.id == sp.enrollment_id, ls.start_at <= e.enrolled_at)
    )
    return (
        update(sp)
        .where(
            sp.id.in_(select(claim.c.progress_id)),
            sp.kind == StepKind.SESSION,
            sp.state.not_in(FINAL_STEP_STATES),
            exists(started_before),
        )
        .values(state=StepState.NOT_APPLICABLE, due_at=None)
        .returning(sp.id)
        .execution_options(synchronize_session=False)
    )


def _plan_step_cards(claim: Table) -> Select[tuple[object, ...]]:
    """Step deliveries: every kind's card (lesson, quiz, session invite, prompt, reflection, poll)."""
    a, sp, e = claim.c, StepProgress, Enrollment
    return (
        _base(claim)
        .add_columns(
            *planned_columns(
                STEP_CARD,
                (a.progress_id,),
                name=sp.kind,
                person_id=e.person_id,
                enrollment_id=e.id,
                progress_id=sp.id,
                cohort_id=e.cohort_id,
                due_at=T,
                expires_at=a.expires_at,
                now=T,
            )
        )
        .where(a.action == AgendaAction.DELIVER, _reachable(), sp.state == StepState.LOCKED)
    )


def _plan_cohort_prompts(claim: Table) -> Select[tuple[object, ...]]:
    """Prompt steps also open one discussion post per cohort; DISTINCT + the key make it once per cohort."""
    a, sp, e = claim.c, StepProgress, Enrollment
    return (
        _base(claim)
        .add_columns(
            *planned_columns(
                COHORT_PROMPT,
                (e.cohort_id, sp.step_id),
                progress_id=func.min(sp.id),
                cohort_id=e.cohort_id,
                due_at=T - 1,
                now=T,
            )
        )
        .where(a.action == AgendaAction.DELIVER, sp.kind == StepKind.PROMPT)
        .group_by(e.cohort_id, sp.step_id)
    )


def _plan_reminders(claim: Table) -> Select[tuple[object, ...]]:
    """Reminders for unlocked, unfinished steps, unless paused, snoozed or opted out."""
    a, sp, e, p = claim.c, StepProgress, Enrollment, Person
    not_paused = and_(or_(p.paused_until.is_(None), p.paused_until <= T), not_(e.auto_paused))
    not_snoozed = or_(sp.snoozed_until.is_(None), sp.snoozed_until <= T)
    return (
        _base(claim)
        .add_columns(
            *planned_columns(
                REMIND,
                (a.progress_id, a.seq),
                person_id=e.person_id,
                enrollment_id=e.id,
                progress_id=sp.id,
                cohort_id=e.cohort_id,
                due_at=T,
                expires_at=a.expires_at,
                now=T,
            )
        )
        .where(a.action == AgendaAction.REMIND, _active(), not_paused, not_snoozed, sp.state == StepState.OPEN)
    )


def _plan_session_nudges(claim: Table) -> list[tuple[str, Select[tuple[object, ...]]]]:
    """Session reminders and check-in prompts: for those who said yes or maybe, or have not answered."""
    a, sp, e, p = claim.c, StepProgress, Enrollment, Person
    ls, att = LiveSessionRow, Attendance
    session_base = (
        _base(claim)
        .join(ls, and_(ls.cohort_id == e.cohort_id, ls.step_id == sp.step_id))
        .join(att, and_(att.session_id == ls.id, att.enrollment_id == e.id))
    )
    # The waitlisted get the reminders (a seat may free up) but no check-in prompt: they hold no seat.
    going = {
        AgendaAction.SESSION_REMIND: or_(att.rsvp.is_(None), att.rsvp != "no"),
        AgendaAction.CHECKIN: or_(att.rsvp.is_(None), att.rsvp.not_in(("no", "wait"))),
    }
    return [
        (
            purpose.name,
            session_base.add_columns(
                *planned_columns(
                    purpose,
                    (a.progress_id, a.seq, ls.sequence),
                    person_id=e.person_id,
                    enrollment_id=e.id,
                    progress_id=sp.id,
                    cohort_id=e.cohort_id,
                    due_at=T,
                    expires_at=a.expires_at,
                    now=T,
                )
            ).where(
                a.action == action,
                _reachable(),
                or_(p.paused_until.is_(None), p.paused_until <= T),
                going[action],
                sp.state.not_in(FINAL_STEP_STATES),
                ls.cancelled_at.is_(None),
                att.attended_at.is_(None),
            ),
        )
        for action, purpose in ((AgendaAction.SESSION_REMIND, SESSION_REMIND), (AgendaAction.CHECKIN, CHECKIN))
    ]


def _close_missed_sessions(claim: Table) -> tuple[Executable, Executable]:
    """Sessions that ended without attendance: record "missed" events, then the state, set-wise."""
    a, sp, e = claim.c, StepProgress, Enrollment
    closing = select(a.progress_id).where(a.action == AgendaAction.CLOSE)
    missed_rows = (
        select(
            T,
            e.person_id,
            literal(Verb.MISSED.value),
            literal("session"),
            literal("program/").concat(e.program_id).concat("/step/").concat(sp.step_id),
            e.id,
            e.cohort_id,
        )
        .select_from(sp)
        .join(e, e.id == sp.enrollment_id)
        .where(sp.id.in_(closing), sp.state.not_in(FINAL_STEP_STATES), e.status.in_(_REACHABLE))
    )
    events = insert(cast(Table, LearningEvent.__table__)).from_select(
        ["ts", "person_id", "verb", "object_type", "object_id", "enrollment_id", "cohort_id"], missed_rows
    ).execution_options(preserve_rowcount=True)
    state = (
        update(StepProgress)
        .where(StepProgress.id.in_(closing), StepProgress.state.not_in(FINAL_STEP_STATES))
        .values(state=StepState.MISSED)
        .execution_options(synchronize_session=False)
    )
    return events, state


def _count_ignored_nudges(dialect: str) -> tuple[Executable, Executable, Executable]:
    """Add this tick's reminders to each enrolment's ignored count, then pause (with one notice) the enrolments
    that reached ``auto_pause_after``; all set-wise."""
    reminded = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.created_at == T, Delivery.purpose == REMIND.name, Delivery.enrollment_id == Enrollment.id)
        .scalar_subquery()
    )
    # Core statements on the table: the ORM would take an entity UPDATE run with parameters for a bulk update.
    enrollments = cast(Table, Enrollment.__table__)
    count = (
        update(enrollments)
        .where(
            exists().where(
                Delivery.created_at == T, Delivery.purpose == REMIND.name, Delivery.enrollment_id == Enrollment.id
            )
        )
        .values(nudges_ignored=Enrollment.nudges_ignored + reminded)
        .execution_options(synchronize_session=False)
    )
    over = and_(
        Enrollment.nudges_ignored >= AUTO_PAUSE_AFTER,
        not_(Enrollment.auto_paused),
        Enrollment.status == EnrollmentStatus.ACTIVE,
    )
    plan = planned_insert(
        dialect,
        select(
            *planned_columns(
                AUTOPAUSE,
                (Enrollment.id, Enrollment.nudges_ignored),
                person_id=Enrollment.person_id,
                enrollment_id=Enrollment.id,
                cohort_id=Enrollment.cohort_id,
                due_at=T + 1,
                now=T,
            )
        ).where(over),
    )
    pause = update(enrollments).where(over).values(auto_paused=True).execution_options(synchronize_session=False)
    return count, plan, pause
