"""Spaced reinforcement: quiz questions come back later as single-question micro-quizzes, scheduled by FSRS.

:func:`setup` (a feature, see :mod:`bot.registry`) registers the ``reinforce``
renderer and its answer button, and adds the set-wise planner that runs with every tick (it is cheap: one probe
when nothing was answered). FSRS itself is the optional ``fsrs`` package (``blendwise[reports]``), imported only
here, at install time, so the core never needs it. The logic lives in :mod:`bot.reinforcement.cards`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.reinforcement.models import REINFORCEMENT_TABLES

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.registry import Registry


def ensure_tables(runtime: Runtime) -> None:
    """Create the cards (and cursor) tables when the migrations have not; a no-op once they have."""
    from bot.storage.models import Base

    Base.metadata.create_all(runtime.db, tables=REINFORCEMENT_TABLES, checkfirst=True)


#: FSRS scheduling comes from the ``fsrs`` package, in the ``reports`` extra.
EXTRA = "reports"
REQUIRES = ("fsrs",)


def setup(registry: Registry) -> None:
    runtime = registry.runtime
    ensure_tables(runtime)
    from bot.reinforcement.cards import (
        ACTION,
        REINFORCE,
        button_handler,
        plan_reinforcement,
        render_reinforcement,
    )

    registry.add_purpose(REINFORCE.bind(render_reinforcement(runtime.engine)))
    registry.add_button(ACTION, button_handler(runtime.engine))
    registry.add_planner(plan_reinforcement)
