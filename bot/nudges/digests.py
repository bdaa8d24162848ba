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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import DAY_NAMES
from bot.journeys.chunks import in_parts
from bot.journeys.compose import fmt_local
from bot.journeys.engine import Engine
from bot.messages import Message
from bot.nudges.purposes import COHORT_RECAP, DIGEST, ChannelPost, DueRow, Purpose, enqueue
from bot.reporting import Filters, LearnerRow, build_report
from bot.states import EnrollmentStatus, Verb
from bot.storage.models import Enrollment, Person
from bot.templating import template
from bot.timewindow import local_instant, zone

log = logging.getLogger(__name__)


def _weekly(
    session: Session, engine: Engine, now: datetime, tz: str, purpose: Purpose, owner_id: int, **row: Any
) -> bool:
    """Queue one outbox row per ISO week once the configured day and time have passed in ``tz``.

    The key carries the week (``<purpose>:<owner id>:<year>-W<week>``), which makes planning idempotent and lets an
    hour the cron missed catch up later in the same week. Returns whether a row was queued.
    """
    if now < _weekly_instant(engine, now, tz):
        return False
    year, week, _ = now.astimezone(zone(tz)).isocalendar()
    label = f"{year}-W{week:02d}"
    return enqueue(session, purpose, (owner_id, label), now=now, payload={"week": label}, **row) is not None


def _weekly_instant(engine: Engine, now: datetime, tz: str, weeks_ahead: int = 0) -> datetime:
    """The configured digest day and time of the ISO week ``now`` falls in, in ``tz`` (as a UTC instant)."""
    cfg = engine.settings.digest
    local = now.astimezone(zone(tz))
    monday = local.date() - timedelta(days=local.weekday())
    return local_instant(monday + timedelta(days=DAY_NAMES.index(cfg.day) + 7 * weeks_ahead), cfg.at, tz)


def next_weekly_moment(session: Session, engine: Engine, now: datetime) -> datetime | None:
    """The next instant after ``now`` at which :func:`plan_digests` or :func:`plan_cohort_recaps` has something
    new to plan (a manager's or a cohort's local digest time); ``None`` when digests are off or nobody gets one.

    The hourly cron needs no such thing; a simulation on a virtual clock (the demo) uses it to stop exactly there
    instead of at every hour of the days around it.
    """
    if not engine.settings.digest.enabled:
        return None
    from bot.storage.models import Cohort

    managers = session.scalars(select(Person).where(Person.id.in_(select(Person.manager_id).distinct())))
    zones = {engine.person_tz(m) for m in managers}
    zones |= set(session.scalars(select(Cohort.tz).where(Cohort.channel.is_not(None)).distinct()))
    moments = [
        next(t for t in (_weekly_instant(engine, now, tz, w) for w in (0, 1, 2)) if t > now) for tz in zones
    ]
    return min(moments, default=None)


def plan_digests(session: Session, engine: Engine, now: datetime) -> int:
    """Queue this week's digest for every manager whose local digest time has passed. Returns rows planned."""
    cfg = engine.settings.digest
    if not cfg.enabled:
        return 0
    manager_ids = session.scalars(select(Person.manager_id).where(Person.manager_id.is_not(None)).distinct()).all()
    planned = 0
    for manager in session.scalars(select(Person).where(Person.id.in_(manager_ids))):
        tz = engine.person_tz(manager)
        planned += _weekly(session, engine, now, tz, DIGEST, manager.id, person_id=manager.id)
    session.flush()
    return planned


def team_rows(session: Session, engine: Engine, manager: Person) -> list[LearnerRow]:
    """The manager's reports as the unified report's rows: the digest's lines and the data behind its chart.

    The digest used to count its own figures (catch-up viewing as attendance, a stricter "behind"), so a manager
    and the report could disagree about the same person on the same day. Now both read one computation,
    :func:`bot.reporting.build_report`; only the order is the digest's own (the manager's reports by name).
    """
    memo: dict[int, list[LearnerRow]] | None = session.info.get(TEAM_ROWS_MEMO)
    if memo is not None and manager.id in memo:
        return memo[manager.id]
    reports = engine.reports_of(session, manager)
    rows: list[LearnerRow] = []
    if reports:
        order = {p.id: i for i, p in enumerate(reports)}
        report = build_report(session, engine, Filters(person_ids=list(order)))
        rows = sorted(report.learners, key=lambda r: order[r.person_id])
    if memo is not None:
        memo[manager.id] = rows
    return rows


#: ``session.info`` key of a memo of :func:`team_rows` by manager id, set by a caller that reads the same rows twice
#: with nothing written in between (a digest's text and its chart, :func:`bot.reporting.digest_with_chart`).
TEAM_ROWS_MEMO = "blendwise.team_rows"


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


def digest_parts(message: Message) -> list[Message]:
    """The digest as delivered: a team too big for one message (about 12 reports) goes out in parts cut between
    learners' lines, never inside one, titled ``(2/3)`` like a long lesson (:func:`~bot.journeys.chunks.in_parts`)."""
    return in_parts(message)


def render_digest(engine: Engine) -> Any:
    """The sender's renderer for ``digest`` rows."""

    def render(session: Session, delivery: DueRow) -> list[Message] | None:
        manager = session.get(Person, delivery.person_id)
        if manager is None:
            return None
        return digest_parts(digest_message(session, engine, manager))

    return render


__all__ = [
    "cohort_recap_message",
    "digest_message",
    "digest_parts",
    "digest_purposes",
    "next_weekly_moment",
    "plan_cohort_recaps",
    "plan_digests",
    "render_cohort_recap",
    "render_digest",
    "team_rows",
]


# ---------------------------------------------------------------------- weekly cohort recaps
def plan_cohort_recaps(session: Session, engine: Engine, now: datetime) -> int:
    """Queue one recap per cohort per ISO week, at the digest day and time in the cohort's zone.

    Only cohorts with a channel and someone still active get one. The first recap becomes the cohort's single
    "Weekly recaps" post; later ones are replies in its thread, so the channel itself stays quiet.
    """
    cfg = engine.settings.digest
    if not cfg.enabled:
        return 0
    from bot.storage.models import Cohort

    active = select(Enrollment.cohort_id).where(Enrollment.status == EnrollmentStatus.ACTIVE).distinct()
    planned = 0
    for cohort in session.scalars(select(Cohort).where(Cohort.channel.is_not(None), Cohort.id.in_(active))):
        if now.astimezone(zone(cohort.tz)).date() < cohort.start_date + timedelta(days=6):
            continue  # nothing to recap in the first days
        planned += _weekly(session, engine, now, cohort.tz, COHORT_RECAP, cohort.id, cohort_id=cohort.id)
    session.flush()
    return planned


def cohort_recap_message(session: Session, engine: Engine, cohort_id: int) -> Message | None:
    """This week in the cohort: completion, live attendance, participation and what comes next. Aggregates only:
    a recap in a shared channel names nobody."""
    from bot.storage.models import Cohort, LearningEvent, LiveSessionRow

    cohort = session.get(Cohort, cohort_id)
    if cohort is None:
        return None
    now = engine.clock.now()
    report = build_report(session, engine, Filters(cohort=cohort.name, workspace=cohort.workspace))
    if not report.cohorts:
        return None
    summary = report.cohorts[0]
    week_ago = now - timedelta(days=7)
    replies = session.scalar(
        select(func.count())
        .select_from(LearningEvent)
        .where(LearningEvent.cohort_id == cohort.id, LearningEvent.verb == Verb.REPLIED, LearningEvent.ts >= week_ago)
    )
    finished = session.scalar(
        select(func.count())
        .select_from(LearningEvent)
        .where(
            LearningEvent.cohort_id == cohort.id,
            LearningEvent.verb == Verb.COMPLETED,
            LearningEvent.object_type.in_(("step", "session")),
            LearningEvent.ts >= week_ago,
        )
    )
    recent = [
        s for s in summary.sessions if week_ago.isoformat(timespec="seconds") <= s["start"] <= now.isoformat()
    ]
    upcoming = session.scalars(
        select(LiveSessionRow)
        .where(LiveSessionRow.cohort_id == cohort.id, LiveSessionRow.start_at > now)
        .order_by(LiveSessionRow.start_at)
        .limit(2)
    ).all()
    body = template(
        "cohort_recap",
        cohort=cohort.name,
        learners=summary.learners,
        completed=summary.completed,
        completion=round(summary.completion_rate),
        finished=int(finished or 0),
        replies=int(replies or 0),
        recent=recent,
        upcoming=[(s.title, fmt_local(s.start_at, cohort.tz)) for s in upcoming],
    )
    return Message(
        text=f"Week in review: {cohort.name}",
        title=f"Week in review: {cohort.name}",
        body=body,
        context="Weekly recaps for this cohort live in this thread.",
        kind="recap",
    )


def render_cohort_recap(engine: Engine) -> Any:
    """The sender's renderer for ``cohort_recap`` rows.

    The first recap becomes the cohort's one "Weekly recaps" post; every later recap is a reply in its thread, so
    the channel itself stays quiet.
    """
    from bot.storage.models import CohortPost

    def render(session: Session, delivery: DueRow) -> ChannelPost | None:
        if delivery.cohort_id is None:
            return None
        message = cohort_recap_message(session, engine, delivery.cohort_id)
        if message is None:
            return None
        parent = session.scalar(
            select(CohortPost)
            .where(CohortPost.cohort_id == delivery.cohort_id, CohortPost.kind == "recaps")
            .order_by(CohortPost.id)
        )
        if parent is None:
            message.opens_thread = True
            return ChannelPost(message, kind="recaps")
        return ChannelPost(message, kind="recap", thread=parent.ref)

    return render


def digest_purposes(engine: Engine) -> list[Purpose]:
    """The manager digest and the weekly cohort recap, with their renderers, for the sender's registry."""
    return [DIGEST.bind(render_digest(engine)), COHORT_RECAP.bind(render_cohort_recap(engine))]
