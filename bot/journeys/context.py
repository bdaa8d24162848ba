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

from sqlalchemy import select, update
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


def lock(session: Session, model: type[Enrollment] | type[LiveSessionRow] | type[Poll], row_id: int) -> None:
    """Hold one row until the transaction ends, so the check-then-set code after this runs one at a time.

    PostgreSQL takes a row lock (``SELECT … FOR UPDATE``): a second transaction waits here until the first
    commits, and its next statements see what the first wrote (READ COMMITTED). SQLite has no row locks, but a
    transaction that has written holds the database's single write lock until it ends, so a no-op write takes it
    (waiting for a concurrent writer) before anything below reads.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(model)
            .where(model.id == row_id)
            .values(id=model.id)
            .execution_options(synchronize_session=False)
        )
    else:
        # FOR NO KEY UPDATE: it serialises the holders, but does not conflict with the key-share locks that
        # inserts referencing this row take (an event or outbox row for the same learner), so no deadlock.
        session.execute(select(model.id).where(model.id == row_id).with_for_update(key_share=True))


def hold(session: Session, sp: StepProgress) -> None:
    """Serialise one learner's state changes: lock their enrolment row, then re-read the step under the lock.

    Every operation that changes a learner's progress calls this first. Two clicks that arrive together (distinct
    dedupe keys, two workers) then run one after the other, and the second sees the first's result, so one click
    is one fact and a prerequisite is counted off once. Within one transaction it runs once per enrolment: a nested
    call (a quiz completing its step) keeps the caller's unflushed changes.
    """
    if hold_enrollment(session, sp.enrollment_id):
        session.refresh(sp)


def hold_enrollment(session: Session, enrollment_id: int) -> bool:
    """Lock one enrolment row for the rest of the transaction and re-read it. False if this transaction already
    held it (nothing was re-read). Call it before writing anything for the learner."""
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
    session.execute(
        select(Enrollment).where(Enrollment.id == enrollment_id).execution_options(populate_existing=True)
    ).all()
    return True
