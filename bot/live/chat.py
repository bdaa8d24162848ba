"""``/learn`` subcommands and buttons of the live features, registered on the core's extension points.

Subcommands: ``poll``, ``recording``, ``recap`` (leads, checked against the cohort in the handler) and ``search``
(everyone). Buttons: ``poll.vote``, ``poll.step`` (program poll steps, now with live results and changeable
votes), ``catchup.done``, ``catchup.quiz``, ``catchup.answer``, ``recap.release`` and ``search.open``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot import replies
from bot.commands import Commands, Sub, reply
from bot.dispatcher import notice
from bot.errors import InvalidInput, NotFound, PermissionDenied
from bot.events import ButtonPressed, CommandInvoked, Response
from bot.journeys.model import LessonStep, PollStep
from bot.live import polls as poll_view
from bot.live.attendance import import_report, parse_report
from bot.live.models import SearchDoc
from bot.live.purposes import REOPEN
from bot.live.recaps import keep_released, released_recap
from bot.live.search import Hit
from bot.markup import inert_line
from bot.messages import Button, Message
from bot.nudges.purposes import enqueue
from bot.states import StepState
from bot.storage.models import Cohort, Enrollment, LiveSessionRow, Person, Poll, PollVote, StepProgress

if TYPE_CHECKING:
    from bot.live.service import Live
    from bot.registry import Registry

POLL_USAGE = 'poll <cohort> "Question?" "A" "B" ... [--anonymous] [--hide-results-until-close] [--multi] | poll close <id> | poll list <cohort>'
RECORDING_USAGE = "recording <session> <url> [cohort]  (attach the transcript file: .vtt, .srt or .txt)"
RECAP_USAGE = "recap review|release|edit|generate <session> [cohort]"
SEARCH_USAGE = "search <words>"
ATTENDANCE_USAGE = "attendance <session> [cohort]  (attach the Zoom, Google Meet or Teams participant report)"

#: The options a voter holds on a poll, built once (every step-poll press reads them).
_MY_OPTIONS = select(PollVote.option).where(PollVote.poll_id == bindparam("poll_id"), PollVote.voter == bindparam("voter"))


class LiveChat:
    def __init__(self, live: Live, commands: Commands) -> None:
        self.live = live
        self.engine = live.engine
        self.commands = commands

    def install(self, registry: Registry) -> None:
        registry.add_command("poll", Sub(self.poll, "lead", POLL_USAGE, "Leads: post a poll to a cohort",
                                         "<cohort> <question> <options...>"))
        registry.add_command("recording", Sub(self.recording, "lead", RECORDING_USAGE,
                                              "Leads: share a session's recording", "<session> <recording URL>",
                                              "The transcript (.vtt, .srt or .txt), optional"))
        registry.add_command("recap", Sub(self.recap, "lead", RECAP_USAGE,
                                          "Leads: review, edit or release a session's recap",
                                          "review|release|edit|generate <session> [cohort]",
                                          "For recap edit: the edited recap (YAML)"))
        registry.add_command("attendance", Sub(self.attendance, "lead", ATTENDANCE_USAGE,
                                               "Leads: record attendance from a Zoom, Meet or Teams report",
                                               "<session> [cohort]", "The meeting tool's participant report"))
        registry.add_command("search", Sub(self.search, "learner", SEARCH_USAGE,
                                           "Search the lessons of your programs", "What to look for"))
        registry.add_button("poll.vote", self.vote)
        # Program poll steps: the live feature owns poll logic (live results, changeable votes).
        registry.add_button("poll.step", self.step_vote)
        registry.add_button("catchup.done", self.catchup_done)
        registry.add_button("catchup.quiz", self.catchup_quiz)
        registry.add_button("catchup.answer", self.catchup_answer)
        registry.add_button("recap.release", self.release_button)
        registry.add_button("search.open", self.open)

    # ------------------------------------------------------------------ helpers
    def _cohort(self, session: Session, person: Person, name: str) -> Cohort:
        try:
            return self.engine.cohort_by_name(session, person.workspace, name)
        except NotFound:
            raise InvalidInput(replies.unknown_cohort(name)) from None

    def _lead_session(
        self, session: Session, person: Person, event: CommandInvoked, step_id: str, cohort_name: str | None
    ) -> LiveSessionRow:
        """The session ``step_id`` of the named cohort, or of the one cohort the caller leads that has it."""
        roles = event.actor.roles
        if cohort_name:
            cohorts = [self._cohort(session, person, cohort_name)]
        else:
            cohorts = [
                c
                for c in session.scalars(
                    select(Cohort)
                    .join(LiveSessionRow, LiveSessionRow.cohort_id == Cohort.id)
                    .where(LiveSessionRow.step_id == step_id, Cohort.workspace == person.workspace)
                )
                if self.engine.is_lead(session, person, c, roles)
            ]
            if len(cohorts) > 1:
                names = ", ".join(c.name for c in cohorts)
                raise InvalidInput(replies.session_in_several_cohorts(step_id, names))
            if not cohorts:
                raise InvalidInput(replies.no_led_cohort_has_session(step_id))
        cohort = cohorts[0]
        self.engine.require_lead(session, person, cohort, roles)
        return self.engine.live_session(session, cohort, step_id)

    # ------------------------------------------------------------------ polls
    def poll(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if not args:
            raise InvalidInput(replies.usage(POLL_USAGE))
        roles = event.actor.roles
        if args[0] in ("close", "results") and len(args) == 2:
            poll = self.live.polls.get(session, args[1])
            cohort = session.get(Cohort, poll.cohort_id)
            assert cohort is not None
            self.engine.require_lead(session, person, cohort, roles)
            if args[0] == "close":
                self.live.polls.close(session, poll)
                return reply(
                    self.live.polls.results_text(session, poll),
                    title=replies.poll_closed_title(poll.id, poll.question),
                )
            return reply(
                self.live.polls.results_text(session, poll), title=replies.poll_title(poll.id, poll.question)
            )
        if args[0] == "list" and len(args) == 2:
            cohort = self._cohort(session, person, args[1])
            self.engine.require_lead(session, person, cohort, roles)
            polls = session.scalars(select(Poll).where(Poll.cohort_id == cohort.id).order_by(Poll.id)).all()
            lines = [self.live.polls.summary_line(session, p) for p in polls]
            return reply("\n".join(lines) or replies.NO_POLLS, title=replies.polls_in(cohort.name))
        rest, flags = poll_view.parse_flags(args)
        if len(rest) < 4:
            raise InvalidInput(replies.usage(POLL_USAGE))
        cohort = self._cohort(session, person, rest[0])
        self.engine.require_lead(session, person, cohort, roles)
        poll = self.live.polls.create(
            session,
            cohort,
            person,
            rest[1],
            rest[2:],
            anonymous=flags["anonymous"],
            multi=flags["multi"],
            hide_results=flags["hide"],
        )
        return reply(replies.poll_on_its_way(poll.id, cohort.channel))

    def _vote_reply(self, poll: Poll, chosen: list[int]) -> Message:
        labels = poll.options["labels"]
        picked = ", ".join(inert_line(labels[i]) for i in chosen)
        if not chosen:
            text = replies.VOTE_REMOVED
        elif poll.multi:
            text = replies.your_choices(picked)
        else:
            text = replies.your_vote(picked)
        if poll.anonymous:
            text += replies.POLL_IS_ANONYMOUS
        return Message(text=text, body=text)

    def vote(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        try:
            poll_id, option = (int(p) for p in ev.value.split("."))
        except ValueError:
            raise InvalidInput(replies.POLL_BUTTON_INVALID) from None
        poll = self.live.polls.get(session, poll_id)
        chosen = self.live.polls.vote(session, poll, person, option, ev.actor.roles)
        if poll.message_ref is None and ev.message is not None:
            poll.message_ref = ev.message.encode()
        return Response(ephemeral=self._vote_reply(poll, chosen), replace=poll_view.message(session, poll))

    def step_vote(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        """A program poll step: vote (changeable), complete the step, and show the live results on the card."""
        try:
            pid, option = (int(p) for p in ev.value.split("."))
        except ValueError:
            raise InvalidInput(replies.POLL_BUTTON_INVALID) from None
        sp = self.engine.owned_progress(session, pid, person)
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        step = self.engine.library.step(enrollment.program_id, sp.step_id)
        if not isinstance(step, PollStep):
            raise InvalidInput(replies.NOT_A_POLL)
        poll = poll_view.step_vote(self.engine, session, sp, option, person)
        mine = self._mine(session, poll, person)  # once, not once per option
        chosen = sorted(i for i in range(len(poll.options["labels"])) if i in mine)
        card = poll_view.message(session, poll, value_prefix=str(sp.id), action="poll.step")
        card.title = step.title
        card.body = f"{step.question}\n\n{card.body}"
        return Response(ephemeral=self._vote_reply(poll, chosen), replace=card)

    def _mine(self, session: Session, poll: Poll, person: Person) -> set[int]:
        key = poll_view.voter_key(poll, person)
        return set(session.scalars(_MY_OPTIONS, {"poll_id": poll.id, "voter": key}))

    # ------------------------------------------------------------------ recordings and recaps
    def recording(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if len(args) < 2:
            raise InvalidInput(replies.usage(RECORDING_USAGE))
        row = self._lead_session(session, person, event, args[0], args[2] if len(args) > 2 else None)
        transcript = event.attachments[0] if event.attachments else None
        if len(event.attachments) > 1:
            raise InvalidInput(replies.ONE_TRANSCRIPT)
        attached = self.live.recaps.attach(
            session,
            row,
            recording_url=args[1],
            transcript=transcript[1] if transcript else None,
            filename=transcript[0] if transcript else "transcript.txt",
            requested_by=person,
        )
        if not attached.has_transcript:
            return reply(replies.recording_saved(row.title, row.step_id))
        self.live.recaps.generate_later(session, row)
        who = f"{len(attached.speakers)} speaker(s)" if attached.speakers else "no speaker names"
        length = f", about {attached.minutes} min" if attached.minutes else ""
        how = "an AI draft" if self.live.llm else "an offline summary (no AI is configured)"
        details = f"{attached.format}, {who}{length}"
        return reply(replies.recording_and_transcript_saved(row.title, details, how, released=bool(released_recap(row))))

    def attendance(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        """Attendance from a meeting tool's report attached to the command, as ``session attendance import``."""
        if not args or len(args) > 2:
            raise InvalidInput(replies.usage(ATTENDANCE_USAGE))
        row = self._lead_session(session, person, event, args[0], args[1] if len(args) > 1 else None)
        if len(event.attachments) != 1:
            raise InvalidInput(replies.ATTACH_ONE_REPORT)
        filename, data = event.attachments[0]
        result = import_report(self.engine, session, row, parse_report(data, filename))
        return reply(result.text(inert_line))

    def recap(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        if len(args) < 2 or args[0] not in ("review", "release", "edit", "generate"):
            raise InvalidInput(replies.usage(RECAP_USAGE))
        row = self._lead_session(session, person, event, args[1], args[2] if len(args) > 2 else None)
        action = args[0]
        if action == "review":
            return reply(self.live.recaps.review_text(session, row))
        if action == "generate":
            if not row.transcript:
                raise InvalidInput(replies.no_transcript(row.title))
            keep_released(row)
            recap = dict(row.recap or {})
            recap["requested_by"] = person.id
            row.recap = recap
            row.recap_state = "pending"
            self.live.recaps.generate_later(session, row)
            return reply(replies.drafting_again(row.title))
        if action == "edit":
            if not event.attachments:
                raise InvalidInput(replies.attach_edited_recap(row.step_id))
            name, data = event.attachments[0]
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidInput(replies.not_utf8(name)) from None
            self.live.recaps.edit(session, row, text, shown=name)
            return reply(self.live.recaps.review_text(session, row), title=replies.RECAP_UPDATED_TITLE)
        released = self.live.recaps.release(session, row)
        return reply(replies.recap_released(row.title, released.catchups, released.recordings))

    def release_button(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        row = session.get(LiveSessionRow, int(ev.value)) if ev.value.isdigit() else None
        if row is None:
            raise InvalidInput(replies.BUTTON_INVALID)
        cohort = session.get(Cohort, row.cohort_id)
        assert cohort is not None
        self.engine.require_lead(session, person, cohort, ev.actor.roles)
        released = self.live.recaps.release(session, row)
        text = replies.released(released.catchups, released.recordings)
        return Response(
            ephemeral=Message(text=text, body=text),
            replace=Message(
                text=replies.recap_released_title(row.title),
                title=replies.recap_released_title(row.title),
                body=text,
                kind="notice",
            ),
        )

    # ------------------------------------------------------------------ catch-up lessons
    def catchup_done(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        c = self.live.recaps.catchup(session, ev.value, person)
        self.live.recaps.complete(session, c)
        return Response(replace=self.live.recaps.done_card(session, c))

    def catchup_quiz(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        c = self.live.recaps.catchup(session, ev.value, person)
        return Response(replace=self.live.recaps.quiz_card(session, c))

    def catchup_answer(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        try:
            cid, qi, option = (int(p) for p in ev.value.split("."))
        except ValueError:
            raise InvalidInput(replies.ANSWER_BUTTON_INVALID) from None
        c = self.live.recaps.catchup(session, cid, person)
        return Response(replace=self.live.recaps.answer(session, c, qi, option))

    # ------------------------------------------------------------------ search
    def search(self, session: Session, person: Person, event: CommandInvoked, args: list[str]) -> Response:
        terms = " ".join(args).strip()
        if not terms:
            raise InvalidInput(replies.SEARCH_USAGE)
        scope = self.live.search.scope_for(session, person, roles=event.actor.roles)
        results = self.live.search.search(session, terms, scope)
        if not results.hits:
            return reply(replies.nothing_found(terms))
        return Response(ephemeral=results_message(session, self.engine, terms, results.hits, results.loose))

    def open(self, session: Session, person: Person, ev: ButtonPressed) -> Response:
        doc = session.get(SearchDoc, int(ev.value)) if ev.value.isdigit() else None
        if doc is None:
            raise InvalidInput(replies.RESULT_GONE)
        scope = self.live.search.scope_for(session, person, roles=ev.actor.roles)
        allowed = (doc.kind == "lesson" and doc.program_id in (scope.programs or set())) or (
            doc.kind != "lesson" and doc.cohort_id in (scope.cohorts or set())
        )
        if not allowed:
            raise PermissionDenied(replies.RESULT_NOT_YOURS)
        if doc.kind != "lesson":
            row = session.get(LiveSessionRow, doc.session_id)
            if row is None:
                raise InvalidInput(replies.SESSION_GONE)
            recap = released_recap(row)
            points = "\n".join(f"- {p}" for p in recap.get("key_points", []))
            body = "\n\n".join(
                p
                for p in (
                    recap.get("summary") or "",
                    points,
                    replies.watch_recording(row.recording_url) if row.recording_url else "",
                )
                if p
            )
            return Response(ephemeral=Message(text=row.title, title=row.title, body=body, kind="notice"))
        sp = session.scalar(
            select(StepProgress)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .where(
                Enrollment.person_id == person.id,
                Enrollment.program_id == doc.program_id,
                StepProgress.step_id == doc.step_id,
            )
            .order_by(Enrollment.enrolled_at.desc())
        )
        if sp is None:
            step = self.engine.library.step(doc.program_id, doc.step_id)
            assert isinstance(step, LessonStep)
            body = self.engine.library.body(doc.program_id, doc.step_id)
            return Response(
                ephemeral=Message(text=step.title, title=step.title, body=body[:2900], kind="lesson")
            )
        if sp.state == StepState.LOCKED:
            when = sp.unlock_at.strftime("%d %b") if sp.unlock_at else "later"
            return notice(replies.lesson_opens_on(when))
        enqueue(
            session,
            REOPEN,
            (sp.id,),
            now=self.live.clock.now(),
            person_id=person.id,
            enrollment_id=sp.enrollment_id,
            progress_id=sp.id,
        )
        return notice(replies.SENDING_LESSON_AGAIN)


KIND_LABEL = replies.SEARCH_KIND_LABEL


def results_message(session: Session, engine: object, terms: str, hits: list[Hit], loose: bool) -> Message:
    from bot.journeys.engine import Engine

    assert isinstance(engine, Engine)
    lines = []
    buttons = []
    for i, hit in enumerate(hits, start=1):
        program = (
            engine.library.program(hit.program_id).title
            if hit.program_id in engine.library
            else hit.program_id
        )
        lines.append(
            f"{i}. **{hit.title}** · {KIND_LABEL.get(hit.kind, hit.kind)} · {program}\n   {hit.snippet}"
        )
        if i <= 5:
            buttons.append(Button(replies.open_result(i), "search.open", str(hit.doc_id)))
    note = replies.LOOSE_MATCHES if loose else ""
    body = note + "\n".join(lines)
    return Message(
        text=replies.search_title(inert_line(terms)), title=replies.search_title(terms), body=body, buttons=buttons, kind="notice"
    )
