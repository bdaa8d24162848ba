"""Composing learner-facing messages from program content and state.

Wording lives in ``bot/templates/*.j2`` (loaded by :mod:`bot.templating`) and in the program files; this module
only gathers the data. Authored text
is rendered as a Jinja template (sandboxed); anything a person typed is passed in as data and never rendered as a
template. Escaping for each platform's markup is the adapter's job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot import ics, replies
from bot.journeys.chunks import in_parts, split_markdown, truncate_markdown
from bot.journeys.engine import Engine
from bot.journeys.model import (
    AnyStep,
    LessonStep,
    PollStep,
    Program,
    PromptStep,
    QuizStep,
    ReflectionStep,
    SessionStep,
)
from bot.journeys.render import fmt_local, render_text, session_variables
from bot.markup import Markdown, inert_line
from bot.messages import Attachment, Button, Field, Message, MessageRef, Modal
from bot.states import EnrollmentStatus, StepState
from bot.storage import batch
from bot.storage.models import (
    Attendance,
    Cohort,
    CohortLead,
    Enrollment,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.templating import template

#: The :attr:`~bot.messages.Attachment.source` kind of a learner's session invite (``.ics``).
INVITE_SOURCE = "session-invite"


@dataclass
class Scope:
    """Everything needed to render one learner's messages."""

    person: Person
    enrollment: Enrollment
    cohort: Cohort
    program: Program
    tz: str


def public_session_description(program: Program, cohort: Cohort, live: LiveSessionRow) -> Markdown:
    """A session step's authored description rendered for everyone at once (a platform-native event, such as a
    chat platform's scheduled event), with the same variables as the invite: the session's own (in the cohort's zone),
    the cohort, the program and the step. There is no single learner, so ``learner.name`` and
    ``learner.first_name`` read "everyone" and ``learner.tz`` is the cohort's zone."""
    step = next((s for s in program.sessions if s.id == live.step_id), None)
    if step is None or not step.description:
        return Markdown("")
    ctx: dict[str, Any] = {
        "learner": {"name": "everyone", "first_name": "everyone", "tz": cohort.tz},
        "cohort": {"name": cohort.name, "start_date": cohort.start_date.isoformat(), "channel": cohort.channel or ""},
        "program": {"title": program.title, "id": program.id},
        "step": {"title": step.title, "id": step.id, "kind": step.kind},
        "due": "",
        "session": Composer.session_vars(live, cohort.tz, step),
    }
    return render_text(step.description, ctx)


T = TypeVar("T")

#: A cohort's live sessions in time order, built once: every card and reply composed reads them.
_COHORT_SESSIONS = (
    select(LiveSessionRow).where(LiveSessionRow.cohort_id == bindparam("cohort_id")).order_by(LiveSessionRow.start_at)
)

#: One cohort's row for one session step.
_COHORT_SESSION = select(LiveSessionRow).where(
    LiveSessionRow.cohort_id == bindparam("cohort_id"), LiveSessionRow.step_id == bindparam("step_id")
)
#: The steps one enrolment has done (an invite ticks off the session's pre-work).
_DONE_STEPS = select(StepProgress.step_id).where(
    StepProgress.enrollment_id == bindparam("enrollment_id"), StepProgress.state == StepState.DONE
)
_RSVP = select(Attendance.rsvp).where(
    Attendance.session_id == bindparam("session_id"), Attendance.enrollment_id == bindparam("enrollment_id")
)
#: The first lead of a cohort with an email: an invite's organizer.
_ORGANIZER = (
    select(Person.email, Person.name)
    .join(CohortLead, CohortLead.person_id == Person.id)
    .where(CohortLead.cohort_id == bindparam("cohort_id"), Person.email.is_not(None), Person.email != "")
    .order_by(Person.id)
    .limit(1)
)


class Composer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: What is the same for every learner of a program, made once per program object (a reloaded library
        #: brings new objects, so an entry is used only while its program is the one asked about).
        self._per_program: dict[tuple[int, str], tuple[Program, Any]] = {}

    def _once(self, program: Program, what: str, make: Callable[[], T]) -> T:
        kept = self._per_program.get((id(program), what))
        if kept is None or kept[0] is not program:
            kept = self._per_program[(id(program), what)] = (program, make())
        return cast(T, kept[1])

    def _objectives(self, program: Program, step: LessonStep, number: int) -> str:
        """A lesson's objectives block (the program's on the first lesson too): the same for every learner."""

        def make() -> str:
            program_objectives = program.objectives if number == 1 else []
            if not (program_objectives or step.objectives):
                return ""
            # Objectives are plain text: a line each, never Markdown of the author's making.
            return template(
                "lesson_objectives",
                program_objectives=[inert_line(o) for o in program_objectives],
                objectives=[inert_line(o) for o in step.objectives],
            ).strip()

        return self._once(program, f"objectives:{step.id}", make)

    def _lessons(self, program: Program) -> list[LessonStep]:
        return self._once(program, "lessons", lambda: [s for s in program.steps if isinstance(s, LessonStep)])

    # ------------------------------------------------------------------ context
    def scope(self, session: Session, enrollment: Enrollment) -> Scope:
        person = batch.get(session, Person, enrollment.person_id)
        cohort = batch.get(session, Cohort, enrollment.cohort_id)
        assert person is not None and cohort is not None
        program = self.engine.library.program(enrollment.program_id)
        return Scope(person, enrollment, cohort, program, self.engine.person_tz(person, cohort))

    def template_context(
        self, session: Session, scope: Scope, step: AnyStep | None = None, sp: StepProgress | None = None
    ) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "learner": {"name": scope.person.name, "first_name": scope.person.first_name, "tz": scope.tz},
            "cohort": {
                "name": scope.cohort.name,
                "start_date": scope.cohort.start_date.isoformat(),
                "channel": scope.cohort.channel or "",
            },
            "program": {"title": scope.program.title, "id": scope.program.id},
            "step": {"title": step.title, "id": step.id, "kind": step.kind} if step else {},
            "due": fmt_local(sp.due_at, scope.tz) if sp is not None and sp.due_at else "",
            "session": {},
        }
        live = self._live_for(session, scope, step)
        if live is not None:
            ctx["session"] = self.session_vars(live, scope.tz, step)
        return ctx

    def _live_for(self, session: Session, scope: Scope, step: AnyStep | None) -> LiveSessionRow | None:
        """The session a step refers to: itself, or the next session whose pre-work it is."""
        # The outbox composes a whole batch in one read-only session and marks it ``batch``: there a cohort's
        # sessions are read (and indexed by step) once for all its learners instead of once per message.
        cache: dict[int, tuple[list[LiveSessionRow], dict[str, LiveSessionRow]]] | None = session.info.get("batch")
        kept = cache.get(scope.cohort.id) if cache is not None else None
        if kept is None:
            rows = list(session.scalars(_COHORT_SESSIONS, {"cohort_id": scope.cohort.id}).all())
            # Reversed, so a step's earliest row wins, as a scan in start order finds it.
            kept = (rows, {row.step_id: row for row in reversed(rows)})
            if cache is not None:
                cache[scope.cohort.id] = kept
        sessions, by_step = kept
        if not sessions:
            return None
        if step is not None:
            live = by_step.get(step.id)
            if live is None:
                live = by_step.get(self._prework_of(scope.program).get(step.id, ""))
            if live is not None:
                return live
        now = self.engine.clock.now()
        upcoming = [s for s in sessions if s.end_at > now]
        return upcoming[0] if upcoming else sessions[-1]

    def _prework_of(self, program: Program) -> dict[str, str]:
        """Each pre-work step's session: the first session, in program order, that lists it."""

        def make() -> dict[str, str]:
            found: dict[str, str] = {}
            for s in program.sessions:
                for step_id in s.prework:
                    found.setdefault(step_id, s.id)
            return found

        return self._once(program, "prework", make)

    @staticmethod
    def session_vars(live: LiveSessionRow, tz: str, step: AnyStep | None = None) -> dict[str, Any]:
        location = step.location if isinstance(step, SessionStep) else None
        return session_variables(live.title, live.start_at, live.end_at, live.join_url, location, tz)

    def text(self, source: str, ctx: dict[str, Any]) -> Markdown:
        return render_text(source, ctx)

    # ------------------------------------------------------------------ step cards
    def step_card(self, session: Session, sp: StepProgress, *, reminder: bool = False) -> list[Message]:
        enrollment = batch.get(session, Enrollment, sp.enrollment_id)
        assert enrollment is not None
        scope = self.scope(session, enrollment)
        step = scope.program.step(sp.step_id)
        ctx = self.template_context(session, scope, step, sp)
        messages = self._step_messages(session, scope, step, sp, ctx, reminder=reminder)
        completed = enrollment.status == EnrollmentStatus.COMPLETED
        if messages and (completed or not step.required):
            # Marked on the last part, where the buttons and the footer are.
            note = template("optional_step", completed=completed)
            last = messages[-1]
            last.context = f"{note} · {last.context}" if last.context else note
        return messages

    def _step_messages(
        self,
        session: Session,
        scope: Scope,
        step: AnyStep,
        sp: StepProgress,
        ctx: dict[str, Any],
        *,
        reminder: bool,
    ) -> list[Message]:
        if isinstance(step, LessonStep):
            return self.lesson(scope, step, sp, ctx, reminder=reminder)
        if isinstance(step, QuizStep):
            return [self.quiz(session, sp, step, ctx, reminder=reminder)]
        if isinstance(step, SessionStep):
            return [self.invite(session, scope, step, sp, ctx, reminder=reminder)]
        if isinstance(step, PromptStep):
            body = template(
                "prompt_dm",
                cohort=ctx["cohort"],
                channel_label=scope.cohort.channel,
                text=self.text(step.text, ctx),
            )
            return [self._card(step, sp, ctx, body, [], reminder=reminder, kind="prompt")]
        if isinstance(step, ReflectionStep):
            body = template("reflection", question=self.text(step.question, ctx), min_words=step.min_words)
            form = self.reflection_form(step, sp, ctx)
            buttons = [Button("Write my reflection", "reflection.open", str(sp.id), "primary", form=form)]
            return [self._card(step, sp, ctx, body, buttons, reminder=reminder, kind="reflection")]
        if isinstance(step, PollStep):
            buttons = [Button(opt, "poll.step", f"{sp.id}.{i}") for i, opt in enumerate(step.options)]
            body = self.text(step.question, ctx)
            return [self._card(step, sp, ctx, body, buttons, reminder=reminder, kind="poll")]
        raise AssertionError(f"unhandled step kind {step.kind}")

    def reflection_form(self, step: ReflectionStep, sp: StepProgress, ctx: dict[str, Any]) -> Modal:
        """The form a reflection's button opens: its question and one free-text answer."""
        return Modal(
            title=step.title[:24],
            label=self.text(step.question, ctx)[:2000],
            action="reflection.submit",
            value=str(sp.id),
            placeholder=replies.REFLECTION_PLACEHOLDER,
        )

    def _card(
        self,
        step: AnyStep,
        sp: StepProgress,
        ctx: dict[str, Any],
        body: str,
        buttons: list[Button],
        *,
        reminder: bool,
        kind: str,
    ) -> Message:
        title = f"Reminder: {step.title}" if reminder else step.title
        if reminder:
            body = template("remind", learner=ctx["learner"], step=ctx["step"], due=ctx["due"], overdue=False) + (
                "\n\n" + body if body else ""
            )
        return Message(
            text=f"{title}: {truncate_markdown(body, 150)}",
            title=title,
            body=body,
            buttons=buttons,
            context=f"{ctx['program']['title']}" + (f" · due {ctx['due']}" if ctx["due"] else ""),
            kind=kind,
        )

    def lesson(
        self, scope: Scope, step: LessonStep, sp: StepProgress, ctx: dict[str, Any], *, reminder: bool = False
    ) -> list[Message]:
        buttons = [
            Button("Done", "lesson.done", str(sp.id), "primary"),
            Button("Snooze 2h", "step.snooze", str(sp.id)),
            Button("Remind me tomorrow", "step.tomorrow", str(sp.id)),
        ]
        body = self.text(self.engine.library.body(scope.program.id, step.id), ctx)
        lessons = self._lessons(scope.program)
        number = lessons.index(step) + 1
        intro = "" if reminder else self._objectives(scope.program, step, number)
        if intro:
            body = Markdown(f"{intro}\n\n{body}")
        position = f"Lesson {number} of {len(lessons)}"
        footer = template("lesson_footer", position=position, minutes=step.estimated_minutes, due=ctx["due"])
        if reminder:
            nudge = template("remind", learner=ctx["learner"], step=ctx["step"], due=ctx["due"], overdue=False)
            teaser = truncate_markdown(split_markdown(body)[0], 400)
            return [
                Message(
                    text=f"Reminder: {step.title}",
                    title=f"Reminder: {step.title}",
                    body=f"{nudge}\n\n{teaser}",
                    buttons=buttons,
                    context=footer,
                    kind="lesson",
                )
            ]
        first = split_markdown(body)[0]
        return in_parts(
            Message(
                text=f"{step.title}: {truncate_markdown(first, 150)}",
                title=step.title,
                body=body,
                buttons=buttons,
                context=footer,
                kind="lesson",
            )
        )

    # ------------------------------------------------------------------ quizzes
    def quiz(
        self,
        session: Session,
        sp: StepProgress,
        step: QuizStep,
        ctx: dict[str, Any] | None = None,
        *,
        feedback: str = "",
        reminder: bool = False,
    ) -> Message:
        """The quiz card in its current state: the next question, or the final result with Retry if allowed."""
        if ctx is None:
            enrollment = batch.get(session, Enrollment, sp.enrollment_id)
            assert enrollment is not None
            ctx = self.template_context(session, self.scope(session, enrollment), step, sp)
        state = self.engine.quiz_state(sp)
        attempt, qi = state["attempt"], state["q"]
        parts: list[str] = []
        if reminder:
            parts.append(template("remind", learner=ctx["learner"], step=ctx["step"], due=ctx["due"], overdue=False))
        if feedback:
            parts.append(feedback)
        buttons: list[Button] = []
        total = len(step.questions)
        if sp.state in (StepState.DONE, StepState.FAILED) or qi >= total:
            score = round(100 * (state["correct"] / total))
            if sp.passed:
                parts.append(f"**You scored {score}%. Passed.** Nicely done.")
            elif sp.state == StepState.DONE:
                parts.append(f"**You scored {score}%.** Thanks for taking the quiz.")
            elif attempt < step.retry.max_attempts and sp.state != StepState.FAILED:
                parts.append(
                    f"**You scored {score}%.** The pass mark is {round(step.pass_mark * 100)}%. "
                    f"You have {step.retry.max_attempts - attempt} more attempt(s)."
                )
                buttons.append(Button("Try again", "quiz.retry", str(sp.id), "primary"))
            else:
                parts.append(f"**You scored {score}%.** That was the last attempt; your lead can help you review it.")
        else:
            if qi == 0 and step.intro and not feedback:
                parts.append(self.text(step.intro, ctx))
            q = step.questions[qi]
            head = f"**Question {qi + 1} of {total}**" + (" (choose all that apply)" if q.multiple else "")
            parts.append(f"{head}\n{self.text(q.text, ctx)}")
            selected = set(state["selected"])
            for i, opt in enumerate(q.options):
                value = f"{sp.id}.{attempt}.{qi}.{i}"
                if q.multiple:
                    label = ("☑ " if i in selected else "☐ ") + opt.text
                    buttons.append(Button(label[:75], "quiz.toggle", value))
                else:
                    buttons.append(Button(opt.text[:75], "quiz.answer", value))
            if q.multiple:
                buttons.append(Button("Submit answer", "quiz.submit", f"{sp.id}.{attempt}.{qi}", "primary"))
            if len(q.options) > 3 or any(len(o.text) > 30 for o in q.options):
                parts.append("\n".join(f"{chr(65 + i)}. {o.text}" for i, o in enumerate(q.options)))
        body = "\n\n".join(p for p in parts if p)
        title = step.title
        return Message(
            text=f"{title}: {truncate_markdown(body, 150)}",
            title=title,
            body=body,
            buttons=buttons,
            context=f"Attempt {attempt} of {step.retry.max_attempts} · pass mark {round(step.pass_mark * 100)}%",
            kind="quiz",
        )

    def answer_feedback(self, step: QuizStep, qi: int, choice: list[int], correct: bool, ctx: dict[str, Any]) -> str:
        q = step.questions[qi]
        lines = [("✅ **Correct.**" if correct else "❌ **Not quite.**") + f" _{self.text(q.text, ctx)}_"]
        for i in choice:
            opt = q.options[i]
            if opt.feedback:
                lines.append(f"- {opt.text}: {self.text(opt.feedback, ctx)}")
        if not correct:
            right = ", ".join(o.text for o in q.options if o.correct)
            lines.append(f"Correct answer: **{right}**")
        if q.explanation:
            lines.append(self.text(q.explanation, ctx))
        return "\n".join(lines)

    # ------------------------------------------------------------------ live sessions
    def invite(
        self,
        session: Session,
        scope: Scope,
        step: SessionStep,
        sp: StepProgress,
        ctx: dict[str, Any],
        *,
        reminder: bool = False,
    ) -> Message:
        live = session.scalar(_COHORT_SESSION, {"cohort_id": scope.cohort.id, "step_id": step.id})
        assert live is not None
        done = set(session.scalars(_DONE_STEPS, {"enrollment_id": scope.enrollment.id}))
        prework = [{"title": scope.program.step(p).title, "done": p in done} for p in step.prework]
        svars = ctx["session"]
        body = template(
            "session_invite",
            description=self.text(step.description, ctx),
            agenda=[self.text(a, ctx) for a in step.agenda],
            prework=prework,
            moved=live.sequence > 0,
            cancelled=live.cancelled_at is not None,
            session=svars,
        )
        fields = [Field("When", svars["start_local"]), Field("Duration", svars["duration"])]
        if live.join_url:
            fields.append(Field("Join", f"[{live.join_url}]({live.join_url})"))
        if step.location:
            fields.append(Field("Where", step.location))
        if live.capacity:
            fields.append(Field("Places", str(live.capacity)))
        buttons = [] if live.cancelled_at is not None else [
            Button("Going", "rsvp.yes", str(sp.id), "primary"),
            Button("Maybe", "rsvp.maybe", str(sp.id)),
            Button("Can't make it", "rsvp.no", str(sp.id)),
        ]
        if live.join_url and live.cancelled_at is None:
            buttons.append(Button("Join", "session.join", str(sp.id), url=live.join_url))
        title = f"{'Cancelled' if live.cancelled_at is not None else 'Live session'}: {live.title}"
        return Message(
            text=f"{title} on {svars['start_local']}",
            title=title,
            body=body,
            fields=fields,
            buttons=buttons,
            attachments=[self.calendar_file(session, scope, live, step)],
            context=f"{scope.program.title} · times shown in {scope.tz}",
            kind="session",
        )

    def calendar_file(self, session: Session, scope: Scope, live: LiveSessionRow, step: SessionStep) -> Attachment:
        """The learner's own ``.ics`` for ``live`` at its current revision (see :mod:`bot.ics`)."""
        rsvp = session.scalar(_RSVP, {"session_id": live.id, "enrollment_id": scope.enrollment.id})
        # Read now, written when an adapter needs the bytes (one that uploads files, or serves a link to them; the
        # console only names the file): the invite is the state of this moment either way.
        invite = functools.partial(
            ics.session_invite,
            uid=ics.uid(scope.cohort.id, step.id, self.engine.settings.live.uid_domain),
            title=live.title,
            description=f"{scope.program.title} · {scope.cohort.name}",
            start=live.start_at,
            end=live.end_at,
            url=live.join_url,
            location=step.location,
            stamp=self.engine.clock.now(),
            organizer=self.organizer(session, scope.cohort),
            attendee=ics.Party.of(
                scope.person.email, scope.person.name, f"urn:uuid:{scope.enrollment.registration}"
            ),
            rsvp=rsvp,
            sequence=live.sequence,
            cancelled=live.cancelled_at is not None,
        )
        return Attachment(f"{step.id}.ics", b"", "text/calendar", title=live.title,
                          source=f"{INVITE_SOURCE}:{scope.enrollment.id}:{step.id}", draw=invite)

    def remake(self, session: Session, source: str) -> Attachment | None:
        """The attachment ``source`` names (:attr:`Attachment.source`) at the current state, or ``None`` when it
        names nothing (a malformed source, a deleted enrolment, a step that is no longer a session)."""
        kind, _, rest = source.partition(":")
        enrollment_id, _, step_id = rest.partition(":")
        if kind != INVITE_SOURCE or not enrollment_id.isdigit() or not step_id:
            return None
        enrollment = session.get(Enrollment, int(enrollment_id))
        if enrollment is None:
            return None
        scope = self.scope(session, enrollment)
        step = next((s for s in scope.program.sessions if s.id == step_id), None)
        live = session.scalar(_COHORT_SESSION, {"cohort_id": scope.cohort.id, "step_id": step_id})
        return None if step is None or live is None else self.calendar_file(session, scope, live, step)

    def organizer(self, session: Session, cohort: Cohort) -> ics.Party:
        """The invite's organizer: a lead of the cohort with a known email, else ``live.organizer``, else the
        installation's ``live-sessions@<ics domain>`` (RFC 5546 requires an organizer on every request)."""
        lead = session.execute(_ORGANIZER, {"cohort_id": cohort.id}).first()
        live = self.engine.settings.live
        if lead is not None:
            return ics.Party.of(lead.email, lead.name, "")
        return ics.Party(f"mailto:{live.organizer or 'live-sessions@' + live.uid_domain}", "Blendwise")

    def session_change(self, session: Session, sp: StepProgress) -> list[Message] | None:
        """After a move or a cancellation: the invite the learner already has, updated in place (its ``replaces``
        names it), then a short notice carrying the new calendar file (same UID, higher SEQUENCE)."""
        enrollment, live = self.engine.session_for_progress(session, sp)
        scope = self.scope(session, enrollment)
        step = scope.program.step(sp.step_id)
        assert isinstance(step, SessionStep)
        ctx = self.template_context(session, scope, step, sp)
        card = self.invite(session, scope, step, sp, ctx)
        calendar = card.attachments
        cancelled = live.cancelled_at is not None
        body = template("session_change", session=ctx["session"], cancelled=cancelled)
        title = f"{'Cancelled' if cancelled else 'Moved'}: {live.title}"
        notice = Message(text=f"{title} ({ctx['session']['start_local']})", title=title, body=body,
                         attachments=calendar, context=scope.program.title, kind="session")
        if not sp.message_ref:
            return [notice]
        card.kept_attachments, card.attachments = card.attachments, []
        card.replaces = MessageRef.decode(sp.message_ref)
        return [card, notice]

    def session_reminder(self, session: Session, sp: StepProgress, *, checkin: bool) -> Message:
        enrollment, live = self.engine.session_for_progress(session, sp)
        scope = self.scope(session, enrollment)
        step = scope.program.step(sp.step_id)
        assert isinstance(step, SessionStep)
        svars = self.session_vars(live, scope.tz, step)
        now = self.engine.clock.now()
        buttons: list[Button] = []
        if checkin:
            body = template("checkin", session=svars)
            title = f"Check in: {live.title}"
        else:
            delta = live.start_at - now
            hours = delta.total_seconds() / 3600
            when = f"in {round(delta.total_seconds() / 60)} minutes" if hours < 1.5 else (
                f"in about {round(hours)} hours" if hours < 30 else f"on {svars['start_date']}")
            done = {
                r.step_id
                for r in session.scalars(
                    select(StepProgress).where(
                        StepProgress.enrollment_id == enrollment.id, StepProgress.state == StepState.DONE
                    )
                )
            }
            unfinished = [scope.program.step(p).title for p in step.prework if p not in done]
            body = template("session_remind", session=svars, when=when, unfinished=unfinished)
            title = f"Coming up: {live.title}"
        if self.engine.checkin_open(live, now):
            buttons.append(Button("Check in", "session.checkin", str(sp.id), "primary"))
        if live.join_url:
            buttons.append(Button("Join link", "session.join", str(sp.id), url=live.join_url))
        return Message(text=f"{title} ({svars['start_local']})", title=title, body=body, buttons=buttons,
                       context=scope.program.title, kind="session")

    # ------------------------------------------------------------------ misc
    def autopause(self, session: Session, enrollment: Enrollment) -> Message:
        scope = self.scope(session, enrollment)
        body = template(
            "autopause",
            learner={"first_name": scope.person.first_name},
            program={"title": scope.program.title},
        )
        return Message(
            text=f"Reminders paused for {scope.program.title}",
            title="Reminders paused",
            body=body,
            buttons=[Button("Resume", "enrollment.resume", str(enrollment.id), "primary")],
            kind="notice",
        )

    def cohort_prompt(self, session: Session, cohort: Cohort, step_id: str | None, text: str, *, title: str) -> Message:
        body = template("cohort_prompt", text=text)
        return Message(text=f"{title}: {text[:150]}", title=title, body=body, kind="prompt",
                       context=inert_line(cohort.name))

    def authored_prompt(self, session: Session, cohort: Cohort, step: PromptStep) -> Message:
        program = self.engine.library.program(cohort.program_id)
        ctx: dict[str, Any] = {
            "learner": {"name": "everyone", "first_name": "everyone", "tz": cohort.tz},
            "cohort": {"name": cohort.name, "start_date": cohort.start_date.isoformat(), "channel": cohort.channel},
            "program": {"title": program.title, "id": program.id},
            "step": {"title": step.title, "id": step.id, "kind": step.kind},
            "due": "",
            "session": {},
        }
        live = session.scalars(
            select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort.id).order_by(LiveSessionRow.start_at)
        ).first()
        if live is not None:
            ctx["session"] = self.session_vars(live, cohort.tz)
        return self.cohort_prompt(session, cohort, step.id, self.text(step.text, ctx), title=f"Discussion: {step.title}")
