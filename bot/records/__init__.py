"""Learning records: xAPI statements and LRS forwarding, spaced reinforcement, and the digest chart.

:func:`install` is called by :mod:`bot.extensions` once the runtime is built. It registers the ``reinforce``
renderer and its button, wraps the ``digest`` renderer to attach a team-progress chart, and adds the periodic
work: reinforcement planning runs with every tick (it is cheap and set-wise), LRS forwarding on its own
interval because it talks to the network.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.records.models import RECORDS_TABLES

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.journeys.engine import Engine
    from bot.storage.models import Delivery

log = logging.getLogger(__name__)

LRS_FORWARD_SECONDS = 60.0


def ensure_tables(runtime: Runtime) -> None:
    """Create this feature's tables if the migrations do not have them yet.

    The tables are declared on the core ``Base``, so the next Alembic revision picks them up; until it exists this
    keeps a fresh database usable. ``checkfirst`` makes it a no-op once the migration has run.
    """
    from bot.storage.models import Base

    Base.metadata.create_all(runtime.db, tables=RECORDS_TABLES, checkfirst=True)


def install(runtime: Runtime) -> None:
    ensure_tables(runtime)
    from bot.records.reinforce import (
        ACTION,
        PURPOSE,
        button_handler,
        plan_reinforcement,
        render_reinforcement,
    )

    runtime.sender.renderers[PURPOSE] = render_reinforcement(runtime.engine)
    runtime.dispatcher.register_button(ACTION, button_handler(runtime.engine))
    previous = runtime.sender.renderers.get("digest")
    if previous is not None:
        runtime.sender.renderers["digest"] = digest_with_chart(runtime.engine, previous)
    planners = getattr(runtime, "planners", None)
    if planners is not None:
        planners.append(plan_reinforcement)
    jobs = getattr(runtime, "jobs", None)
    if jobs is not None and runtime.settings.lrs.endpoint:
        jobs.append(("lrs-forward", LRS_FORWARD_SECONDS, lambda: forward(runtime)))


def forward(runtime: Runtime) -> Any:
    """Forward pending statements to the configured LRS (the scheduler's job; also ``blendwise xapi forward``)."""
    from bot.records.lrs import forward_pending

    return forward_pending(runtime.factory, runtime.library, runtime.settings.lrs, runtime.clock.now())


def digest_with_chart(engine: Engine, render: Any) -> Any:
    """Wrap the digest renderer: same message, plus a PNG of the manager's team progress.

    The chart is drawn from :func:`bot.nudges.digests.team_rows`, the same rows as the text, so it covers exactly
    the manager's own reports (direct, plus indirect ones when ``digest.include_indirect`` is set).
    """

    def wrapped(session: Session, delivery: Delivery) -> Any:
        message = render(session, delivery)
        if message is None or isinstance(message, list):
            return message
        from bot.messages import Attachment
        from bot.nudges.digests import team_rows
        from bot.storage.models import Person

        manager = session.get(Person, delivery.person_id)
        if manager is None:
            return message
        rows = team_rows(session, engine, manager)
        if not rows:
            return message
        try:
            from bot.records.charts import team_progress_png

            png = team_progress_png(rows)
        except Exception:  # a chart is a nicety; the digest text must still go out
            log.exception("could not draw the digest chart for manager %s", manager.id)
            return message
        message.attachments = [
            *message.attachments,
            Attachment(
                filename="team-progress.png", content=png, mimetype="image/png", title="Team progress"
            ),
        ]
        return message

    return wrapped
