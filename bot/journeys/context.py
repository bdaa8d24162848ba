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

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.journeys.library import Library
from bot.journeys.model import AnyStep, Program
from bot.ports import Profile
from bot.storage.models import Enrollment, StepProgress

# A step in one of these states never changes again; every state change below is conditional on not being here.
FINAL_STATES = ("done", "missed", "failed", "skipped")

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
