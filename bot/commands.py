"""``/learn`` subcommands, shared by every platform.

Adapters hand over the raw text after the command; parsing, role checks and replies happen here, once. Every
subcommand declares the role it needs and is refused with a helpful ephemeral reply otherwise.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import replies
from bot.durations import parse_duration
from bot.errors import DuplicateRegistration, InvalidInput, NotFound, PermissionDenied
from bot.events import CommandInvoked, Response
from bot.journeys.compose import Composer, fmt_local
from bot.journeys.engine import Engine
from bot.markup import inert, inert_line
from bot.messages import Field, Message
from bot.nudges.purposes import ANNOUNCE, LEAD_PROMPT
from bot.reporting.compute import Filters, LearnerRow, build_report
from bot.states import StepKind, StepState, Verb
from bot.storage.models import (
    Cohort,
    CohortLead,
    Enrollment,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.templating import template

Run = Callable[[Session, Person, CommandInvoked, list[str]], Response]
COHORT_CREATE_USAGE = "cohort create <name> <program> <YYYY-MM-DD> [tz] [#channel]"
#: The unified report's status, as a learner or lead reads it.
_STATUS_WORDS = {"done": "completed", "paused": "paused", "behind": "behind", "on track": "in progress"}

COHORT_USAGE = f"{COHORT_CREATE_USAGE} | cohort list"


def reply(text: str, title: str = "", fields: list[Field] | None = None) -> Response:
    """An ephemeral reply. ``text`` is Markdown (names in it already :func:`~bot.markup.inert`); ``title`` is
    plain text, escaped here because the fallback text that carries it is rendered as Markdown."""
    fallback = text if not title else f"{inert_line(title)}\n{text}"
    return Response(ephemeral=Message(text=fallback, title=title, body=text, fields=fields or []))


@dataclass(frozen=True)
class Sub:
    """One ``/learn`` subcommand. Every platform offers every registered subcommand (a platform that declares
    commands up front does so from this registry, with ``summary`` and ``arg_help`` as its descriptions: at most 100 characters)."""

    run: Run
    role: str  # learner | lead | admin | manager
    usage: str
    summary: str = ""
    arg_help: str = ""
    #: The file the subcommand takes (a roster, a transcript, a report); platforms that declare options up front
    #: offer a file option for it.
    file_help: str = ""


class Commands:
    def __init__(self, engine: Engine, composer: Composer) -> None:
        self.engine = engine
        self.composer = composer
        self.subs: dict[str, Sub] = {
            "help": Sub(self.help, "learner", "help", "What Blendwise can do for you", "A subcommand to explain (optional)"),
            "progress": Sub(self.progress, "learner", "progress", "Your progress in your programs", "Program (optional)"),
            "next": Sub(self.next, "learner", "next", "Get your next step now", "Program (optional)"),
            "snooze": Sub(self.snooze, "learner", "snooze <duration, e.g. 2h>", "Pause reminders for a while",
                          "How long, e.g. 2h or 3d"),
            "pause": Sub(self.pause, "learner", "pause <YYYY-MM-DD | duration>",
                         "Pause a program until a date or for a while", "A date (YYYY-MM-DD) or a duration, e.g. 1w"),
            "resume": Sub(self.resume, "learner", "resume", "Turn your reminders back on", "Program (optional)"),
            "team": Sub(self.team, "manager", "team", "Managers: how your team is doing", "Team member (optional)"),
            "prompt": Sub(self.prompt, "lead", "prompt <cohort> <text>", "Leads: post a discussion prompt to a cohort",
                          "<cohort> <prompt text>"),
            "announce": Sub(self.announce, "lead", "announce <cohort> <text>", "Leads: announce something to a cohort",
                            "<cohort> <message>"),
            "checkin": Sub(self.checkin, "lead", "checkin open|close <session> [cohort]",
                           "Leads: open or close check-in for a live session", "open|close <session> [cohort]"),
            "roster": Sub(self.roster, "lead", "roster <cohort>", "Leads: who is in a cohort, and how far they are",
                          "<cohort>"),
            "enroll": Sub(self.enroll, "admin", "enroll <cohort> @user ...", "Admins: enroll people in a cohort",
                          "<cohort> @person @person ..."),
            "cohort": Sub(self.cohort, "admin", COHORT_USAGE, "Admins: create or list cohorts",
                          "create <name> <program> <YYYY-MM-DD> [tz] [#channel] | list"),
        }
        #: Who registered each subcommand: the core, or the feature module named in a duplicate error.
        self.owners: dict[str, str] = dict.fromkeys(self.subs, __name__)

    def register(self, name: str, sub: Sub, *, owner: str = "?") -> None:
        """Extension point: features such as live polls or search add their own subcommands.

        Raises:
            DuplicateRegistration: ``name`` is taken; the message names both registrants.
        """
        if name in self.subs:
            raise DuplicateRegistration("/learn subcommand", name, self.owners.get(name, "?"), owner)
        self.subs[name] = sub
        self.owners[name] = owner

    # ------------------------------------------------------------------ entry
    def run(self, session: Session, person: Person, event: CommandInvoked) -> Response:
        try:
            words = shlex.split(event.args)
        except ValueError:
            raise InvalidInput(replies.UNCLOSED_QUOTE) from None
        if not words:
            return self.help(session, person, event, [])
        name, args = words[0].lower(), words[1:]
        sub = self.subs.get(name)
        if sub is None:
            known = ", ".join(sorted(k for k, s in self.subs.items() if self._may(session, person, event, s.role)))
            raise InvalidInput(replies.unknown_command(inert_line(name), known))
        if sub.role == "admin":
            self.engine.require_admin(person, event.actor.roles)
        elif (
            sub.role == "manager"
            and not self.engine.reports_of(session, person, indirect=False)
            and not self.engine.is_admin(person, event.actor.roles)
        ):
            raise PermissionDenied(replies.MANAGERS_ONLY)
        # Lead commands check the lead role against the named cohort inside the handler.
        return sub.run(session, person, event, args)

    def _may(self, session: Session, person: Person, event: CommandInvoked, role: str) -> bool:
        if role == "learner":
            return True
        if self.engine.is_admin(person, event.actor.roles):
            return True
        if role == "lead":
            return bool(self._led_cohorts(session, person)) or "lead" in event.actor.roles
        if role == "manager":
            return bool(self.engine.reports_of(session, person, indirect=False))
        return False

    def _led_cohorts(self, session: Session, person: Person) -> list[Cohort]:
        return list(
            session.scalars(
                select(Cohort).join(CohortLead, CohortLead.cohort_id == Cohort.id).where(CohortLead.person_id == person.id)
            )
        )

    def _cohort(self, session: Session, person: Person, name: str) -> Cohort:
        try:
            return self.engine.cohort_by_name(session, person.workspace, name)
        except NotFound:
            raise InvalidInput(replies.unknown_cohort(inert_line(name))) from None

    def _lead_cohort(self, session: Session, person: Person, event: CommandInvoked, args: list[str], usage: str) -> Cohort:
        if not args:
            raise InvalidInput(replies.usage(usage))
        cohort = self._cohort(session, person, args[0])
        self.engine.require_lead(session, person, cohort, event.actor.roles)
        return cohort

    # ------------------------------------------------------------------ learners
    def help(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        body: str = template(
            "help",
            lead=self._may(session, person, event, "lead"),
            admin=self.engine.is_admin(person, event.actor.roles),
            manager=self._may(session, person, event, "manager"),
        )
        extra = [f"- `{s.usage}`" for k, s in self.subs.items() if self.owners.get(k) != __name__ and self._may(session, person, event, s.role)]
        if extra:
            body += "\n\n**More**\n" + "\n".join(extra)
        return reply(body)

    def progress(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        rows = self._report_rows(session, Filters(person_ids=[person.id]))
        if not rows:
            return reply(replies.NOT_ENROLLED)
        lines = [
            f"**{inert_line(r.program)}** ({inert_line(r.cohort)}): {r.steps_completed}/{r.steps_total} steps, "
            f"{r.sessions_attended}/{r.sessions_total} live sessions attended"
            + (f" (+{r.sessions_caught_up} caught up)" if r.sessions_caught_up else "")
            + f", {r.quizzes_passed}/{r.quizzes_total} quizzes passed · {_STATUS_WORDS.get(r.status, r.status)}"
            + (" 🎉" if r.status == "done" else "")
            for r in rows
        ]
        return reply("\n".join(f"- {line}" for line in lines), title=replies.PROGRESS_TITLE)

    def _report_rows(self, session: Session, filters: Filters) -> list[LearnerRow]:
        """The unified report's rows: what learners, leads and managers see is the one computation."""
        return build_report(session, self.engine, filters).learners

    def next(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        tz = self.engine.person_tz(person)
        now = self.engine.clock.now()
        open_steps = session.execute(
            select(StepProgress, Enrollment)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .where(Enrollment.person_id == person.id, StepProgress.state == StepState.OPEN, StepProgress.kind != StepKind.SESSION)
            .order_by(StepProgress.due_at)
        ).all()
        lines = []
        for sp, e in open_steps[:5]:
            step = self.engine.library.step(e.program_id, sp.step_id)
            due = f" (due {fmt_local(sp.due_at, tz)})" if sp.due_at else ""
            lines.append(f"- {step.title}{due}")
        upcoming = session.execute(
            select(LiveSessionRow)
            .join(Enrollment, Enrollment.cohort_id == LiveSessionRow.cohort_id)
            .where(Enrollment.person_id == person.id, LiveSessionRow.end_at > now)
            .order_by(LiveSessionRow.start_at)
            .limit(3)
        ).scalars().all()
        if upcoming:
            lines.append(f"\n**{replies.COMING_UP_LIVE}**")
            lines += [f"- {s.title}: {fmt_local(s.start_at, tz)}" for s in upcoming]
        if not lines:
            return reply(replies.NOTHING_WAITING)
        return reply("\n".join(lines), title=replies.UP_NEXT_TITLE)

    def snooze(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        raw = args[0] if args else self.engine.settings.nudges.snooze_default
        try:
            delta = parse_duration(raw)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if delta.total_seconds() <= 0 or delta.days > 30:
            raise InvalidInput(replies.SNOOZE_RANGE)
        until = self.engine.snooze_all(session, person, delta)
        return reply(replies.reminders_snoozed(fmt_local(until, self.engine.person_tz(person))))

    def pause(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        from bot.dispatcher import parse_until

        if not args:
            raise InvalidInput(replies.PAUSE_USAGE)
        until = parse_until(args[0], self.engine.clock.now(), self.engine.person_tz(person))
        self.engine.pause(session, person, until)
        return reply(replies.paused_until(fmt_local(until, self.engine.person_tz(person))))

    def resume(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        self.engine.pause(session, person, None)
        return reply(replies.RESUMED)

    # ------------------------------------------------------------------ managers
    def team(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        from bot.nudges.digests import digest_message

        return Response(ephemeral=digest_message(session, self.engine, person))

    # ------------------------------------------------------------------ leads
    def prompt(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        cohort = self._lead_cohort(session, person, event, args, "prompt <cohort> <text>")
        text = " ".join(args[1:]).strip()
        if not text:
            raise InvalidInput(replies.usage("prompt <cohort> <text>"))
        self.engine.queue_channel_post(session, cohort, LEAD_PROMPT, {"text": text, "title": replies.DISCUSSION_TITLE})
        return reply(replies.prompt_posting(cohort.channel))

    def announce(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        cohort = self._lead_cohort(session, person, event, args, "announce <cohort> <text>")
        text = " ".join(args[1:]).strip()
        if not text:
            raise InvalidInput(replies.usage("announce <cohort> <text>"))
        self.engine.queue_channel_post(session, cohort, ANNOUNCE, {"text": text, "title": replies.ANNOUNCEMENT_TITLE})
        return reply(replies.announcement_queued(cohort.channel))

    def checkin(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        usage = "checkin open|close <session> [cohort]"
        if len(args) < 2 or args[0] not in ("open", "close"):
            raise InvalidInput(replies.usage(usage))
        state = "open" if args[0] == "open" else "closed"
        step_id = args[1]
        if len(args) > 2:
            cohorts = [self._cohort(session, person, args[2])]
        else:
            cohorts = [
                c
                for c in session.scalars(
                    select(Cohort)
                    .join(LiveSessionRow, LiveSessionRow.cohort_id == Cohort.id)
                    .where(LiveSessionRow.step_id == step_id, Cohort.workspace == person.workspace)
                )
                if self.engine.is_lead(session, person, c, event.actor.roles)
            ]
            if len(cohorts) > 1:
                names = ", ".join(inert_line(c.name) for c in cohorts)
                raise InvalidInput(replies.session_in_several_cohorts(inert_line(step_id), names))
            if not cohorts:
                raise InvalidInput(replies.no_led_cohort_has_session(inert_line(step_id)))
        cohort = cohorts[0]
        self.engine.require_lead(session, person, cohort, event.actor.roles)
        live = self.engine.live_session(session, cohort, step_id)
        self.engine.set_checkin(session, live, state)
        return reply(replies.checkin_now(inert_line(live.title), inert_line(cohort.name), state))

    def roster(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        cohort = self._lead_cohort(session, person, event, args, "roster <cohort>")
        rows = self._report_rows(session, Filters(cohort=cohort.name, workspace=cohort.workspace))
        if not rows:
            return reply(replies.nobody_enrolled(inert_line(cohort.name)))
        lines = [
            f"- {inert_line(r.name)}: {r.steps_completed}/{r.steps_total} steps, {r.sessions_attended}/{r.sessions_total} "
            f"sessions{'' if r.status == 'on track' else ' · ' + _STATUS_WORDS.get(r.status, r.status)}"
            for r in rows
        ]
        return reply("\n".join(lines), title=replies.roster_title(cohort.name, len(rows)))

    # ------------------------------------------------------------------ admins
    def enroll(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if not args:
            raise InvalidInput(replies.usage("enroll <cohort> @user ..."))
        cohort = self._cohort(session, person, args[0])
        users = list(event.mentioned_users) or [a.lstrip("@") for a in args[1:] if a.startswith("@")]
        if not users:
            raise InvalidInput(replies.MENTION_SOMEONE)
        learners = [self.engine.person(session, person.platform, person.workspace, u) for u in users]
        self.engine.enroll_many(session, cohort, learners)
        done = [inert_line(learner.name) for learner in learners]
        return reply(replies.enrolled(len(done), inert_line(cohort.name), ", ".join(done)))

    def cohort(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if not args or args[0] not in ("create", "list"):
            raise InvalidInput(replies.usage(COHORT_USAGE))
        if args[0] == "list":
            cohorts = session.scalars(select(Cohort).where(Cohort.workspace == person.workspace).order_by(Cohort.name))
            lines = [
                f"- {inert_line(c.name)}: {c.program_id}, starts {c.start_date}, {inert(c.channel or 'no channel')}"
                for c in cohorts
            ]
            return reply("\n".join(lines) or replies.NO_COHORTS, title=replies.COHORTS_TITLE)
        if len(args) < 4:
            raise InvalidInput(replies.usage(COHORT_CREATE_USAGE))
        name, program_id, start_raw = args[1], args[2], args[3]
        if program_id not in self.engine.library:
            raise InvalidInput(replies.unknown_program(program_id, ", ".join(self.engine.library.ids())))
        try:
            start = date.fromisoformat(start_raw)
        except ValueError:
            raise InvalidInput(replies.not_a_date(start_raw)) from None
        tz = None
        channel = event.channel or None
        for extra in args[4:]:
            if extra.startswith("#") or extra.startswith("<#"):
                channel = extra.strip("<>#").split("|")[0]
            else:
                tz = extra
        if tz is not None:
            from bot.journeys.model import check_tz

            try:
                check_tz(tz)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        cohort = self.engine.create_cohort(
            session,
            name=name,
            program_id=program_id,
            platform=person.platform,
            workspace=person.workspace,
            start=start,
            tz=tz,
            channel=channel,
            leads=[person],
        )
        return reply(replies.cohort_created(inert_line(cohort.name), program_id, start))

    # ------------------------------------------------------------------ home
    def home(self, session: Session, person: Person) -> Message:
        """The learner's home: programs, progress, next steps, upcoming sessions and a streak."""
        tz = self.engine.person_tz(person)
        fields: list[Field] = []
        parts: list[str] = []
        for r in self._report_rows(session, Filters(person_ids=[person.id])):
            pct = round(100 * r.steps_completed / max(r.steps_total, 1))
            bar = "█" * (pct // 10) + "░" * (10 - pct // 10)
            parts.append(
                f"**{inert_line(r.program)}**\n{bar} {pct}% · {r.sessions_attended}/{r.sessions_total} live sessions"
                + (" · completed 🎉" if r.status == "done" else "")
            )
        nxt = self.next(session, person, CommandInvoked(actor=_NOBODY, args=""), [])
        streak = self.streak(session, person)
        fields.append(Field(replies.STREAK_LABEL, replies.streak(streak) if streak else replies.STREAK_NONE))
        body = "\n\n".join(parts) or replies.NOT_ENROLLED_HOME
        if nxt.ephemeral is not None:
            body += "\n\n" + (f"**{nxt.ephemeral.title}**\n" if nxt.ephemeral.title else "") + nxt.ephemeral.body
        return Message(text=replies.HOME_TITLE, title=replies.HOME_TITLE, body=body, fields=fields,
                       context=replies.times_in(tz), kind="home")

    def streak(self, session: Session, person: Person) -> int:
        """Consecutive local days, ending today or yesterday, on which the learner completed something."""
        from bot.storage.models import LearningEvent
        from bot.timewindow import zone

        tz = zone(self.engine.person_tz(person))
        days = {
            ts.astimezone(tz).date()
            for ts in session.scalars(
                select(LearningEvent.ts).where(
                    LearningEvent.person_id == person.id, LearningEvent.verb.in_((Verb.COMPLETED, Verb.ANSWERED, Verb.ATTENDED, Verb.REPLIED))
                )
            )
        }
        today = self.engine.clock.now().astimezone(tz).date()
        from datetime import timedelta

        day = today if today in days else today - timedelta(days=1)
        count = 0
        while day in days:
            count += 1
            day -= timedelta(days=1)
        return count


from bot.events import Actor  # noqa: E402

_NOBODY = Actor(platform="", workspace="", user_id="")
