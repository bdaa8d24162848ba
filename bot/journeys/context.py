"""What every concern of the progression engine shares: its collaborators and the few helpers all of them use.

The engine is split by concern (:mod:`~bot.journeys.people`, :mod:`~bot.journeys.timeline`,
:mod:`~bot.journeys.progress`, :mod:`~bot.journeys.quizzes`, :mod:`~bot.journeys.sessions`). Each is a module of
functions taking a :class:`Context`, so a concern can be read, tested and reused on its own, and
:class:`~bot.journeys.engine.Engine` (which *is* a context) stays a thin façade. This module is the bottom layer:
it imports none of the concern modules, so they can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.journeys.library import Library
from bot.journeys.model import AnyStep, Program
from bot.ports import Profile
from bot.states import FINAL_STEP_STATES
from bot.storage.models import Enrollment, LiveSessionRow, Poll, StepProgress

# A step in one of these states never changes again; every state change is conditional on not being here.
FINAL_STATES = FINAL_STEP_STATES

_HELD = "blendwise.held_enrollments"

ProfileLookup = Callable[[str, str, str], Profile | None]


@dataclass(eq=False)
class Context:
    """The engine's collaborators. Stateless apart from them, so one instance serves every thread.

    ``eq=False`` keeps identity equality and hashing: two engines are never "the same" because their parts are.

    Attributes:
        profiles: looks up a platform user's display name, time zone and email (the adapter's ``profile``, e.g. a
            users or members endpoint). Injected by the composition root, so the engine stays platform-neutral.
    """

    library: Library
    settings: Settings
    clock: Clock
    profiles: ProfileLookup | None = None


def step_context(ctx: Context, session: Session, sp: StepProgress) -> tuple[Enrollment, Program, AnyStep]:
    """The enrolment, program and authored step behind one progress row."""
    enrollment = session.get(Enrollment, sp.enrollment_id)
    assert enrollment is not None
    program = ctx.library.program(enrollment.program_id)
    return enrollment, program, program.step(sp.step_id)


def touch(enrollment: Enrollment, now: datetime) -> None:
    """Any learner action resets the ignored-nudge counter and lifts an automatic pause."""
    enrollment.last_activity_at = now
    enrollment.nudges_ignored = 0
    enrollment.auto_paused = False


@lru_cache(maxsize=16)
def _lock_statement(model: type[Enrollment] | type[LiveSessionRow] | type[Poll], dialect: str) -> Any:
    """Built once per (model, dialect): every learner press locks a row, and building the statement cost more than
    running it."""
    table: Any = model.__table__
    if dialect == "sqlite":
        # On the table: the ORM would take an entity UPDATE run with parameters for a bulk update by key.
        return update(table).where(table.c.id == bindparam("row_id")).values(id=table.c.id)
    # FOR NO KEY UPDATE: it serialises the holders, but does not conflict with the key-share locks that inserts
    # referencing this row take (an event or outbox row for the same learner), so no deadlock.
    return select(model.id).where(model.id == bindparam("row_id")).with_for_update(key_share=True)


def lock(session: Session, model: type[Enrollment] | type[LiveSessionRow] | type[Poll], row_id: int) -> None:
    """Hold one row until the transaction ends, so the check-then-set code after this runs one at a time.

    PostgreSQL takes a row lock (``SELECT … FOR UPDATE``): a second transaction waits here until the first
    commits, and its next statements see what the first wrote (READ COMMITTED). SQLite has no row locks, but a
    transaction that has written holds the database's single write lock until it ends, so a no-op write takes it
    (waiting for a concurrent writer) before anything below reads.
    """
    session.execute(_lock_statement(model, session.get_bind().dialect.name), {"row_id": row_id})


_REREAD_ENROLLMENT = (
    select(Enrollment).where(Enrollment.id == bindparam("enrollment_id")).execution_options(populate_existing=True)
)
#: The step and its enrolment re-read in one statement, once the enrolment is locked.
_REREAD_STEP = (
    select(StepProgress, Enrollment)
    .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
    .where(StepProgress.id == bindparam("progress_id"))
    .execution_options(populate_existing=True)
)


def hold(session: Session, sp: StepProgress) -> None:
    """Serialise one learner's state changes: lock their enrolment row, then re-read the step under the lock.

    Every operation that changes a learner's progress calls this first. Two clicks that arrive together (distinct
    dedupe keys, two workers) then run one after the other, and the second sees the first's result, so one click
    is one fact and a prerequisite is counted off once. Within one transaction it runs once per enrolment: a nested
    call (a quiz completing its step) keeps the caller's unflushed changes.
    """
    if _take(session, sp.enrollment_id):
        session.execute(_REREAD_STEP, {"progress_id": sp.id}).all()


def hold_enrollment(session: Session, enrollment_id: int) -> bool:
    """Lock one enrolment row for the rest of the transaction and re-read it. False if this transaction already
    held it (nothing was re-read). Call it before writing anything for the learner."""
    if not _take(session, enrollment_id):
        return False
    session.execute(_REREAD_ENROLLMENT, {"enrollment_id": enrollment_id}).all()
    return True


def _take(session: Session, enrollment_id: int) -> bool:
    """Lock the enrolment row unless this transaction already holds it; True when it took the lock now (the
    caller then re-reads what it needs, since another transaction may have changed it before the lock)."""
    transaction = session.get_transaction()
    held: tuple[object, set[int]] | None = session.info.get(_HELD)
    if held is None or held[0] is not transaction:
        held = (transaction, set())
        session.info[_HELD] = held
    if enrollment_id in held[1]:
        return False
    session.flush()
    lock(session, Enrollment, enrollment_id)
    held[1].add(enrollment_id)
    return True
