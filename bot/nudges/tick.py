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

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
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
from sqlalchemy.sql import ColumnElement, Select

from bot.nudges.purposes import (
    AUTOPAUSE,
    CHECKIN,
    COHORT_PROMPT,
    REMIND,
    SESSION_REMIND,
    STEP_CARD,
    insert_planned,
    planned_columns,
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

_claim_tables: dict[str, Table] = {}
_REACHABLE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)


def _claim_table(session: Session, dialect: str) -> Table:
    """The scratch table of claimed agenda rows: TEMPORARY, so it lives per connection and never needs cleaning
    up across processes."""
    table = _claim_tables.get(dialect)
    if table is None:
        table = Table(
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
        _claim_tables[dialect] = table
    session.execute(CreateTable(table, if_not_exists=True))
    return table


@dataclass
class _TickPass:
    """What every planning step of one tick shares: the transaction, the tick's instant, the claimed batch and the
    joins over it. Keeping it in one place lets each step be its own function while the SQL stays set-wise."""

    session: Session
    t: int
    claim: Table
    actions: dict[str, int]
    result: TickResult

    def wants(self, name: str) -> bool:
        """Whether a claimed agenda row has the action statement ``name`` needs; when none has, the statement would
        find nothing, and the planners skip even building it (most ticks claim one or two kinds of action)."""
        return name not in ACTION_OF or ACTION_OF[name] in self.actions

    def plan(self, name: str, stmt: Select[tuple[object, ...]]) -> None:
        """Insert the outbox rows ``stmt`` selects, unless no claimed agenda row has the action they need (the
        skipped statement would find nothing, and skipping spares the database the join)."""
        if not self.wants(name):
            return
        self.result.planned[name] = insert_planned(self.session, stmt) + self.result.planned.get(name, 0)

    def base(self) -> Select[tuple[()]]:
        """The claimed rows joined to their progress, enrolment and person: the frame every nudge statement
        selects from."""
        a, sp, e, p = self.claim.c, StepProgress, Enrollment, Person
        return (
            select()
            .select_from(self.claim)
            .join(sp, sp.id == a.progress_id)
            .join(e, e.id == a.enrollment_id)
            .join(p, p.id == e.person_id)
        )

    def active(self) -> ColumnElement[bool]:
        """Enrolments still running for people who have not opted out."""
        return and_(Enrollment.status == EnrollmentStatus.ACTIVE, not_(Person.opted_out))

    def reachable(self) -> ColumnElement[bool]:
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

    # Idle fast path: one probe of the partial index. Most ticks end here.
    due = session.execute(
        select(AgendaItem.id).where(AgendaItem.fire_at <= t).limit(1)
    ).first()
    if due is None:
        return result

    claim = _claim_due(session, dialect, t, batch)
    actions = {
        row[0]: row[1] for row in session.execute(select(claim.c.action, func.count()).group_by(claim.c.action))
    }
    result.claimed = sum(actions.values())

    tp = _TickPass(session=session, t=t, claim=claim, actions=actions, result=result)
    _skip_sessions_started_before_enrolment(tp)
    _plan_step_cards(tp)
    _plan_cohort_prompts(tp)
    _plan_reminders(tp)
    _plan_session_nudges(tp)
    _close_missed_sessions(tp)
    # Ignored nudges: every reminder planned now counts; enough of them in a row pauses reminders politely.
    if result.planned.get(REMIND.name):
        _count_ignored_nudges(tp, auto_pause_after)
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


def _claim_due(session: Session, dialect: str, t: int, batch: int) -> Table:
    """Move a batch of due agenda rows into the per-connection scratch table and out of the agenda.

    Every planning statement reads only that table, so their cost is proportional to the work due now, not to the
    size of the agenda.
    """
    claim = _claim_table(session, dialect)
    session.execute(claim.delete())
    session.execute(
        claim.insert().from_select(
            ["id", "progress_id", "enrollment_id", "action", "seq", "expires_at"],
            select(
                AgendaItem.id,
                AgendaItem.progress_id,
                AgendaItem.enrollment_id,
                AgendaItem.action,
                AgendaItem.seq,
                AgendaItem.expires_at,
            )
            .where(AgendaItem.fire_at <= t)
            .order_by(AgendaItem.fire_at)
            .limit(batch),
        )
    )
    if dialect == "postgresql":
        # A fresh temporary table has no statistics; without them PostgreSQL plans the joins below as nested
        # loops over an assumed handful of rows, which is ruinous for a 100,000-row burst.
        session.execute(text("ANALYZE tick_claim"))
    # Claimed rows leave the agenda: what they caused is recorded in the outbox and the event log. A DELETE
    # touches no index on PostgreSQL (an UPDATE of fired_at rewrote every index entry: 1.8 s per 100,000 rows).
    session.execute(
        delete(AgendaItem)
        .where(AgendaItem.id.in_(select(claim.c.id)))
        .execution_options(synchronize_session=False)
    )
    return claim


def _skip_sessions_started_before_enrolment(tp: _TickPass) -> None:
    """A session that had started when the learner enrolled is not applicable to them: no invite, reminder,
    check-in or "missed" from a timeline planned before that rule (enrolment now plans none), set-wise over the
    claimed rows. The rows changed are returned in the result, for the caller to release what waits on them."""
    sp, e, ls = StepProgress, Enrollment, LiveSessionRow
    started_before = (
        select(literal(1))
        .select_from(e)
        .join(ls, and_(ls.cohort_id == e.cohort_id, ls.step_id == sp.step_id))
        .where(e.id == sp.enrollment_id, ls.start_at <= e.enrolled_at)
    )
    changed = tp.session.execute(
        update(sp)
        .where(
            sp.id.in_(select(tp.claim.c.progress_id)),
            sp.kind == StepKind.SESSION,
            sp.state.not_in(FINAL_STEP_STATES),
            exists(started_before),
        )
        .values(state=StepState.NOT_APPLICABLE, due_at=None)
        .returning(sp.id)
        .execution_options(synchronize_session=False)
    )
    tp.result.not_applicable = list(changed.scalars())


def _plan_step_cards(tp: _TickPass) -> None:
    """Step deliveries: every kind's card (lesson, quiz, session invite, prompt, reflection, poll)."""
    if not tp.wants("deliver"):
        return
    a, sp, e, t = tp.claim.c, StepProgress, Enrollment, tp.t
    tp.plan(
        "deliver",
        tp.base().add_columns(
            *planned_columns(
                STEP_CARD,
                (a.progress_id,),
                name=sp.kind,
                person_id=e.person_id,
                enrollment_id=e.id,
                progress_id=sp.id,
                cohort_id=e.cohort_id,
                due_at=t,
                expires_at=a.expires_at,
                now=t,
            )
        ).where(a.action == AgendaAction.DELIVER, tp.reachable(), sp.state == StepState.LOCKED),
    )


def _plan_cohort_prompts(tp: _TickPass) -> None:
    """Prompt steps also open one discussion post per cohort; DISTINCT + the key make it once per cohort."""
    if not tp.wants(COHORT_PROMPT.name):
        return
    a, sp, e, t = tp.claim.c, StepProgress, Enrollment, tp.t
    tp.plan(
        COHORT_PROMPT.name,
        tp.base().add_columns(
            *planned_columns(
                COHORT_PROMPT,
                (e.cohort_id, sp.step_id),
                progress_id=func.min(sp.id),
                cohort_id=e.cohort_id,
                due_at=t - 1,
                now=t,
            )
        )
        .where(a.action == AgendaAction.DELIVER, sp.kind == StepKind.PROMPT)
        .group_by(e.cohort_id, sp.step_id),
    )


def _plan_reminders(tp: _TickPass) -> None:
    """Reminders for unlocked, unfinished steps, unless paused, snoozed or opted out."""
    if not tp.wants(REMIND.name):
        return
    a, sp, e, p, t = tp.claim.c, StepProgress, Enrollment, Person, tp.t
    not_paused = and_(or_(p.paused_until.is_(None), p.paused_until <= t), not_(e.auto_paused))
    not_snoozed = or_(sp.snoozed_until.is_(None), sp.snoozed_until <= t)
    tp.plan(
        REMIND.name,
        tp.base().add_columns(
            *planned_columns(
                REMIND,
                (a.progress_id, a.seq),
                person_id=e.person_id,
                enrollment_id=e.id,
                progress_id=sp.id,
                cohort_id=e.cohort_id,
                due_at=t,
                expires_at=a.expires_at,
                now=t,
            )
        ).where(a.action == AgendaAction.REMIND, tp.active(), not_paused, not_snoozed, sp.state == StepState.OPEN),
    )


def _plan_session_nudges(tp: _TickPass) -> None:
    """Session reminders and check-in prompts: for those who said yes or maybe, or have not answered."""
    if not (tp.wants(SESSION_REMIND.name) or tp.wants(CHECKIN.name)):
        return
    a, sp, e, p, t = tp.claim.c, StepProgress, Enrollment, Person, tp.t
    ls, att = LiveSessionRow, Attendance
    session_base = tp.base().join(ls, and_(ls.cohort_id == e.cohort_id, ls.step_id == sp.step_id)).join(
        att, and_(att.session_id == ls.id, att.enrollment_id == e.id)
    )
    # The waitlisted get the reminders (a seat may free up) but no check-in prompt: they hold no seat.
    going = {
        AgendaAction.SESSION_REMIND: or_(att.rsvp.is_(None), att.rsvp != "no"),
        AgendaAction.CHECKIN: or_(att.rsvp.is_(None), att.rsvp.not_in(("no", "wait"))),
    }
    for action, purpose in ((AgendaAction.SESSION_REMIND, SESSION_REMIND), (AgendaAction.CHECKIN, CHECKIN)):
        tp.plan(
            purpose.name,
            session_base.add_columns(
                *planned_columns(
                    purpose,
                    (a.progress_id, a.seq, ls.sequence),
                    person_id=e.person_id,
                    enrollment_id=e.id,
                    progress_id=sp.id,
                    cohort_id=e.cohort_id,
                    due_at=t,
                    expires_at=a.expires_at,
                    now=t,
                )
            ).where(
                a.action == action,
                tp.reachable(),
                or_(p.paused_until.is_(None), p.paused_until <= t),
                going[action],
                sp.state.not_in(FINAL_STEP_STATES),
                ls.cancelled_at.is_(None),
                att.attended_at.is_(None),
            ),
        )


def _close_missed_sessions(tp: _TickPass) -> None:
    """Sessions that ended without attendance: record "missed" events, then the state, set-wise."""
    if AgendaAction.CLOSE not in tp.actions:
        return  # nothing closing: both statements would touch no row
    a, sp, e, t = tp.claim.c, StepProgress, Enrollment, tp.t
    closing = select(a.progress_id).where(a.action == AgendaAction.CLOSE)
    missed_rows = (
        select(
            literal(t),
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
    res = tp.session.execute(
        insert(LearningEvent).from_select(
            ["ts", "person_id", "verb", "object_type", "object_id", "enrollment_id", "cohort_id"], missed_rows
        ).execution_options(preserve_rowcount=True)
    )
    tp.result.missed = rowcount(res)
    tp.session.execute(
        update(StepProgress)
        .where(StepProgress.id.in_(closing), StepProgress.state.not_in(FINAL_STEP_STATES))
        .values(state=StepState.MISSED)
        .execution_options(synchronize_session=False)
    )


def _count_ignored_nudges(tp: _TickPass, auto_pause_after: int) -> None:
    """Add this tick's reminders to each enrolment's ignored count, then pause (with one notice) the enrolments
    that reached ``auto_pause_after``; both set-wise."""
    t, session = tp.t, tp.session
    reminded = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.created_at == t, Delivery.purpose == REMIND.name, Delivery.enrollment_id == Enrollment.id)
        .scalar_subquery()
    )
    session.execute(
        update(Enrollment)
        .where(
            exists().where(
                Delivery.created_at == t, Delivery.purpose == REMIND.name, Delivery.enrollment_id == Enrollment.id
            )
        )
        .values(nudges_ignored=Enrollment.nudges_ignored + reminded)
        .execution_options(synchronize_session=False)
    )
    over = and_(
        Enrollment.nudges_ignored >= auto_pause_after,
        not_(Enrollment.auto_paused),
        Enrollment.status == EnrollmentStatus.ACTIVE,
    )
    tp.plan(
        AUTOPAUSE.name,
        select(
            *planned_columns(
                AUTOPAUSE,
                (Enrollment.id, Enrollment.nudges_ignored),
                person_id=Enrollment.person_id,
                enrollment_id=Enrollment.id,
                cohort_id=Enrollment.cohort_id,
                due_at=t + 1,
                now=t,
            )
        ).where(over),
    )
    paused = session.execute(
        update(Enrollment).where(over).values(auto_paused=True).execution_options(synchronize_session=False)
    )
    tp.result.auto_paused = rowcount(paused)
