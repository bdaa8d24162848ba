"""The progression engine: enrolment, unlocking, completion, quizzes, sessions, replies and pauses.

Every public method works inside a caller-provided SQLAlchemy ``Session`` (one unit of work per inbound event or
CLI command) and takes ``now`` from the injected clock. State changes and the learning events that record them are
written in the same transaction, so the log and the state tables never disagree.

Planning is not done here: enrolment *materialises* each learner's timeline (``step_progress`` + ``agenda`` rows)
once, and the tick (:mod:`bot.nudges.tick`) turns due agenda rows into outbox rows set-wise. The only per-learner
Python scheduling work happens at enrolment and when a prerequisite completes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.errors import BlendwiseError, InvalidInput, NotFound, PermissionDenied
from bot.journeys import enrolment
from bot.journeys.library import Library
from bot.journeys.model import (
    AnyStep,
    PollStep,
    Program,
    QuizStep,
    ReflectionStep,
    SessionStart,
    SessionStep,
)
from bot.nudges.purposes import REMIND, Purpose, enqueue
from bot.ports import Profile
from bot.storage.events import object_id, record, record_for
from bot.storage.models import (
    AgendaItem,
    Attendance,
    Cohort,
    CohortLead,
    CohortPost,
    Delivery,
    Enrollment,
    InboundSeen,
    LiveSessionRow,
    Person,
    Poll,
    PollVote,
    QuizAnswer,
    StepProgress,
)
from bot.timewindow import Window, local_instant, zone

log = logging.getLogger(__name__)

FINAL_STATES = ("done", "missed", "failed", "skipped")


@dataclass(frozen=True)
class QuizOutcome:
    """What happened when a learner answered one question."""

    progress: StepProgress
    question_index: int
    correct: bool
    choice: list[int]
    finished: bool
    passed: bool | None
    score: float | None
    duplicate: bool = False


class Engine:
    """Domain operations. Stateless apart from its collaborators, so one instance serves every thread."""

    def __init__(
        self,
        library: Library,
        settings: Settings,
        clock: Clock,
        *,
        profiles: Callable[[str, str, str], Profile | None] | None = None,
    ) -> None:
        """Args:
        profiles: looks up a platform user's display name, time zone and email (Slack ``users.info``, the Discord
            member endpoint). Injected by the composition root, so the engine stays platform-neutral.
        """
        self.library = library
        self.settings = settings
        self.clock = clock
        self.profiles = profiles

    # ------------------------------------------------------------------ people and roles
    def person(
        self,
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
        person = session.scalar(
            select(Person).where(
                Person.platform == platform, Person.workspace == workspace, Person.user_id == user_id
            )
        )
        if person is None:
            if self.profiles is not None and (name is None or tz is None):
                # A new person: ask the platform once for their name and zone, so the very first schedule lands in
                # their working hours. A roster import can still override both later (and locks the zone).
                try:
                    found = self.profiles(platform, workspace, user_id)
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
            person = Person(
                platform=platform,
                workspace=workspace,
                user_id=user_id,
                name=name or user_id,
                tz=tz,
                email=email,
                roles="",
                created_at=self.clock.now(),
            )
            session.add(person)
            session.flush()
        else:
            if name and person.name in ("", person.user_id):
                person.name = name
            if tz and not person.tz_locked and person.tz != tz:
                person.tz = tz
            if email and not person.email:
                person.email = email
        return person

    def is_admin(self, person: Person, platform_roles: Iterable[str] = ()) -> bool:
        if f"{person.platform}:{person.user_id}" in self.settings.admins or "admin" in person.role_set:
            return True
        return person.platform == "discord" and bool(set(platform_roles) & set(self.settings.discord.admin_roles))

    def is_lead(
        self, session: Session, person: Person, cohort: Cohort, platform_roles: Iterable[str] = ()
    ) -> bool:
        if self.is_admin(person, platform_roles):
            return True
        if person.platform == "discord" and set(platform_roles) & set(self.settings.discord.lead_roles):
            return person.workspace == cohort.workspace
        return (
            session.get(CohortLead, {"cohort_id": cohort.id, "person_id": person.id}) is not None
            and person.workspace == cohort.workspace
        )

    def require_lead(
        self, session: Session, person: Person, cohort: Cohort, platform_roles: Iterable[str] = ()
    ) -> None:
        if not self.is_lead(session, person, cohort, platform_roles):
            raise PermissionDenied(f"Only a lead of cohort '{cohort.name}' can do that.")

    def require_admin(self, person: Person, platform_roles: Iterable[str] = ()) -> None:
        if not self.is_admin(person, platform_roles):
            raise PermissionDenied("Only a Blendwise admin can do that.")

    def reports_of(self, session: Session, manager: Person, *, indirect: bool | None = None) -> list[Person]:
        """A manager's reports: direct ones, plus indirect ones when ``digest.include_indirect`` is set."""
        indirect = self.settings.digest.include_indirect if indirect is None else indirect
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

    def person_tz(self, person: Person, cohort: Cohort | None = None) -> str:
        return person.tz or (cohort.tz if cohort else None) or self.settings.timezone

    def window(self, person: Person, cohort: Cohort | None = None, *, respect_pause: bool = True) -> Window:
        wh = self.settings.working_hours
        quiet = self.settings.quiet_hours
        return Window(
            tz=self.person_tz(person, cohort),
            start=wh.start,
            end=wh.end,
            weekdays=wh.weekdays,
            quiet_start=quiet.start if quiet else None,
            quiet_end=quiet.end if quiet else None,
            paused_until=person.paused_until if respect_pause else None,
        )

    # ------------------------------------------------------------------ cohorts
    def cohort_by_name(self, session: Session, workspace: str, name: str) -> Cohort:
        cohort = session.scalar(select(Cohort).where(Cohort.workspace == workspace, Cohort.name == name))
        if cohort is None:
            raise NotFound("cohort", name)
        return cohort

    def create_cohort(
        self,
        session: Session,
        *,
        name: str,
        program_id: str,
        platform: str,
        workspace: str,
        start: date,
        tz: str | None = None,
        channel: str | None = None,
        leads: Iterable[Person] = (),
    ) -> Cohort:
        program = self.library.program(program_id)
        tz = tz or program.tz
        zone(tz)
        if session.scalar(select(Cohort.id).where(Cohort.workspace == workspace, Cohort.name == name)):
            raise InvalidInput(f"A cohort named '{name}' already exists.")
        cohort = Cohort(
            name=name,
            program_id=program_id,
            platform=platform,
            workspace=workspace,
            start_date=start,
            tz=tz,
            channel=channel,
            created_at=self.clock.now(),
        )
        session.add(cohort)
        session.flush()
        for lead in leads:
            session.add(CohortLead(cohort_id=cohort.id, person_id=lead.id))
        for step in program.sessions:
            begin = self.session_start(step, cohort)
            session.add(
                LiveSessionRow(
                    cohort_id=cohort.id,
                    step_id=step.id,
                    title=step.title,
                    start_at=begin,
                    end_at=begin + step.duration,
                    checkin_opens_at=begin - step.checkin.opens_before,
                    checkin_closes_at=begin + step.checkin.closes_after,
                    join_url=step.join_url,
                    capacity=step.capacity,
                )
            )
        session.flush()
        return cohort

    @staticmethod
    def session_start(step: SessionStep, cohort: Cohort) -> datetime:
        if isinstance(step.start, SessionStart):
            return local_instant(
                cohort.start_date + timedelta(days=step.start.day), step.start.at, step.start.tz or cohort.tz
            )
        return step.start.astimezone(UTC)

    def live_session(self, session: Session, cohort: Cohort, step_id: str) -> LiveSessionRow:
        row = session.scalar(
            select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort.id, LiveSessionRow.step_id == step_id)
        )
        if row is None:
            raise NotFound(f"session in cohort '{cohort.name}'", step_id)
        return row

    # ------------------------------------------------------------------ enrolment
    def enroll(self, session: Session, cohort: Cohort, person: Person) -> Enrollment:
        """Enrol ``person`` and materialise their timeline. Enrolling twice returns the existing enrolment.

        This is :meth:`enroll_many` of one, so a single enrolment and a bulk one write the same rows and events.
        """
        enrollment = session.get(Enrollment, self.enroll_many(session, cohort, [person])[person.id])
        assert enrollment is not None
        return enrollment

    def enroll_many(
        self, session: Session, cohort: Cohort, people: Sequence[enrolment.Enrollee]
    ) -> dict[int, int]:
        """Enrol many people with a few bulk statements (see :mod:`bot.journeys.enrolment`).

        Returns ``{person id: enrolment id}`` for everyone given; people already enrolled are left untouched.
        """
        return enrolment.enroll_many(self, session, cohort, people)

    def _reminder_offsets(self, step: AnyStep, program: Program) -> list[timedelta]:
        if not self.settings.nudges.reminders or isinstance(step, SessionStep):
            return []
        policy = step.reminders or program.defaults.reminders
        return list(policy.after) if policy.enabled else []

    # ------------------------------------------------------------------ lookups used by handlers
    def progress(self, session: Session, progress_id: int) -> StepProgress:
        sp = session.get(StepProgress, progress_id)
        if sp is None:
            raise NotFound("step progress", progress_id)
        return sp

    def owned_progress(self, session: Session, progress_id: int, person: Person) -> StepProgress:
        """The progress row, but only if it belongs to ``person``: a button forwarded to someone else does nothing."""
        sp = self.progress(session, progress_id)
        enrollment = session.get(Enrollment, sp.enrollment_id)
        if enrollment is None or enrollment.person_id != person.id:
            raise PermissionDenied("That button belongs to someone else's journey.")
        return sp

    def seen(self, session: Session, key: str | None) -> bool:
        """Record an inbound dedupe key; True if it was already processed (a replay or a double click)."""
        if not key:
            return False
        if session.get(InboundSeen, key) is not None:
            return True
        session.add(InboundSeen(key=key, seen_at=self.clock.now()))
        session.flush()
        return False

    def _context(self, session: Session, sp: StepProgress) -> tuple[Enrollment, Program, AnyStep]:
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        program = self.library.program(enrollment.program_id)
        return enrollment, program, program.step(sp.step_id)

    def _touch(self, enrollment: Enrollment, now: datetime) -> None:
        """Any learner action resets the ignored-nudge counter and lifts an automatic pause."""
        enrollment.last_activity_at = now
        enrollment.nudges_ignored = 0
        enrollment.auto_paused = False

    # ------------------------------------------------------------------ completion
    def complete(self, session: Session, sp: StepProgress, *, source: str = "learner") -> bool:
        """Mark a step done. Returns False when it was already final (idempotent)."""
        if sp.state in FINAL_STATES:
            return False
        now = self.clock.now()
        enrollment, program, step = self._context(session, sp)
        sp.state = "done"
        sp.done_at = now
        if sp.opened_at is None:
            sp.opened_at = now
        self._touch(enrollment, now)
        on_time = sp.due_at is None or now <= sp.due_at
        record_for(
            session,
            enrollment,
            ts=now,
            verb="completed",
            object_type="session" if sp.kind == "session" else "step",
            object_id=object_id(program.id, step.id),
            result={"completion": True, "extensions": {"on_time": on_time, "source": source}},
        )
        session.flush()
        self._release_dependents(session, enrollment, program, step.id, now)
        self.check_program_completion(session, enrollment)
        return True

    def _release_dependents(
        self, session: Session, enrollment: Enrollment, program: Program, step_id: str, now: datetime
    ) -> None:
        dependents = [s for s in program.steps if step_id in s.unlock.after]
        if not dependents:
            return
        person = session.get(Person, enrollment.person_id)
        cohort = session.get(Cohort, enrollment.cohort_id)
        assert person is not None and cohort is not None
        window = self.window(person, cohort, respect_pause=False)
        for dep in dependents:
            sp = session.scalar(
                select(StepProgress).where(
                    StepProgress.enrollment_id == enrollment.id, StepProgress.step_id == dep.id
                )
            )
            if sp is None or sp.waiting_on <= 0:
                continue
            sp.waiting_on -= 1
            if sp.waiting_on:
                continue
            assert sp.unlock_at is not None
            deliver_at = window.next_open(max(sp.unlock_at, now))
            if dep.due and deliver_at > sp.unlock_at:
                sp.due_at = deliver_at + dep.due
            offsets = self._reminder_offsets(dep, program)
            for item in session.scalars(
                select(AgendaItem).where(
                    AgendaItem.progress_id == sp.id,
                    AgendaItem.action.in_(("deliver", "remind")),
                )
            ):
                if item.action == "deliver":
                    item.fire_at = deliver_at
                elif 1 <= item.seq <= len(offsets):
                    item.fire_at = window.next_open(deliver_at + offsets[item.seq - 1])

    def status_counts(self, session: Session, enrollment: Enrollment) -> dict[str, Any]:
        """Progress figures for one enrolment (also used by the completion rule and the learner's `progress`)."""
        program = self.library.program(enrollment.program_id)
        rows = session.scalars(select(StepProgress).where(StepProgress.enrollment_id == enrollment.id)).all()
        by_id = {r.step_id: r for r in rows}
        required = [s for s in program.steps if s.required and s.kind != "session"]
        sessions = [s for s in program.steps if s.kind == "session"]
        attended = session.scalar(
            select(func.count())
            .select_from(Attendance)
            .where(Attendance.enrollment_id == enrollment.id, Attendance.attended_at.is_not(None))
        )
        quizzes = [s for s in program.steps if isinstance(s, QuizStep) and s.required]
        return {
            "required_total": len(required),
            "required_done": sum(1 for s in required if by_id[s.id].state == "done"),
            "sessions_total": len(sessions),
            "sessions_attended": int(attended or 0),
            "quizzes_total": len(quizzes),
            "quizzes_passed": sum(1 for s in quizzes if by_id[s.id].passed),
            "steps_total": len(program.steps),
            "steps_done": sum(1 for r in rows if r.state == "done"),
        }

    def check_program_completion(self, session: Session, enrollment: Enrollment) -> bool:
        if enrollment.status != "active":
            return False
        program = self.library.program(enrollment.program_id)
        rules = program.completion
        c = self.status_counts(session, enrollment)
        needed_sessions = (
            rules.min_sessions_attended
            if rules.min_sessions_attended is not None
            else sum(1 for s in program.sessions if s.required)
        )
        ok = (
            (rules.required_steps == "none" or c["required_done"] >= c["required_total"])
            and (not rules.quizzes_passed or c["quizzes_passed"] >= c["quizzes_total"])
            and c["sessions_attended"] >= needed_sessions
        )
        if not ok:
            return False
        now = self.clock.now()
        enrollment.status = "completed"
        enrollment.completed_at = now
        record_for(
            session,
            enrollment,
            ts=now,
            verb="completed",
            object_type="program",
            object_id=object_id(program.id),
            result={"completion": True},
        )
        # Nothing left to nudge about: cancel the remaining timeline so the tick never looks at it again.
        session.execute(delete(AgendaItem).where(AgendaItem.enrollment_id == enrollment.id))
        return True

    def open_step(self, session: Session, sp: StepProgress) -> None:
        """A learner looked at a step (opened it from a reminder, started a quiz)."""
        if sp.state == "locked":
            sp.state = "open"
            sp.opened_at = self.clock.now()

    # ------------------------------------------------------------------ quizzes
    def quiz_state(self, sp: StepProgress) -> dict[str, Any]:
        state = dict(sp.scratch or {})
        state.setdefault("attempt", max(sp.attempts, 1))
        state.setdefault("q", 0)
        state.setdefault("correct", 0)
        state.setdefault("selected", [])
        return state

    def answer(
        self, session: Session, sp: StepProgress, attempt: int, question_index: int, choice: list[int]
    ) -> QuizOutcome:
        """Grade one answer. A stale or repeated answer (double click, replayed request) records nothing."""
        enrollment, program, step = self._context(session, sp)
        if not isinstance(step, QuizStep):
            raise InvalidInput("That step is not a quiz.")
        state = self.quiz_state(sp)
        if sp.state in FINAL_STATES or attempt != state["attempt"] or question_index != state["q"]:
            return QuizOutcome(sp, question_index, False, choice, sp.state in FINAL_STATES, sp.passed, sp.score, True)
        if question_index >= len(step.questions):
            raise InvalidInput("That question is not part of this quiz.")
        question = step.questions[question_index]
        if not choice or any(c < 0 or c >= len(question.options) for c in choice):
            raise InvalidInput("Please pick one of the options shown.")
        now = self.clock.now()
        self.open_step(session, sp)
        sp.attempts = attempt
        correct_set = {i for i, o in enumerate(question.options) if o.correct}
        correct = set(choice) == correct_set
        session.add(
            QuizAnswer(
                progress_id=sp.id,
                attempt=attempt,
                question_id=question.id,
                choice=",".join(str(c) for c in sorted(choice)),
                correct=correct,
                answered_at=now,
            )
        )
        record_for(
            session,
            enrollment,
            ts=now,
            verb="answered",
            object_type="question",
            object_id=object_id(program.id, step.id, question.id),
            result={
                "success": correct,
                "response": "[,]".join(str(c) for c in sorted(choice)),
                "extensions": {"attempt": attempt},
            },
        )
        self._touch(enrollment, now)
        state["correct"] += int(correct)
        state["q"] = question_index + 1
        state["selected"] = []
        finished = state["q"] >= len(step.questions)
        passed: bool | None = None
        score: float | None = None
        if finished:
            score = state["correct"] / len(step.questions)
            passed = score >= step.pass_mark
            sp.score = score if sp.score is None else max(sp.score, score)
            sp.passed = bool(sp.passed) or passed
            record_for(
                session,
                enrollment,
                ts=now,
                verb="passed" if passed else "failed",
                object_type="step",
                object_id=object_id(program.id, step.id),
                result={
                    "score": {"scaled": round(score, 4), "raw": state["correct"], "min": 0,
                              "max": len(step.questions)},
                    "success": passed,
                    "extensions": {"attempt": attempt},
                },
            )
        sp.scratch = state
        session.flush()
        if finished:
            if passed or step.complete_on == "attempt":
                self.complete(session, sp, source="quiz")
            elif attempt >= step.retry.max_attempts:
                sp.state = "failed"
                sp.done_at = now
        return QuizOutcome(sp, question_index, correct, choice, finished, passed, score)

    def toggle_choice(self, session: Session, sp: StepProgress, attempt: int, qi: int, option: int) -> None:
        state = self.quiz_state(sp)
        if sp.state in FINAL_STATES or attempt != state["attempt"] or qi != state["q"]:
            return
        selected = set(state["selected"])
        selected ^= {option}
        state["selected"] = sorted(selected)
        sp.scratch = state

    def retry_quiz(self, session: Session, sp: StepProgress) -> None:
        _, _, step = self._context(session, sp)
        assert isinstance(step, QuizStep)
        state = self.quiz_state(sp)
        if sp.state in FINAL_STATES:
            raise InvalidInput("This quiz is already finished.")
        if state["q"] < len(step.questions):
            return  # still mid-attempt: nothing to reset (e.g. a double click on Retry)
        if state["attempt"] >= step.retry.max_attempts:
            raise InvalidInput("You have used every attempt for this quiz.")
        sp.scratch = {"attempt": state["attempt"] + 1, "q": 0, "correct": 0, "selected": []}

    # ------------------------------------------------------------------ live sessions
    def attendance(self, session: Session, live: LiveSessionRow, enrollment: Enrollment) -> Attendance:
        row = session.scalar(
            select(Attendance).where(Attendance.session_id == live.id, Attendance.enrollment_id == enrollment.id)
        )
        if row is None:
            row = Attendance(session_id=live.id, enrollment_id=enrollment.id)
            session.add(row)
            session.flush()
        return row

    def session_for_progress(self, session: Session, sp: StepProgress) -> tuple[Enrollment, LiveSessionRow]:
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        live = session.scalar(
            select(LiveSessionRow).where(
                LiveSessionRow.cohort_id == enrollment.cohort_id, LiveSessionRow.step_id == sp.step_id
            )
        )
        if live is None:
            raise NotFound("live session", sp.step_id)
        return enrollment, live

    def rsvp(self, session: Session, sp: StepProgress, answer: str) -> str:
        """Record Going / Maybe / Can't make it. Returns the stored answer ('wait' when the session is full)."""
        if answer not in ("yes", "maybe", "no"):
            raise InvalidInput("RSVP must be yes, maybe or no.")
        enrollment, live = self.session_for_progress(session, sp)
        now = self.clock.now()
        if now >= live.end_at:
            raise InvalidInput("That session has already finished.")
        row = self.attendance(session, live, enrollment)
        if row.rsvp == answer:
            return answer
        stored = answer
        if answer == "yes" and live.capacity is not None and row.rsvp != "yes":
            going = session.scalar(
                select(func.count())
                .select_from(Attendance)
                .where(Attendance.session_id == live.id, Attendance.rsvp == "yes")
            )
            if (going or 0) >= live.capacity:
                stored = "wait"
        previous = row.rsvp
        row.rsvp = stored
        row.rsvp_at = now
        self.open_step(session, sp)
        self._touch(enrollment, now)
        program_id = enrollment.program_id
        if stored == "yes":
            record_for(
                session,
                enrollment,
                ts=now,
                verb="registered",
                object_type="session",
                object_id=object_id(program_id, sp.step_id),
                result={"response": "yes"},
            )
        elif previous == "yes":
            record_for(
                session,
                enrollment,
                ts=now,
                verb="unregistered",
                object_type="session",
                object_id=object_id(program_id, sp.step_id),
                result={"response": stored},
            )
        return stored

    def checkin_open(self, live: LiveSessionRow, now: datetime) -> bool:
        if live.checkin_state == "open":
            return True
        if live.checkin_state == "closed":
            return False
        return live.checkin_opens_at <= now <= live.checkin_closes_at

    def check_in(
        self, session: Session, sp: StepProgress, *, source: str = "checkin", minutes: float | None = None
    ) -> bool:
        """Record attendance. Returns False if already recorded. Raises InvalidInput outside the window."""
        enrollment, live = self.session_for_progress(session, sp)
        now = self.clock.now()
        if source == "checkin" and not self.checkin_open(live, now):
            local = live.start_at.astimezone(zone(self.settings.timezone))
            if now < live.checkin_opens_at:
                raise InvalidInput(
                    f"Check-in for '{live.title}' opens shortly before it starts ({local:%a %d %b, %H:%M %Z})."
                )
            raise InvalidInput(f"Check-in for '{live.title}' has closed. A lead can still mark you present.")
        row = self.attendance(session, live, enrollment)
        if row.attended_at is not None:
            return False
        row.attended_at = now
        row.source = source
        row.minutes = minutes
        record_for(
            session,
            enrollment,
            ts=now,
            verb="attended",
            object_type="session",
            object_id=object_id(enrollment.program_id, sp.step_id),
            result={"extensions": {"source": source, "minutes": minutes}},
            context={"extensions": {"session_id": live.id}},
        )
        if sp.state == "missed":
            # Late attendance recorded by a lead overrides the automatic "missed".
            sp.state = "open"
        self.complete(session, sp, source=source)
        return True

    def set_checkin(self, session: Session, live: LiveSessionRow, state: str) -> None:
        if state not in ("open", "closed", "auto"):
            raise InvalidInput("Use: checkin open|close <session>")
        live.checkin_state = state

    # ------------------------------------------------------------------ prompts, reflections, polls
    def thread_reply(
        self, session: Session, post: CohortPost, person: Person, message_id: str, text: str
    ) -> StepProgress | None:
        """A reply in a cohort thread: participation, and completion of the prompt step if it is one."""
        now = self.clock.now()
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.cohort_id == post.cohort_id, Enrollment.person_id == person.id)
        )
        if enrollment is None:
            return None
        program = self.library.program(enrollment.program_id)
        record(
            session,
            ts=now,
            person_id=person.id,
            verb="replied",
            object_type="prompt",
            object_id=object_id(program.id, post.step_id) if post.step_id else f"cohort/{post.cohort_id}/post/{post.id}",
            enrollment_id=enrollment.id,
            cohort_id=post.cohort_id,
            result={"response": text[:500]},
            context={"extensions": {"message_id": message_id}},
        )
        self._touch(enrollment, now)
        if post.step_id is None:
            return None
        sp = session.scalar(
            select(StepProgress).where(
                StepProgress.enrollment_id == enrollment.id, StepProgress.step_id == post.step_id
            )
        )
        if sp is not None and sp.state not in FINAL_STATES:
            self.complete(session, sp, source="thread")
        return sp

    def reflect(self, session: Session, sp: StepProgress, text: str) -> None:
        enrollment, program, step = self._context(session, sp)
        if not isinstance(step, ReflectionStep):
            raise InvalidInput("That step is not a reflection.")
        words = len(text.split())
        if words < step.min_words:
            raise InvalidInput(f"Please write at least {step.min_words} words (you wrote {words}).")
        if sp.state in FINAL_STATES:
            return
        now = self.clock.now()
        record_for(
            session,
            enrollment,
            ts=now,
            verb="reflected",
            object_type="step",
            object_id=object_id(program.id, step.id),
            result={"response": text[:4000]},
        )
        self.complete(session, sp, source="reflection")

    def poll_for_step(self, session: Session, cohort_id: int, step: PollStep) -> Poll:
        poll = session.scalar(select(Poll).where(Poll.cohort_id == cohort_id, Poll.step_id == step.id))
        if poll is None:
            poll = Poll(
                cohort_id=cohort_id,
                step_id=step.id,
                question=step.question,
                options={"labels": list(step.options)},
                anonymous=step.anonymous,
                multi=step.multi,
                hide_results=False,
                salt=secrets.token_hex(16),
                created_at=self.clock.now(),
            )
            session.add(poll)
            session.flush()
        return poll

    @staticmethod
    def voter_key(poll: Poll, person: Person) -> str:
        if poll.anonymous:
            return hashlib.sha256(f"{poll.salt}:{person.id}".encode()).hexdigest()
        return str(person.id)

    def vote(self, session: Session, poll: Poll, person: Person, option: int) -> list[int]:
        """Cast or change a vote; returns the person's options after the change. One vote per person unless multi."""
        labels = poll.options["labels"]
        if not 0 <= option < len(labels):
            raise InvalidInput("That option is not part of the poll.")
        if poll.closed_at is not None:
            raise InvalidInput("This poll is closed.")
        key = self.voter_key(poll, person)
        mine = session.scalars(select(PollVote).where(PollVote.poll_id == poll.id, PollVote.voter == key)).all()
        chosen = {v.option for v in mine}
        if poll.multi:
            if option in chosen:
                for v in mine:
                    if v.option == option:
                        session.delete(v)
                chosen.discard(option)
            else:
                session.add(PollVote(poll_id=poll.id, voter=key, option=option))
                chosen.add(option)
        elif chosen != {option}:
            for v in mine:
                session.delete(v)
            session.add(PollVote(poll_id=poll.id, voter=key, option=option))
            chosen = {option}
        session.flush()
        return sorted(chosen)

    def poll_counts(self, session: Session, poll: Poll) -> list[int]:
        counts = [0] * len(poll.options["labels"])
        for opt, n in session.execute(
            select(PollVote.option, func.count()).where(PollVote.poll_id == poll.id).group_by(PollVote.option)
        ):
            counts[opt] = n
        return counts

    def step_vote(self, session: Session, sp: StepProgress, option: int, person: Person) -> Poll:
        enrollment, program, step = self._context(session, sp)
        if not isinstance(step, PollStep):
            raise InvalidInput("That step is not a poll.")
        poll = self.poll_for_step(session, enrollment.cohort_id, step)
        self.vote(session, poll, person, option)
        now = self.clock.now()
        record_for(
            session,
            enrollment,
            ts=now,
            verb="voted",
            object_type="step",
            object_id=object_id(program.id, step.id),
            # An anonymous poll's record says that someone voted, never what.
            result=None if poll.anonymous else {"response": str(option)},
        )
        self.complete(session, sp, source="poll")
        return poll

    # ------------------------------------------------------------------ snooze and pause
    def snooze(self, session: Session, sp: StepProgress, until: datetime) -> datetime:
        """Hold reminders for this step until ``until`` and add one reminder then."""
        enrollment = session.get(Enrollment, sp.enrollment_id)
        person = session.get(Person, enrollment.person_id) if enrollment else None
        assert enrollment is not None and person is not None
        cohort = session.get(Cohort, enrollment.cohort_id)
        until = self.window(person, cohort).next_open(until)
        sp.snoozed_until = until
        self._touch(enrollment, self.clock.now())
        # Reminders that would have fired during the snooze are replaced by the single one added below; moving
        # them all to ``until`` would send several identical reminders at once when the snooze ends.
        session.execute(
            delete(AgendaItem).where(
                AgendaItem.progress_id == sp.id,
                AgendaItem.action == "remind",
                AgendaItem.fire_at < until,
            )
        )
        # Fired agenda rows are gone, but their reminders' outbox keys (remind:<progress>:<seq>) are not: pick a
        # sequence number neither the agenda nor the outbox has used, or the new reminder would be deduplicated away.
        # The outbox is asked by exact key (its unique index), a window of candidates at a time.
        last = session.scalar(
            select(func.max(AgendaItem.seq)).where(AgendaItem.progress_id == sp.id, AgendaItem.action == "remind")
        )
        seq = max(100, (last or 0) + 1)
        while True:
            candidates = {REMIND.key(sp.id, n): n for n in range(seq, seq + 16)}
            used = set(session.scalars(select(Delivery.key).where(Delivery.key.in_(candidates))))
            free = [n for key, n in candidates.items() if key not in used]
            if free:
                seq = free[0]
                break
            seq += 16
        session.add(
            AgendaItem(progress_id=sp.id, enrollment_id=sp.enrollment_id, action="remind", seq=seq, fire_at=until)
        )
        session.flush()
        return until

    def snooze_all(self, session: Session, person: Person, delta: timedelta) -> datetime:
        until = self.clock.now() + delta
        open_steps = session.scalars(
            select(StepProgress)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .where(Enrollment.person_id == person.id, StepProgress.state == "open", Enrollment.status == "active")
        ).all()
        for sp in open_steps:
            until = self.snooze(session, sp, self.clock.now() + delta)
        return until

    def pause(self, session: Session, person: Person, until: datetime | None) -> None:
        """Vacation pause: nothing is sent before ``until`` (None resumes). Planned messages wait, nothing is lost."""
        person.paused_until = until
        if until is None:
            session.execute(
                update(Enrollment).where(Enrollment.person_id == person.id).values(auto_paused=False, nudges_ignored=0)
            )
        # The sender parked messages that came due during the old pause at its end. Make them due now, so that
        # resuming early (or shortening the pause) brings them back; the sender re-checks the window either way.
        # Rows waiting out a retry backoff have attempts > 0 and keep their time.
        now = self.clock.now()
        session.execute(
            update(Delivery)
            .where(
                Delivery.person_id == person.id,
                Delivery.state == "pending",
                Delivery.attempts == 0,
                Delivery.due_at > now,
            )
            .values(due_at=now)
        )

    # ------------------------------------------------------------------ cohort communication (lead actions)
    def queue_channel_post(
        self,
        session: Session,
        cohort: Cohort,
        purpose: Purpose,
        payload: dict[str, Any],
        *,
        key: Sequence[object] | None = None,
    ) -> int | None:
        """Plan a post in ``cohort``'s channel, keyed by ``key`` (default: the cohort). Returns the new row's id,
        or ``None`` if that key was planned already."""
        if not cohort.channel:
            raise InvalidInput(f"Cohort '{cohort.name}' has no channel yet; an admin can set one.")
        return enqueue(
            session, purpose, (cohort.id,) if key is None else key, now=self.clock.now(), cohort_id=cohort.id,
            payload=payload,
        )

    def roster(self, session: Session, cohort: Cohort) -> list[tuple[Person, Enrollment, dict[str, Any]]]:
        rows = session.execute(
            select(Person, Enrollment)
            .join(Enrollment, Enrollment.person_id == Person.id)
            .where(Enrollment.cohort_id == cohort.id)
            .order_by(Person.name)
        ).all()
        return [(p, e, self.status_counts(session, e)) for p, e in rows]

    def mark_missed(self, session: Session, progress_ids: list[int]) -> int:
        """Sessions that ended without attendance become ``missed`` (used by the tick for one batch)."""
        now = self.clock.now()
        rows = session.scalars(
            select(StepProgress).where(
                and_(StepProgress.id.in_(progress_ids), StepProgress.state.not_in(FINAL_STATES))
            )
        ).all()
        for sp in rows:
            enrollment = session.get(Enrollment, sp.enrollment_id)
            assert enrollment is not None
            sp.state = "missed"
            record_for(
                session,
                enrollment,
                ts=now,
                verb="missed",
                object_type="session",
                object_id=object_id(enrollment.program_id, sp.step_id),
            )
        return len(rows)
