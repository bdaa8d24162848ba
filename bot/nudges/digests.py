"""Manager digests.

A cron job (hourly) calls :func:`plan_digests`. Each manager gets one digest per ISO week, at the configured day
and time *in the manager's own zone*; the outbox key ``digest:<manager>:<year>-W<week>`` makes the planning
idempotent and lets a missed hour catch up later in the week. A digest only ever covers the manager's own reports
(direct, plus indirect ones when ``digest.include_indirect`` is set), scoped to the manager's workspace.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.config import DAY_NAMES
from bot.journeys.compose import template
from bot.journeys.engine import Engine
from bot.messages import Message
from bot.storage.models import Delivery, Enrollment, Person, StepProgress
from bot.timewindow import local_instant, zone

log = logging.getLogger(__name__)


def plan_digests(session: Session, engine: Engine, now: datetime) -> int:
    """Queue this week's digest for every manager whose local digest time has passed. Returns rows planned."""
    cfg = engine.settings.digest
    if not cfg.enabled:
        return 0
    manager_ids = session.scalars(select(Person.manager_id).where(Person.manager_id.is_not(None)).distinct()).all()
    planned = 0
    for manager in session.scalars(select(Person).where(Person.id.in_(manager_ids))):
        tz = engine.person_tz(manager)
        local = now.astimezone(zone(tz))
        year, week, _ = local.isocalendar()
        monday = local.date() - timedelta(days=local.weekday())
        due = local_instant(monday + timedelta(days=DAY_NAMES.index(cfg.day)), cfg.at, tz)
        if now < due:
            continue
        key = f"digest:{manager.id}:{year}-W{week:02d}"
        if session.scalar(select(Delivery.id).where(Delivery.key == key)) is not None:
            continue
        session.add(
            Delivery(
                key=key,
                purpose="digest",
                priority=6,
                person_id=manager.id,
                due_at=now,
                state="pending",
                payload={"week": f"{year}-W{week:02d}"},
                created_at=now,
            )
        )
        planned += 1
    session.flush()
    return planned


def team_rows(session: Session, engine: Engine, manager: Person) -> list[dict[str, Any]]:
    """One row per (report, enrolment): the digest's table, and the data behind its chart."""
    now = engine.clock.now()
    rows: list[dict[str, Any]] = []
    for person in engine.reports_of(session, manager):
        for e in session.scalars(select(Enrollment).where(Enrollment.person_id == person.id)):
            c = engine.status_counts(session, e)
            program = engine.library.program(e.program_id)
            overdue = session.scalar(
                select(func.count())
                .select_from(StepProgress)
                .where(
                    StepProgress.enrollment_id == e.id,
                    StepProgress.state == "open",
                    StepProgress.due_at.is_not(None),
                    StepProgress.due_at < now,
                )
            )
            missed = session.scalar(
                select(func.count())
                .select_from(StepProgress)
                .where(StepProgress.enrollment_id == e.id, StepProgress.state == "missed")
            )
            quiz = session.execute(
                select(func.avg(StepProgress.score)).where(
                    and_(StepProgress.enrollment_id == e.id, StepProgress.kind == "quiz", StepProgress.score.is_not(None))
                )
            ).scalar()
            status = (
                "done"
                if e.status == "completed"
                else "paused"
                if e.auto_paused or (person.paused_until and person.paused_until > now)
                else "behind"
                if overdue or missed
                else "on track"
            )
            rows.append(
                {
                    "name": person.name,
                    "program": program.title,
                    "done": c["steps_done"],
                    "total": c["steps_total"],
                    "quiz": None if quiz is None else round(100 * float(quiz)),
                    "attended": c["sessions_attended"],
                    "sessions": c["sessions_total"],
                    "missed": int(missed or 0),
                    "overdue": int(overdue or 0),
                    "status": status,
                }
            )
    return rows


def digest_message(session: Session, engine: Engine, manager: Person) -> Message:
    rows = team_rows(session, engine, manager)
    body = template("digest", rows=rows)
    return Message(
        text=f"Your team's learning this week ({len(rows)} enrolments)",
        title="Your team's learning this week",
        body=body,
        context="Only your own reports are included.",
        kind="digest",
    )


def render_digest(engine: Engine) -> Any:
    """The sender's renderer for ``digest`` rows."""

    def render(session: Session, delivery: Delivery) -> Message | None:
        manager = session.get(Person, delivery.person_id)
        if manager is None:
            return None
        return digest_message(session, engine, manager)

    return render


__all__ = ["digest_message", "plan_digests", "render_digest", "team_rows"]
