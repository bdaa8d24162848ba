"""Moving and cancelling live sessions from chat (``/learn session move|cancel``) and the command line
(``blendwise session move|cancel``). The planning itself is the core's (:mod:`bot.journeys.reschedule`); this
module parses what a lead or an operator typed and answers in one line.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.orm import Session

from bot import replies
from bot.commands import Sub, reply
from bot.errors import BlendwiseError, InvalidInput
from bot.events import CommandInvoked, Response
from bot.journeys.model import check_tz
from bot.journeys.reschedule import Change
from bot.storage.models import Cohort, LiveSessionRow, Person
from bot.timewindow import local_instant, zone

if TYPE_CHECKING:
    from bot.live.chat import LiveChat
    from bot.registry import CliRegistry, Registry

SESSION_USAGE = "session move <cohort> <session> YYYY-MM-DD HH:MM [time zone] | session cancel <cohort> <session>"
_WHEN = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*$")


def parse_start(text: str, tz: str) -> datetime:
    """``YYYY-MM-DD HH:MM`` as wall time in ``tz`` (a time inside a DST gap moves past it), as an aware instant."""
    match = _WHEN.match(text)
    try:
        if match is None:
            raise ValueError
        day, at = date.fromisoformat(match.group(1)), time.fromisoformat(match.group(2).zfill(5))
    except ValueError:
        raise InvalidInput(replies.not_a_session_time(text)) from None
    try:
        check_tz(tz)
    except ValueError:
        raise InvalidInput(replies.unknown_time_zone(tz)) from None
    return local_instant(day, at, tz)


def describe(change: Change, live: LiveSessionRow, tz: str) -> str:
    """The one line a lead or an operator reads after a change."""
    if live.cancelled_at is not None:
        return replies.session_cancelled(live.title, change.invites_updated)
    when = live.start_at.astimezone(zone(tz))
    # As every message shows times (``Tue 8 Dec``), with the year: a lead may move a session into the next one.
    shown = f"{when:%a} {when.day} {when:%b %Y, %H:%M %Z}"
    return replies.session_moved(live.title, shown, change.invites_updated)


class ScheduleChat:
    """``/learn session move|cancel``: leads of the cohort (and admins) only, checked by the live feature."""

    def __init__(self, chat: LiveChat) -> None:
        self.chat = chat
        self.engine = chat.engine

    def install(self, registry: Registry) -> None:
        registry.add_command("session", Sub(self.run, "lead", SESSION_USAGE,
                                            "Leads: move or cancel a live session",
                                            "move|cancel <cohort> <session> [YYYY-MM-DD HH:MM] [zone]"))

    def run(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if len(args) < 3 or args[0] not in ("move", "cancel") or (args[0] == "move" and len(args) < 4):
            raise InvalidInput(replies.usage(SESSION_USAGE))
        action, cohort_name, step_id, *rest = args
        live = self.chat._lead_session(session, person, event, step_id, cohort_name)
        cohort = session.get(Cohort, live.cohort_id)
        assert cohort is not None
        if action == "cancel":
            if rest:
                raise InvalidInput(replies.usage(SESSION_USAGE))
            return reply(describe(self.engine.cancel_session(session, live), live, cohort.tz))
        # ``2026-03-12 15:00`` arrives as two words unless quoted; a third word is the zone.
        when = " ".join(rest[:2]) if len(rest) >= 2 and ":" in rest[1] else rest[0]
        extra = rest[2:] if when != rest[0] else rest[1:]
        if len(extra) > 1:
            raise InvalidInput(replies.usage(SESSION_USAGE))
        tz = extra[0] if extra else cohort.tz
        change = self.engine.move_session(session, live, parse_start(when, tz))
        return reply(describe(change, live, tz))


def register_cli(cli: CliRegistry, session_app: typer.Typer) -> None:
    """``blendwise session move COHORT SESSION --to "YYYY-MM-DD HH:MM" [--tz ZONE]`` and ``session cancel``."""
    runtime, out = cli.runtime, cli.out

    def change(cohort_name: str, step_id: str, apply: Any) -> None:
        from bot.storage.db import transaction

        rt = runtime(adapters={})
        with transaction(rt.factory) as session:
            cohorts = session.query(Cohort).filter(Cohort.name == cohort_name).all()
            if not cohorts:
                raise BlendwiseError(f"no cohort '{cohort_name}'")
            if len(cohorts) > 1:
                raise BlendwiseError(f"several workspaces have a cohort '{cohort_name}'; rename one to change it")
            cohort = cohorts[0]
            live = rt.engine.live_session(session, cohort, step_id)
            line = apply(rt, session, cohort, live)
        out.print(line, markup=False)

    @session_app.command("move")
    def move(
        cohort: Annotated[str, typer.Argument(metavar="COHORT", help="The cohort's name.")],
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="The session's step id, e.g. kickoff.")],
        to: Annotated[str, typer.Option("--to", help='The new start, "YYYY-MM-DD HH:MM".')],
        tz: Annotated[str | None, typer.Option("--tz", help="Zone of --to (default: the cohort's).")] = None,
    ) -> None:
        """Move a live session: invites are updated in place with a new calendar file, reminders re-planned."""

        def apply(rt: Any, session: Session, c: Cohort, live: LiveSessionRow) -> str:
            zone_name = tz or c.tz
            return describe(rt.engine.move_session(session, live, parse_start(to, zone_name)), live, zone_name)

        change(cohort, session_id, apply)

    @session_app.command("cancel")
    def cancel(
        cohort: Annotated[str, typer.Argument(metavar="COHORT", help="The cohort's name.")],
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="The session's step id, e.g. kickoff.")],
    ) -> None:
        """Cancel a live session: learners get a cancellation, and it leaves the completion rules."""

        def apply(rt: Any, session: Session, c: Cohort, live: LiveSessionRow) -> str:
            return describe(rt.engine.cancel_session(session, live), live, c.tz)

        change(cohort, session_id, apply)
