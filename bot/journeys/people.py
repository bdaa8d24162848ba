"""People, roles, reporting lines and each person's sending window."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, time
from functools import lru_cache

from sqlalchemy import ColumnElement, SQLColumnExpression, bindparam, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import DAY_NAMES, Settings
from bot.errors import BlendwiseError, NotFound, PermissionDenied
from bot.journeys.context import Context
from bot.storage.models import Cohort, CohortLead, Person
from bot.timewindow import Window, zone

log = logging.getLogger(__name__)


#: Built once: every inbound event looks its person up.
_PERSON = select(Person).where(
    Person.platform == bindparam("platform"),
    Person.workspace == bindparam("workspace"),
    Person.user_id == bindparam("user_id"),
)


def person(
    ctx: Context,
    session: Session,
    platform: str,
    workspace: str,
    user_id: str,
    *,
    name: str | None = None,
    tz: str | None = None,
    email: str | None = None,
) -> Person:
    """Find or create a person. Names and zones given here fill gaps; they never overwrite roster values."""
    found_person = session.scalar(_PERSON, {"platform": platform, "workspace": workspace, "user_id": user_id})
    if found_person is not None:
        if name and found_person.name in ("", found_person.user_id):
            found_person.name = name
        if tz and not found_person.tz_locked and found_person.tz != tz:
            found_person.tz = tz
        if email and not found_person.email:
            found_person.email = email
        return found_person
    if ctx.profiles is not None and (name is None or tz is None):
        # A new person: ask the platform once for their name and zone, so the very first schedule lands in
        # their working hours. A roster import can still override both later (and locks the zone).
        try:
            found = ctx.profiles(platform, workspace, user_id)
        except BlendwiseError as exc:
            log.warning("profile lookup for %s:%s failed: %s", platform, user_id, exc)
            found = None
        if found is not None:
            name = name or found.name or None
            tz = tz or found.tz
            email = email or found.email
    if tz is not None:
        try:
            zone(tz)
        except Exception:
            tz = None  # a platform zone we cannot use falls back to the cohort's or the default
    new = Person(
        platform=platform,
        workspace=workspace,
        user_id=user_id,
        name=name or user_id,
        tz=tz,
        email=email,
        roles="",
        created_at=ctx.clock.now(),
    )
    # Two first events from a new person can arrive at once (two web workers): the unique key decides, inside a
    # savepoint so the loser's transaction survives, and the loser reads the winner's row.
    try:
        with session.begin_nested():
            session.add(new)
            session.flush()
    except IntegrityError:
        winner = session.scalar(
            select(Person).where(Person.platform == platform, Person.workspace == workspace, Person.user_id == user_id)
        )
        if winner is None:
            raise
        return winner
    return new


def is_admin(ctx: Context, who: Person, roles: Iterable[str] = ()) -> bool:
    """``roles`` are the core roles the actor's adapter mapped from platform roles (``Actor.roles``)."""
    if f"{who.platform}:{who.user_id}" in ctx.settings.admins or "admin" in who.role_set:
        return True
    return "admin" in roles


def is_lead(
    ctx: Context, session: Session, who: Person, cohort: Cohort, roles: Iterable[str] = ()
) -> bool:
    if is_admin(ctx, who, roles):
        return True
    if "lead" in roles:  # a platform-wide lead role (mapped by the adapter) leads every cohort of its workspace
        return who.workspace == cohort.workspace
    return (
        session.get(CohortLead, {"cohort_id": cohort.id, "person_id": who.id}) is not None
        and who.workspace == cohort.workspace
    )


def require_lead(
    ctx: Context, session: Session, who: Person, cohort: Cohort, roles: Iterable[str] = ()
) -> None:
    if not is_lead(ctx, session, who, cohort, roles):
        raise PermissionDenied(f"Only a lead of cohort '{cohort.name}' can do that.")


def require_admin(ctx: Context, who: Person, roles: Iterable[str] = ()) -> None:
    if not is_admin(ctx, who, roles):
        raise PermissionDenied("Only a Blendwise admin can do that.")


def reports_of(ctx: Context, session: Session, manager: Person, *, indirect: bool | None = None) -> list[Person]:
    """A manager's reports: direct ones, plus indirect ones when ``digest.include_indirect`` is set."""
    indirect = ctx.settings.digest.include_indirect if indirect is None else indirect
    found: dict[int, Person] = {}
    frontier = [manager.id]
    while frontier:
        rows = session.scalars(select(Person).where(Person.manager_id.in_(frontier))).all()
        frontier = []
        for p in rows:
            if p.id not in found and p.id != manager.id and p.workspace == manager.workspace:
                found[p.id] = p
                frontier.append(p.id)
        if not indirect:
            break
    return sorted(found.values(), key=lambda p: p.name.lower())


def person_tz(ctx: Context, who: Person, cohort: Cohort | None = None) -> str:
    return who.tz or (cohort.tz if cohort else None) or ctx.settings.timezone


def person_tz_sql(ctx: Context, cohort_tz: SQLColumnExpression[str] | str | None) -> ColumnElement[str]:
    """:func:`person_tz` in SQL, for set-wise planning grouped by zone: the person's zone, else ``cohort_tz`` (a
    column or a value), else the installation's (an empty zone counts as none, as in Python)."""
    cohort_zone = literal(cohort_tz or "") if cohort_tz is None or isinstance(cohort_tz, str) else cohort_tz
    return func.coalesce(func.nullif(Person.tz, ""), func.nullif(cohort_zone, ""), literal(ctx.settings.timezone))


def window(ctx: Context, who: Person, cohort: Cohort | None = None, *, respect_pause: bool = True) -> Window:
    paused_until = who.paused_until if respect_pause else None
    return zone_window(ctx.settings, person_tz(ctx, who, cohort), paused_until)


def zone_window(settings: Settings, tz: str, paused_until: datetime | None = None) -> Window:
    """The sending window of anyone in ``tz``: the configured working days and hours, less quiet hours."""
    wh, quiet = settings.working_hours, settings.quiet_hours
    return _window(
        tz, wh.start, wh.end, tuple(wh.days), quiet.start if quiet else None, quiet.end if quiet else None,
        paused_until,
    )


@lru_cache(maxsize=1024)
def _window(
    tz: str,
    start: time,
    end: time,
    days: tuple[str, ...],
    quiet_start: time | None,
    quiet_end: time | None,
    paused_until: datetime | None,
) -> Window:
    # A Window is immutable and a batch's learners share a few zones: the sender asks for one per card.
    return Window(
        tz=tz,
        start=start,
        end=end,
        weekdays=frozenset(DAY_NAMES.index(d) for d in days),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        paused_until=paused_until,
    )


def cohort_by_name(session: Session, workspace: str, name: str) -> Cohort:
    cohort = session.scalar(select(Cohort).where(Cohort.workspace == workspace, Cohort.name == name))
    if cohort is None:
        raise NotFound("cohort", name)
    return cohort
