"""Set-wise enrolment: materialise many learners' timelines with a handful of bulk statements.

A learner's timeline (``step_progress`` rows, ``agenda`` rows, one ``attendance`` row per live session and a
``registered`` learning event) depends on the cohort, the program, the instant of enrolment and the learner's time
zone, and on nothing else: working and quiet hours come from the settings, and a pause never shifts a freshly
materialised timeline. So the Python work is done once per *distinct time zone* in the batch (a template), and the
database multiplies the templates by the learners with ``INSERT ... SELECT`` joins over per-connection scratch
tables. Enrolling 100,000 people costs the same few statements as enrolling one; ``Engine.enroll`` is this function
called with one person, so both paths write the same rows and the same events.

Enrolling someone already enrolled is a no-op, also under a race: the enrolment insert skips rows that hit the
``(person_id, cohort_id)`` unique key, and only the rows it actually inserted get a timeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from bot.durations import parse_duration
from bot.errors import PermissionDenied
from bot.journeys.context import Context
from bot.journeys.model import AnyStep, Program, SessionStep
from bot.journeys.people import zone_window
from bot.journeys.timeline import due_after, reminder_offsets
from bot.states import AgendaAction, EnrollmentStatus, StepState, Verb
from bot.storage.events import object_id
from bot.storage.models import (
    AgendaItem,
    Attendance,
    Cohort,
    Enrollment,
    LearningEvent,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.storage.types import to_ms
from bot.timewindow import Window, local_instant, zone

#: Rows per executemany batch of the enrolment insert (RETURNING needs bounded statements).
CHUNK = 5_000


@dataclass
class Template:
    """One time zone's timeline, computed once and copied to every learner of that zone by SQL."""

    group: int
    #: (position, step id, kind, required, state, waiting_on, unlock_at ms, due_at ms)
    steps: list[tuple[int, str, str, bool, str, int, int, int | None]] = field(default_factory=list)
    #: (row position, step id, action, seq, fire_at ms, expires_at ms)
    agenda: list[tuple[int, str, str, int, int | None, int | None]] = field(default_factory=list)


class Enrollee(Protocol):
    """What enrolment needs of a person: a ``Person``, or a light row of ``(id, workspace, tz)`` when a roster of
    100,000 should not become 100,000 ORM objects."""

    @property
    def id(self) -> int: ...

    @property
    def workspace(self) -> str: ...

    @property
    def tz(self) -> str | None: ...


# ---------------------------------------------------------------------- one learner's timeline, as pure values
def nominal_unlock(step: AnyStep, program: Program, cohort: Cohort, enrolled_at: datetime, tz: str) -> datetime:
    """When ``step`` unlocks for someone in ``tz`` enrolled at ``enrolled_at``, before working hours apply."""
    if step.unlock.from_ == "enrollment":
        # Counted from the later of the enrollment and the cohort start: someone enrolled ahead of time must
        # not receive program content before the program begins.
        base = max(enrolled_at.astimezone(zone(tz)).date(), cohort.start_date)
    else:
        base = cohort.start_date
    at: time = step.unlock.at or program.defaults.unlock_at
    return local_instant(base + timedelta(days=step.unlock.day), at, tz)


def step_agenda(
    step: AnyStep,
    reminder_offsets: list[timedelta],
    unlock_at: datetime,
    window: Window,
    now: datetime,
    *,
    blocked: bool = False,
) -> list[tuple[str, int, datetime | None, datetime | None]]:
    """The delivery and its reminders as ``(action, seq, fire_at, expires_at)``; a blocked step's rows wait with
    ``fire_at`` NULL until its prerequisites are done."""
    deliver_at = None if blocked else window.next_open(max(unlock_at, now))
    rows: list[tuple[str, int, datetime | None, datetime | None]] = [(AgendaAction.DELIVER, 0, deliver_at, None)]
    for i, offset in enumerate(reminder_offsets, start=1):
        fire = None if deliver_at is None else window.next_open(deliver_at + offset)
        rows.append((AgendaAction.REMIND, i, fire, None))
    return rows


#: Session reminders at least this long before the start are "the day before" kind: one that falls outside the
#: learner's working window (at night, in quiet hours, at a weekend) moves to their last working hour before it.
#: Shorter ones ("starts in 15 minutes") and the check-in are time-bound and go out when due.
DAY_AHEAD = timedelta(hours=12)


def session_agenda(
    step: SessionStep,
    live: LiveSessionRow,
    default_reminders: Sequence[str],
    now: datetime,
    window: Window | None = None,
) -> list[tuple[str, int, datetime | None, datetime | None]]:
    """A live session's reminders, check-in and close, as ``(action, seq, fire_at, expires_at)``; with the
    learner's ``window``, a day-ahead reminder outside it moves to their last working hour."""
    rows: list[tuple[str, int, datetime | None, datetime | None]] = []
    offsets = (
        step.session_reminders
        if step.session_reminders is not None
        else [parse_duration(d) for d in default_reminders]
    )
    for i, before in enumerate(sorted(offsets, reverse=True), start=1):
        fire = live.start_at - before
        if before >= DAY_AHEAD and window is not None:
            fire = window.last_open_before(fire)
        if fire > now:
            rows.append((AgendaAction.SESSION_REMIND, i, fire, live.start_at))
    rows.append((AgendaAction.CHECKIN, 0, max(live.checkin_opens_at, now), live.checkin_closes_at))
    rows.append((AgendaAction.CLOSE, 0, max(live.end_at, live.checkin_closes_at), None))
    return rows


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def build_template(
    engine: Context,
    group: int,
    tz: str,
    program: Program,
    cohort: Cohort,
    sessions: dict[str, LiveSessionRow],
    now: datetime,
) -> Template:
    """The timeline every learner in ``tz`` gets when enrolled in ``cohort`` at ``now``."""
    window = zone_window(engine.settings, tz)
    template = Template(group)
    # A late joiner: a session that has started is not theirs to attend (no invite, reminders or check-in; out of
    # their attendance rule), and it does not hold back the steps that wait for it.
    started = {s.id for s in program.sessions if sessions[s.id].start_at <= now}
    for position, step in enumerate(program.steps):
        waiting_on = len([p for p in step.unlock.after if p not in started])
        if step.id in started:
            template.steps.append(
                (position, step.id, step.kind, step.required, StepState.NOT_APPLICABLE.value, 0,
                 to_ms(sessions[step.id].start_at), None)
            )
            continue
        nominal = nominal_unlock(step, program, cohort, now, tz)
        if isinstance(step, SessionStep) and "unlock" not in step.model_fields_set:
            # An invite nobody set a time for goes out a week ahead (or now, for a late joiner), so people can
            # plan; a kickoff on day 0 must not be announced on day 0.
            nominal = sessions[step.id].start_at - timedelta(days=7)
        rows: list[tuple[str, int, datetime | None, datetime | None]] = []
        if isinstance(step, SessionStep):
            reminders = engine.settings.nudges.session_reminders
            rows.extend(session_agenda(step, sessions[step.id], reminders, now, window))
        offsets = reminder_offsets(engine, step, program)
        card = step_agenda(step, offsets, nominal, window, now, blocked=waiting_on > 0)
        rows.extend(card)
        # Due from the planned delivery (the sender moves it to the actual one); a blocked step's until released.
        due = sessions[step.id].end_at if isinstance(step, SessionStep) else due_after(step, card[0][2] or nominal, window)
        template.steps.append(
            (position, step.id, step.kind, step.required, StepState.LOCKED.value, waiting_on, to_ms(nominal),
             _ms(due))
        )
        for action, seq, fire, expires in rows:
            template.agenda.append((len(template.agenda), step.id, action, seq, _ms(fire), _ms(expires)))
    return template


# ---------------------------------------------------------------------- scratch tables
_scratch = MetaData()
_BATCH = Table(
    "enrol_batch",
    _scratch,
    Column("enrollment_id", BigInteger, primary_key=True, autoincrement=False),
    Column("grp", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)
_STEPS = Table(
    "enrol_steps",
    _scratch,
    Column("grp", Integer, nullable=False),
    Column("pos", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("required", Boolean, nullable=False),
    Column("state", String(8), nullable=False),
    Column("waiting_on", Integer, nullable=False),
    Column("unlock_at", BigInteger),
    Column("due_at", BigInteger),
    prefixes=["TEMPORARY"],
)
_AGENDA = Table(
    "enrol_agenda",
    _scratch,
    Column("grp", Integer, nullable=False),
    Column("pos", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("fire_at", BigInteger),
    Column("expires_at", BigInteger),
    prefixes=["TEMPORARY"],
)


def _dialect(session: Session) -> str:
    bind = session.get_bind()
    return bind.dialect.name if isinstance(bind, Engine) else bind.engine.dialect.name


def _scratch_tables(session: Session) -> None:
    """Create (once per connection) and empty the scratch tables. TEMPORARY tables are private to the
    connection, so concurrent enrolments never see each other's batches."""
    for table in (_BATCH, _STEPS, _AGENDA):
        session.execute(CreateTable(table, if_not_exists=True))
        session.execute(table.delete())


# ---------------------------------------------------------------------- the set-wise enrolment
def enroll_many(
    engine: Context, session: Session, cohort: Cohort, people: Sequence[Enrollee]
) -> dict[int, int]:
    """Enrol ``people`` in ``cohort`` and materialise their timelines; returns ``{person id: enrolment id}``
    for every person given, including those who were already enrolled (for whom nothing is written).

    Raises:
        PermissionDenied: someone belongs to another workspace (nothing is written then).
    """
    session.flush()  # people created in this unit of work need their ids
    unique: dict[int, Enrollee] = {}
    for person in people:
        unique.setdefault(person.id, person)
    if not unique:
        return {}
    existing = _enrolment_ids(session, cohort, list(unique))
    todo = [p for pid, p in unique.items() if pid not in existing]
    for person in todo:
        if person.workspace != cohort.workspace:
            raise PermissionDenied("That person belongs to another workspace.")
    if not todo:
        return existing
    now = engine.clock.now()
    program = engine.library.program(cohort.program_id)
    created = _insert_enrolments(session, cohort, program.id, todo, to_ms(now))
    if len(created) < len(todo):
        # Someone else enrolled a few of them between our look-up and our insert: theirs stand.
        existing.update(_enrolment_ids(session, cohort, [p.id for p in todo if p.id not in created]))
    if not created:
        return existing
    sessions = {
        s.step_id: s for s in session.scalars(select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort.id))
    }
    _fill_scratch(engine, session, cohort, program, sessions, created, unique, now)
    _materialise(session, cohort, program, bool(sessions), to_ms(now))
    existing.update(created)
    return existing


def _enrolment_ids(session: Session, cohort: Cohort, person_ids: list[int]) -> dict[int, int]:
    """``{person id: enrolment id}`` of those of ``person_ids`` already enrolled in ``cohort``."""
    found: dict[int, int] = {}
    for start in range(0, len(person_ids), CHUNK):
        chunk = person_ids[start : start + CHUNK]
        found.update(
            session.execute(
                select(Enrollment.person_id, Enrollment.id).where(
                    Enrollment.cohort_id == cohort.id, Enrollment.person_id.in_(chunk)
                )
            ).all()
        )
    return found


def _insert_enrolments(
    session: Session, cohort: Cohort, program_id: str, todo: list[Enrollee], t: int
) -> dict[int, int]:
    """Insert the enrolments. ON CONFLICT DO NOTHING keeps a concurrent enrolment of the same person a no-op;
    RETURNING tells which rows this call created, and only those get a timeline."""
    dialect_insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    created: dict[int, int] = {}
    stmt = (
        dialect_insert(Enrollment)
        .on_conflict_do_nothing(index_elements=["person_id", "cohort_id"])
        .returning(Enrollment.person_id, Enrollment.id)
    )
    for start in range(0, len(todo), CHUNK):
        rows = [
            {
                "registration": str(uuid.uuid4()),
                "person_id": p.id,
                "cohort_id": cohort.id,
                "program_id": program_id,
                "enrolled_at": t,
                "status": EnrollmentStatus.ACTIVE,
                "nudges_ignored": 0,
                "auto_paused": False,
                "last_activity_at": t,
            }
            for p in todo[start : start + CHUNK]
        ]
        created.update(session.execute(stmt, rows).all())
    return created


def _fill_scratch(
    engine: Context,
    session: Session,
    cohort: Cohort,
    program: Program,
    sessions: dict[str, LiveSessionRow],
    created: dict[int, int],
    unique: dict[int, Enrollee],
    now: datetime,
) -> None:
    """One timeline template per time zone into the scratch tables, with the new enrolments grouped by zone."""
    groups: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    for person_id, enrollment_id in created.items():
        tz = unique[person_id].tz or cohort.tz or engine.settings.timezone  # as Engine.person_tz
        batch.append({"enrollment_id": enrollment_id, "grp": groups.setdefault(tz, len(groups))})
    templates = [build_template(engine, g, tz, program, cohort, sessions, now) for tz, g in groups.items()]

    _scratch_tables(session)
    session.execute(insert(_BATCH), batch)
    session.execute(
        insert(_STEPS),
        [
            dict(zip(("grp", "pos", "step_id", "kind", "required", "state", "waiting_on", "unlock_at", "due_at"),
                     (tpl.group, *row), strict=True))
            for tpl in templates
            for row in tpl.steps
        ],
    )
    agenda_rows = [
        dict(zip(("grp", "pos", "step_id", "action", "seq", "fire_at", "expires_at"), (tpl.group, *row), strict=True))
        for tpl in templates
        for row in tpl.agenda
    ]
    if agenda_rows:
        session.execute(insert(_AGENDA), agenda_rows)
    if _dialect(session) == "postgresql":
        # Fresh temporary tables have no statistics; without them the joins below become nested loops.
        session.execute(text("ANALYZE enrol_batch"))
        session.execute(text("ANALYZE enrol_steps"))
        session.execute(text("ANALYZE enrol_agenda"))


def _materialise(session: Session, cohort: Cohort, program: Program, has_sessions: bool, t: int) -> None:
    """Copy the scratch templates to every new learner: progress, agenda, attendance rows and the record."""
    b, s, a = _BATCH.c, _STEPS.c, _AGENDA.c
    # step_progress, in learner order then program order (ids follow the program, as reports expect).
    session.execute(
        insert(StepProgress).from_select(
            ["enrollment_id", "step_id", "kind", "required", "state", "waiting_on", "unlock_at", "due_at",
             "attempts"],
            select(b.enrollment_id, s.step_id, s.kind, s.required, s.state, s.waiting_on, s.unlock_at,
                   s.due_at, literal(0))
            .select_from(_BATCH.join(_STEPS, s.grp == b.grp))
            .order_by(b.enrollment_id, s.pos),
        )
    )
    # agenda, joined to the progress rows just written.
    sp = StepProgress.__table__.c
    session.execute(
        insert(AgendaItem).from_select(
            ["progress_id", "enrollment_id", "action", "seq", "fire_at", "expires_at"],
            select(sp.id, b.enrollment_id, a.action, a.seq, a.fire_at, a.expires_at)
            .select_from(
                _BATCH.join(StepProgress, sp.enrollment_id == b.enrollment_id).join(
                    _AGENDA, and_(a.grp == b.grp, a.step_id == sp.step_id)
                )
            )
            .order_by(b.enrollment_id, a.pos),
        )
    )
    # an attendance row per live session, so RSVPs and check-ins are updates, never racing inserts.
    if has_sessions:
        session.execute(
            insert(Attendance).from_select(
                ["session_id", "enrollment_id"],
                select(LiveSessionRow.id, b.enrollment_id)
                .select_from(_BATCH.join(LiveSessionRow, LiveSessionRow.cohort_id == cohort.id))
                .order_by(b.enrollment_id, LiveSessionRow.id),
            )
        )
    # the learning record: one 'registered' statement per new enrolment.
    e = Enrollment.__table__.c
    session.execute(
        insert(LearningEvent).from_select(
            ["ts", "person_id", "verb", "object_type", "object_id", "enrollment_id", "cohort_id", "result",
             "context"],
            # result and context as JSON null, exactly what record() writes for an event without them.
            select(literal(t, BigInteger), e.person_id, literal(Verb.REGISTERED.value), literal("program"),
                   literal(object_id(program.id)), e.id, e.cohort_id, literal(None, JSON), literal(None, JSON))
            .select_from(_BATCH.join(Enrollment.__table__, e.id == b.enrollment_id))
            .order_by(e.id),
        )
    )


def resolve_people(
    session: Session, platform: str, workspace: str, user_ids: Sequence[str], *, now: datetime, create: bool
) -> tuple[list[Enrollee], list[str]]:
    """Find (and with ``create``, create) many people of one workspace in bulk.

    Returns light ``(id, workspace, tz)`` rows in the order given (duplicates collapsed) and the user ids that are
    unknown (always empty with ``create``). New people get their user id as name, like :meth:`Engine.person`
    without a profile; a roster import or their first platform event fills in the rest."""
    wanted = list(dict.fromkeys(user_ids))
    found: dict[str, Any] = {}

    def load(ids: Sequence[str]) -> None:
        for start in range(0, len(ids), CHUNK):
            for row in session.execute(
                select(Person.user_id, Person.id, Person.workspace, Person.tz).where(
                    Person.platform == platform, Person.workspace == workspace,
                    Person.user_id.in_(ids[start : start + CHUNK]),
                )
            ):
                found[row.user_id] = row

    session.flush()
    load(wanted)
    missing = [u for u in wanted if u not in found]
    if missing and not create:
        return [found[u] for u in wanted if u in found], missing
    if missing:
        dialect_insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
        t = to_ms(now)
        for start in range(0, len(missing), CHUNK):
            session.execute(
                # A concurrent import of the same person wins; we read back whichever row stands.
                dialect_insert(Person).on_conflict_do_nothing(index_elements=["platform", "workspace", "user_id"]),
                [
                    {"platform": platform, "workspace": workspace, "user_id": u, "name": u, "roles": "",
                     "tz_locked": False, "opted_out": False, "created_at": t}
                    for u in missing[start : start + CHUNK]
                ],
            )
        load(missing)
    return [found[u] for u in wanted], []
