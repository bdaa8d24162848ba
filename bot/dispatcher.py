"""The one place inbound events enter the core.

Adapters translate platform payloads into :mod:`bot.events` and call :meth:`Dispatcher.handle`. Each event is one
unit of work (one transaction). Expected problems (:class:`~bot.errors.BlendwiseError`) come back as a polite
ephemeral reply; anything else is logged with its traceback and the person gets a generic apology. A traceback never
reaches a user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import replies
from bot.clock import Clock
from bot.errors import BlendwiseError, DuplicateRegistration, InvalidInput, NotFound
from bot.events import (
    Actor,
    ButtonPressed,
    CommandInvoked,
    InboundEvent,
    ModalSubmitted,
    PresenceObserved,
    Response,
    RsvpChanged,
    ThreadReply,
    UnfitEvent,
    fit,
    fit_actor,
)
from bot.journeys.compose import INVITE_SOURCE, Composer, fmt_local
from bot.journeys.engine import Engine
from bot.journeys.model import QuizStep, ReflectionStep
from bot.messages import Attachment, Message
from bot.ports import SORRY, Subcommand
from bot.states import StepState
from bot.storage.db import transaction
from bot.storage.models import (
    CohortPost,
    Enrollment,
    LiveSessionRow,
    Person,
    Poll,
    StepProgress,
)

log = logging.getLogger(__name__)


Handler = Callable[[Session, Person, ButtonPressed], Response]
#: Makes the attachment a source names (``<kind>:...``) again, or ``None`` when it names nothing.
AttachmentMaker = Callable[[Session, str], Attachment | None]


def notice(text: str) -> Response:
    return Response(ephemeral=Message(text=text, body=text))


def _claim(what: str, table: dict[str, Any], owners: dict[str, str], key: str, value: Any, owner: str) -> None:
    """Register ``value`` under ``key``, refusing a second registrant (the error names both)."""
    if key in table:
        raise DuplicateRegistration(what, key, owners.get(key, "?"), owner)
    table[key] = value
    owners[key] = owner


class Dispatcher:
    def __init__(self, factory: sessionmaker[Session], engine: Engine, clock: Clock) -> None:
        self.factory = factory
        self.engine = engine
        self.clock = clock
        self.composer = Composer(engine)
        from bot.commands import Commands

        self.commands = Commands(engine, self.composer)
        self.buttons: dict[str, Handler] = {
            "lesson.done": self._lesson_done,
            "step.snooze": self._snooze,
            "step.tomorrow": self._tomorrow,
            "quiz.answer": self._quiz_answer,
            "quiz.toggle": self._quiz_toggle,
            "quiz.submit": self._quiz_submit,
            "quiz.retry": self._quiz_retry,
            "rsvp.yes": self._rsvp,
            "rsvp.maybe": self._rsvp,
            "rsvp.no": self._rsvp,
            "session.checkin": self._checkin,
            "session.join": self._join,
            "reflection.open": self._reflection_open,
            "enrollment.resume": self._resume,
        }

        self.button_owners: dict[str, str] = dict.fromkeys(self.buttons, __name__)
        self.attachment_makers: dict[str, AttachmentMaker] = {INVITE_SOURCE: self.composer.remake}
        self.attachment_owners: dict[str, str] = dict.fromkeys(self.attachment_makers, __name__)

    def register_button(self, action: str, handler: Handler, *, owner: str = "?") -> None:
        """Extension point for features that add their own buttons (live polls, catch-up lessons...).

        Raises:
            DuplicateRegistration: ``action`` already has a handler; the message names both registrants.
        """
        _claim("button", self.buttons, self.button_owners, action, handler, owner)

    def subcommands(self) -> list[Subcommand]:
        """The ``/learn`` subcommands, core and features alike (see :meth:`bot.ports.InboundHandler.subcommands`)."""
        return [
            Subcommand(name, (sub.summary or sub.usage)[:100], (sub.arg_help or sub.usage)[:100], sub.file_help[:100])
            for name, sub in self.commands.subs.items()
        ]

    def register_attachment(self, kind: str, maker: AttachmentMaker, *, owner: str = "?") -> None:
        """Extension point for features whose messages carry files (the digest's chart): ``maker`` makes again
        the attachments whose :attr:`~bot.messages.Attachment.source` is ``<kind>:...``.

        Raises:
            DuplicateRegistration: ``kind`` already has a maker; the message names both registrants.
        """
        _claim("attachment", self.attachment_makers, self.attachment_owners, kind, maker, owner)

    def attachment(self, source: str) -> Attachment | None:
        """See :meth:`bot.ports.InboundHandler.attachment`."""
        maker = self.attachment_makers.get(source.partition(":")[0])
        if maker is None:
            return None
        with self.factory() as session:
            return maker(session, source)

    # ------------------------------------------------------------------ entry points
    def handle(self, event: InboundEvent) -> Response:
        try:
            event = fit(event)
        except UnfitEvent as exc:
            log.warning("Refused a malformed %s: %s", type(event).__name__, exc)
            return notice(replies.MALFORMED_REQUEST)
        try:
            with transaction(self.factory) as session:
                return self._route(session, event)
        except BlendwiseError as exc:
            return notice(str(exc))
        except Exception:
            log.exception("error handling %s", type(event).__name__)
            return notice(SORRY)

    def home(self, actor: Actor) -> Message:
        try:
            actor = fit_actor(actor)
        except UnfitEvent as exc:
            log.warning("Refused a Home for a malformed actor: %s", exc)
            return Message(text=replies.MALFORMED_REQUEST, body=replies.MALFORMED_REQUEST)
        try:
            with transaction(self.factory) as session:
                person = self._person(session, actor)
                return self.commands.home(session, person)
        except Exception:
            log.exception("error building home for %s", actor.user_id)
            return Message(text=SORRY, body=SORRY)

    def _person(self, session: Session, actor: Actor) -> Person:
        return self.engine.person(session, actor.platform, actor.workspace, actor.user_id, name=actor.name or None)

    def _route(self, session: Session, event: InboundEvent) -> Response:
        if isinstance(event, ButtonPressed):
            handler = self.buttons.get(event.action)
            if handler is None:
                return notice(replies.BUTTON_INACTIVE)
            person = self._person(session, event.actor)
            if self.engine.seen(session, event.dedupe_key):
                return Response()
            return handler(session, person, event)
        if isinstance(event, ModalSubmitted):
            person = self._person(session, event.actor)
            if self.engine.seen(session, event.dedupe_key):
                return Response()
            return self._modal(session, person, event)
        if isinstance(event, ThreadReply):
            return self._thread_reply(session, event)
        if isinstance(event, CommandInvoked):
            person = self._person(session, event.actor)
            if self.engine.seen(session, event.dedupe_key):
                return Response()
            return self.commands.run(session, person, event)
        if isinstance(event, RsvpChanged):
            return self._native_rsvp(session, event)
        if isinstance(event, PresenceObserved):
            return self._presence(session, event)
        raise InvalidInput(replies.UNSUPPORTED_EVENT)

    # ------------------------------------------------------------------ helpers
    def _sp(self, session: Session, person: Person, raw: str) -> StepProgress:
        try:
            progress_id = int(raw.split(".")[0])
        except ValueError:
            raise InvalidInput(replies.BUTTON_INVALID) from None
        return self.engine.owned_progress(session, progress_id, person)

    def _done_card(self, session: Session, sp: StepProgress, note: str) -> Message:
        card = self.composer.step_card(session, sp)[-1]
        card.buttons = []
        card.context = note
        return card

    # ------------------------------------------------------------------ buttons
    def _lesson_done(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        self.engine.complete(session, sp, source="button")
        local = fmt_local(self.clock.now(), self.engine.person_tz(person))
        return Response(replace=self._done_card(session, sp, f"✅ Done · {local}"))

    def _snooze(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        until = self.engine.snooze(session, sp, self.clock.now() + timedelta(hours=2))
        return notice(replies.snoozed_step(fmt_local(until, self.engine.person_tz(person))))

    def _tomorrow(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        until = self.engine.snooze(session, sp, self.clock.now() + timedelta(hours=20))
        return notice(replies.step_comes_back(fmt_local(until, self.engine.person_tz(person))))

    def _quiz_parts(self, raw: str) -> tuple[int, int, int, int | None]:
        try:
            parts = [int(p) for p in raw.split(".")]
        except ValueError:
            raise InvalidInput(replies.ANSWER_BUTTON_INVALID) from None
        if len(parts) == 4:
            return parts[0], parts[1], parts[2], parts[3]
        if len(parts) == 3:
            return parts[0], parts[1], parts[2], None
        raise InvalidInput(replies.ANSWER_BUTTON_INVALID)

    def _quiz_step(self, session: Session, sp: StepProgress) -> QuizStep:
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        step = self.engine.library.step(enrollment.program_id, sp.step_id)
        if not isinstance(step, QuizStep):
            raise InvalidInput(replies.NOT_A_QUIZ)
        return step

    def _grade(self, session: Session, person: Person, sp: StepProgress, attempt: int, qi: int, choice: list[int]) -> Response:
        step = self._quiz_step(session, sp)
        outcome = self.engine.answer(session, sp, attempt, qi, choice)
        if outcome.duplicate:
            # A double click or a replayed request: show the card as it stands, record nothing.
            return Response(replace=self.composer.quiz(session, sp, step))
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        ctx = self.composer.template_context(session, self.composer.scope(session, enrollment), step, sp)
        feedback = self.composer.answer_feedback(step, qi, choice, outcome.correct, ctx)
        return Response(replace=self.composer.quiz(session, sp, step, ctx, feedback=feedback))

    def _quiz_answer(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        pid, attempt, qi, opt = self._quiz_parts(ev.value)
        sp = self.engine.owned_progress(session, pid, person)
        return self._grade(session, person, sp, attempt, qi, [opt if opt is not None else -1])

    def _quiz_toggle(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        pid, attempt, qi, opt = self._quiz_parts(ev.value)
        sp = self.engine.owned_progress(session, pid, person)
        self.engine.toggle_choice(session, sp, attempt, qi, opt if opt is not None else -1)
        return Response(replace=self.composer.quiz(session, sp, self._quiz_step(session, sp)))

    def _quiz_submit(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        pid, attempt, qi, _ = self._quiz_parts(ev.value)
        sp = self.engine.owned_progress(session, pid, person)
        selected = list(self.engine.quiz_state(sp)["selected"])
        if not selected:
            return notice(replies.PICK_AN_OPTION)
        return self._grade(session, person, sp, attempt, qi, selected)

    def _quiz_retry(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        self.engine.retry_quiz(session, sp)
        return Response(replace=self.composer.quiz(session, sp, self._quiz_step(session, sp)))

    def _rsvp(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        answer = ev.action.split(".", 1)[1]
        stored = self.engine.rsvp(session, sp, answer)
        text = replies.RSVP[stored]
        card = self.composer.step_card(session, sp)[-1]
        card.context = replies.RSVP_CONTEXT[stored]
        card.kept_attachments, card.attachments = card.attachments, []
        return Response(ephemeral=Message(text=text, body=text), replace=card)

    def _checkin(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        recorded = self.engine.check_in(session, sp)
        text = replies.CHECKED_IN if recorded else replies.ALREADY_CHECKED_IN
        return notice(text)

    def _join(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        _, live = self.engine.session_for_progress(session, sp)
        if not live.join_url:
            return notice(replies.NO_JOIN_LINK)
        return notice(replies.join_here(live.join_url))

    def _reflection_open(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        sp = self._sp(session, person, ev.value)
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        step = self.engine.library.step(enrollment.program_id, sp.step_id)
        if not isinstance(step, ReflectionStep):
            raise InvalidInput(replies.NOT_A_REFLECTION)
        if sp.state == StepState.DONE:
            return notice(replies.ALREADY_REFLECTED)
        ctx = self.composer.template_context(session, self.composer.scope(session, enrollment), step, sp)
        return Response(modal=self.composer.reflection_form(step, sp, ctx))

    def _modal(self, session: Session, person: Person, ev: ModalSubmitted) -> Response:
        if ev.action != "reflection.submit":
            return notice(replies.FORM_INACTIVE)
        sp = self._sp(session, person, ev.value)
        self.engine.reflect(session, sp, ev.text)
        return notice(replies.REFLECTION_SAVED)

    def _resume(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        enrollment = session.get(Enrollment, int(ev.value)) if ev.value.isdigit() else None
        if enrollment is None or enrollment.person_id != person.id:
            raise InvalidInput(replies.BUTTON_INVALID)
        enrollment.auto_paused = False
        enrollment.nudges_ignored = 0
        return notice(replies.REMINDERS_BACK_ON)

    # ------------------------------------------------------------------ other events
    def _thread_reply(self, session: Session, ev: ThreadReply) -> Response:
        post = session.scalar(select(CohortPost).where(CohortPost.channel == ev.channel, CohortPost.ref == ev.thread))
        if post is None:
            return Response()  # not one of our threads
        person = self._person(session, ev.actor)
        if self.engine.seen(session, f"reply:{ev.actor.platform}:{ev.channel}:{ev.message_id}"):
            return Response()
        self.engine.thread_reply(session, post, person, ev.message_id, ev.text)
        return Response()

    def _live_by_ref(self, session: Session, ref: str) -> LiveSessionRow:
        live = session.scalar(select(LiveSessionRow).where(LiveSessionRow.platform_ref == ref))
        if live is None:
            raise NotFound("live session", ref)
        return live

    def _learner_progress(self, session: Session, person: Person, live: LiveSessionRow) -> StepProgress | None:
        return session.scalar(
            select(StepProgress)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .where(
                Enrollment.person_id == person.id,
                Enrollment.cohort_id == live.cohort_id,
                StepProgress.step_id == live.step_id,
            )
        )

    def _native_rsvp(self, session: Session, ev: RsvpChanged) -> Response:
        live = self._live_by_ref(session, ev.session_ref)
        person = self._person(session, ev.actor)
        sp = self._learner_progress(session, person, live)
        if sp is not None:
            self.engine.rsvp(session, sp, "yes" if ev.going else "no")
        return Response()

    def _presence(self, session: Session, ev: PresenceObserved) -> Response:
        live = self._live_by_ref(session, ev.session_ref)
        person = self._person(session, ev.actor)
        sp = self._learner_progress(session, person, live)
        if sp is not None:
            self.engine.check_in(session, sp, source="voice", minutes=ev.minutes)
        return Response()

    # ------------------------------------------------------------------ used by live features
    def poll(self, session: Session, poll_id: int) -> Poll:
        poll = session.get(Poll, poll_id)
        if poll is None:
            raise NotFound("poll", poll_id)
        return poll


def parse_until(text: str, now: datetime, tz: str) -> datetime:
    """``2026-08-20`` (local midnight at the end of... the start of that day) or a duration like ``2w``."""
    from datetime import date, time

    from bot.durations import parse_duration
    from bot.timewindow import local_instant

    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            return now + parse_duration(text)
        except ValueError:
            raise InvalidInput(replies.not_a_date_or_duration(text)) from None
    until = local_instant(day, time(0, 0), tz)
    if until <= now:
        raise InvalidInput(replies.DATE_IN_THE_PAST)
    return until
