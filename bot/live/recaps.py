"""Recordings, transcripts, recaps and catch-up lessons.

The life of a session's recap::

    attach (recording URL + transcript)  ->  recap_state "pending"
    generate (LLM, or offline extractive) ->  "draft"      the lead reviews and may edit
    release                               ->  "released"   catch-ups + recording links go out through the outbox

Generation calls the LLM outside any database transaction (it can take a minute and is retried), so it runs
after the attaching transaction has committed: on a worker thread in production, inline under a virtual clock.

On release, each enrolled learner gets exactly one DM: learners who missed the session (step state ``missed``)
get the catch-up lesson (summary, key points, recording link, the recap quiz if there is one, and a Done button);
everyone else gets the recording link. Delivery keys (``catchup:<session>:<enrolment>``,
``recording:<session>:<enrolment>``) make releasing twice harmless.

Completing a catch-up records a ``caught-up`` event. When the program's ``completion.allow_catch_up`` is true it
also fills the attendance row (``source = 'catch_up'``) so the attendance rule counts it, and program completion
is re-checked. Reports still tell the two apart: ``sessions_attended`` excludes catch-ups and
``sessions_caught_up`` counts them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.errors import InvalidInput, NotFound
from bot.journeys.chunks import MAX_CHUNK, truncate_markdown
from bot.journeys.context import FINAL_STATES, hold_enrollment, touch
from bot.journeys.quizzes import grade
from bot.live.llm import LLMRejected, LLMUnavailable, RecapQuestion
from bot.live.models import LiveCatchup
from bot.live.purposes import CATCHUP, RECAP_READY, RECORDING
from bot.live.summarize import extractive_recap
from bot.live.transcripts import parse_transcript
from bot.markup import Markdown
from bot.messages import Button, Message
from bot.nudges.purposes import DueRow, Purpose, enqueue
from bot.states import EnrollmentStatus, StepState, Verb
from bot.storage.db import transaction
from bot.storage.events import object_id, record_for
from bot.storage.models import (
    Attendance,
    Cohort,
    CohortLead,
    Delivery,
    Enrollment,
    LiveSessionRow,
    Person,
    StepProgress,
)
from bot.templating import add_search_path, template

if TYPE_CHECKING:
    from bot.live.service import Live

log = logging.getLogger(__name__)

URL = re.compile(r"^https?://\S{1,490}$")


# The feature's wording sits next to its code, on the one template loader's search path.
add_search_path(Path(__file__).resolve().parent / "templates")


class EditedRecap(BaseModel):
    """A recap as a lead edits it (YAML): the summary and key points, and an optional recap quiz."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=4000)
    key_points: list[str] = Field(default_factory=list, max_length=10)
    questions: list[RecapQuestion] = Field(default_factory=list, max_length=5)


@dataclass(frozen=True)
class Attached:
    speakers: list[str]
    minutes: int | None
    format: str
    has_transcript: bool


@dataclass(frozen=True)
class Released:
    catchups: int
    recordings: int


def recap_of(live: LiveSessionRow) -> dict[str, Any]:
    """The recap as the lead works on it: the latest draft (or the released text, when nothing newer exists)."""
    return dict(live.recap or {})


#: The parts of a recap that reach learners; a release copies them (with the transcript) into ``recap["released"]``.
RELEASED_PARTS = ("summary", "key_points", "questions", "source", "model")


def released_recap(live: LiveSessionRow) -> dict[str, Any]:
    """What learners and search see: the version a lead released last, never a newer draft (empty before the
    first release). A recap released before versions were kept has no snapshot: its top level is that version."""
    recap = dict(live.recap or {})
    if isinstance(recap.get("released"), dict):
        return dict(recap["released"])
    if live.recap_state == "released":
        return {**{k: recap[k] for k in RELEASED_PARTS if k in recap}, "transcript": live.transcript}
    return {}


def keep_released(live: LiveSessionRow) -> None:
    """Before anything new (a transcript, an AI or offline draft, an edit) touches a released recap, pin the
    released version, so learners keep it until a lead releases the new draft."""
    if live.recap_state == "released" and not isinstance((live.recap or {}).get("released"), dict):
        live.recap = {**recap_of(live), "released": released_recap(live)}


#: The late-joiner pass runs after every tick; its idle check is this one statement, built once.
_NEWEST_ENROLLMENT = select(func.max(Enrollment.id))


class Recaps:
    def __init__(self, live: Live) -> None:
        self.live = live
        self.engine = live.engine
        #: The newest enrolment :meth:`catch_up_late_joiners` has looked at (0 after a start: one full pass).
        self._late_seen = 0

    # ------------------------------------------------------------------ attach
    def attach(
        self,
        session: Session,
        row: LiveSessionRow,
        *,
        recording_url: str | None,
        transcript: bytes | str | None = None,
        filename: str = "transcript.txt",
        requested_by: Person | None = None,
    ) -> Attached:
        """Store the recording link and the cleaned transcript; generation follows after the commit."""
        if recording_url is not None:
            recording_url = recording_url.strip().strip("<>")
            if not URL.match(recording_url):
                raise InvalidInput(f"'{recording_url[:80]}' is not an http(s) link to the recording.")
            row.recording_url = recording_url
        if transcript is None:
            if recording_url is None:
                raise InvalidInput("Give a recording link, a transcript file, or both.")
            return Attached([], None, "", False)
        parsed = parse_transcript(transcript, filename)
        keep_released(row)
        row.transcript = parsed.text
        recap = recap_of(row)
        recap.update(
            {
                "transcript": {
                    "filename": Path(filename).name,
                    "format": parsed.format,
                    "speakers": parsed.speakers,
                },
                "requested_by": requested_by.id if requested_by else None,
            }
        )
        row.recap = recap
        row.recap_state = "pending"  # a new draft follows, even for a released recap: the lead reviews it first
        minutes = round(parsed.duration / 60) if parsed.duration else None
        return Attached(parsed.speakers, minutes, parsed.format, True)

    # ------------------------------------------------------------------ generate
    def generate(self, session_id: int) -> dict[str, Any]:
        """Draft the recap: read (one transaction), ask the model (none), store (another)."""
        with self.live.factory() as session:
            row = session.get(LiveSessionRow, session_id)
            if row is None:
                raise NotFound("live session", session_id)
            if not row.transcript:
                raise InvalidInput(f"'{row.title}' has no transcript yet; attach one first.")
            title, transcript = row.title, row.transcript
            hosts = session.scalars(
                select(Person.name)
                .join(CohortLead, CohortLead.person_id == Person.id)
                .where(CohortLead.cohort_id == row.cohort_id)
                .order_by(Person.id)
            ).all()
        draft: dict[str, Any]
        note = ""
        llm = self.live.llm
        if llm is not None:
            try:
                ai = llm.recap(title, transcript)
                draft = {
                    "summary": ai.summary,
                    "key_points": ai.key_points,
                    "questions": [q.model_dump(mode="json", exclude_defaults=False) for q in ai.questions],
                    "source": "llm",
                    "model": llm.model,
                }
            except (LLMRejected, LLMUnavailable) as exc:
                log.warning("AI recap for session %s failed, using the offline summary: %s", session_id, exc)
                note = f"The AI recap failed ({exc}); this is the offline summary, with no recap quiz."
                draft = self._offline(transcript, hosts)
        else:
            draft = self._offline(transcript, hosts)
        with transaction(self.live.factory) as session:
            row = session.get(LiveSessionRow, session_id)
            assert row is not None
            keep_released(row)
            recap = recap_of(row)
            recap.update(draft)
            recap["note"] = note
            recap["generated_at"] = self.live.clock.now().isoformat()
            row.recap = recap
            # Always a draft, also when a version is released: learners and search keep that one until a release.
            row.recap_state = "draft"
            now = self.live.clock.now()
            for lead in self._reviewers(session, row, recap.get("requested_by")):
                enqueue(
                    session,
                    RECAP_READY,
                    (row.id, f"{now.timestamp():.0f}.{lead}"),
                    now=now,
                    person_id=lead,
                    cohort_id=row.cohort_id,
                    payload={"session_id": row.id},
                )
            return recap

    @staticmethod
    def _reviewers(session: Session, row: LiveSessionRow, requested_by: int | None) -> list[int]:
        """Who reviews a new draft: the lead who asked for it, or (from the CLI, where nobody asked in chat) the
        cohort's leads."""
        if requested_by and session.get(Person, requested_by) is not None:
            return [requested_by]
        return list(session.scalars(select(CohortLead.person_id).where(CohortLead.cohort_id == row.cohort_id)))

    @staticmethod
    def _offline(transcript: str, hosts: Sequence[str]) -> dict[str, Any]:
        offline = extractive_recap(transcript, hosts=hosts)
        return {
            "summary": offline.summary,
            "key_points": offline.key_points,
            "questions": [],
            "source": "offline",
            "model": None,
        }

    def generate_later(self, session: Session, row: LiveSessionRow) -> None:
        session_id = row.id

        def job() -> None:
            try:
                self.generate(session_id)
            except Exception:
                log.exception("drafting the recap of session %s failed", session_id)

        self.live.after_commit(session, job)

    # ------------------------------------------------------------------ review and edit
    def missed(self, session: Session, row: LiveSessionRow) -> list[tuple[Enrollment, StepProgress]]:
        """Learners who missed the session: state ``missed``, or (before the tick has marked them) no attendance
        once check-in has closed."""
        now = self.live.clock.now()
        closed = now >= max(row.end_at, row.checkin_closes_at)
        out = []
        for enrollment, sp, attended in session.execute(
            select(Enrollment, StepProgress, Attendance.attended_at)
            .join(StepProgress, StepProgress.enrollment_id == Enrollment.id)
            .outerjoin(
                Attendance, (Attendance.enrollment_id == Enrollment.id) & (Attendance.session_id == row.id)
            )
            .where(
                Enrollment.cohort_id == row.cohort_id,
                StepProgress.step_id == row.step_id,
                Enrollment.status != EnrollmentStatus.DROPPED,
            )
            .order_by(Enrollment.id)
        ):
            # A late joiner (``n/a``: the session had started when they enrolled) gets the catch-up too.
            if sp.state in (StepState.MISSED, StepState.NOT_APPLICABLE) or (
                closed and attended is None and sp.state not in FINAL_STATES
            ):
                out.append((enrollment, sp))
        return out

    def review_text(self, session: Session, row: LiveSessionRow) -> str:
        recap = recap_of(row)
        cohort = session.get(Cohort, row.cohort_id)
        if row.recap_state == "pending":
            return f"The recap of '{row.title}' is still being drafted; try again in a minute."
        if row.recap_state not in ("draft", "released"):
            if row.recording_url:
                return (
                    f"'{row.title}' has a recording but no transcript, so there is no recap to review. "
                    "Releasing sends the recording link (and a catch-up with it to those who missed it)."
                )
            raise InvalidInput(
                f"'{row.title}' has no recording or transcript yet: `/learn recording {row.step_id} <url>`"
            )
        source = {
            "llm": f"AI draft ({recap.get('model')})",
            "offline": "offline summary (no AI configured)",
            "edited": "edited by a lead",
        }.get(recap.get("source", ""), "draft")
        if row.recap_state == "released":
            source += " · released"
        elif released_recap(row):
            source += " · a new version: learners still see the released one until you release this"
        return template(
            "recap_review",
            title=row.title,
            cohort=cohort.name if cohort else "",
            source=source,
            note=recap.get("note", ""),
            summary=recap.get("summary", ""),
            key_points=recap.get("key_points", []),
            questions=recap.get("questions", []),
            missed=len(self.missed(session, row)),
        )

    def export_yaml(self, row: LiveSessionRow) -> str:
        recap = recap_of(row)
        data = {
            "summary": recap.get("summary", ""),
            "key_points": recap.get("key_points", []),
            "questions": recap.get("questions", []),
        }
        head = (
            f"# Recap of '{row.title}' (session {row.step_id}). Edit, then load it with\n"
            f"#   blendwise session recap {row.step_id} --cohort <cohort> --edit <this file>\n"
        )
        return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)

    def edit(self, session: Session, row: LiveSessionRow, text: str, *, shown: str = "recap") -> None:
        """Replace the draft with a lead's edited YAML, validated like a generated recap."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise InvalidInput(f"{shown}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{shown}: expected keys summary, key_points and questions")
        try:
            edited = EditedRecap.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InvalidInput(f"{shown}: {loc}: {err['msg']}") from None
        keep_released(row)
        recap = recap_of(row)
        recap.update(
            {
                "summary": edited.summary.strip(),
                "key_points": edited.key_points,
                "questions": [q.model_dump(mode="json") for q in edited.questions],
                "source": "edited",
                "note": "",
                "edited_at": self.live.clock.now().isoformat(),
            }
        )
        row.recap = recap
        row.recap_state = "draft"  # an edit of a released recap is a new version, released like the first

    # ------------------------------------------------------------------ release
    def release(self, session: Session, row: LiveSessionRow) -> Released:
        if row.recap_state == "pending":
            raise InvalidInput(
                f"The recap of '{row.title}' is still being drafted; release it when it is ready."
            )
        if row.recap_state not in ("draft", "released") and not row.recording_url:
            raise InvalidInput(
                f"'{row.title}' has nothing to release yet: attach a recording and transcript first."
            )
        now = self.live.clock.now()
        if now < row.end_at:
            raise InvalidInput(f"'{row.title}' has not finished yet; release its recap after the session.")
        recap = recap_of(row)
        if row.recap_state in ("draft", "released"):
            recap["released"] = {
                **{k: recap[k] for k in RELEASED_PARTS if k in recap},
                "transcript": row.transcript,
                "released_at": now.isoformat(),
            }
            row.recap = recap
            row.summary = recap.get("summary")
        row.recap_state = "released"
        self.live.search.index_session(session, row)
        missed = {e.id: sp for e, sp in self.missed(session, row)}
        existing = set(
            session.scalars(
                select(Delivery.key).where(
                    Delivery.key.in_(
                        [CATCHUP.key(row.id, eid) for eid in missed]
                        + [RECORDING.key(row.id, e) for e in self._enrollment_ids(session, row)]
                    )
                )
            )
        )
        catchups = recordings = 0
        for enrollment in session.scalars(
            select(Enrollment).where(Enrollment.cohort_id == row.cohort_id, Enrollment.status != EnrollmentStatus.DROPPED)
        ):
            sp = missed.get(enrollment.id)
            if sp is not None:
                if CATCHUP.key(row.id, enrollment.id) in existing or RECORDING.key(row.id, enrollment.id) in existing:
                    continue
                self._send_catchup(session, row, enrollment, sp)
                catchups += 1
            elif row.recording_url:
                if RECORDING.key(row.id, enrollment.id) in existing or CATCHUP.key(row.id, enrollment.id) in existing:
                    continue
                self._queue(session, row, RECORDING, enrollment, None, {"session_id": row.id})
                recordings += 1
        return Released(catchups, recordings)

    def _send_catchup(self, session: Session, row: LiveSessionRow, enrollment: Enrollment, sp: StepProgress) -> None:
        catchup = session.scalar(
            select(LiveCatchup).where(LiveCatchup.session_id == row.id, LiveCatchup.enrollment_id == enrollment.id)
        )
        if catchup is None:
            catchup = LiveCatchup(
                session_id=row.id,
                enrollment_id=enrollment.id,
                progress_id=sp.id,
                state="sent",
                created_at=self.live.clock.now(),
            )
            session.add(catchup)
            session.flush()
        self._queue(session, row, CATCHUP, enrollment, sp.id, {"catchup_id": catchup.id})

    def catch_up_late_joiners(self, session: Session) -> int:
        """After each tick: learners who enrolled after a session started (step ``n/a``) and after its recap was
        released get its catch-up lesson, as those who missed it did. Only enrolments newer than the last pass are
        looked at, so an idle tick costs one ``max(id)``."""
        last = session.scalar(_NEWEST_ENROLLMENT) or 0
        if last <= self._late_seen:
            return 0
        rows = session.execute(
            select(LiveSessionRow, Enrollment, StepProgress)
            .join(Enrollment, Enrollment.cohort_id == LiveSessionRow.cohort_id)
            .join(
                StepProgress,
                (StepProgress.enrollment_id == Enrollment.id) & (StepProgress.step_id == LiveSessionRow.step_id),
            )
            .outerjoin(
                LiveCatchup,
                (LiveCatchup.session_id == LiveSessionRow.id) & (LiveCatchup.enrollment_id == Enrollment.id),
            )
            .where(
                Enrollment.id > self._late_seen,
                Enrollment.id <= last,
                Enrollment.status == EnrollmentStatus.ACTIVE,
                LiveSessionRow.recap_state == "released",
                StepProgress.state == StepState.NOT_APPLICABLE,
                LiveCatchup.id.is_(None),
            )
            .order_by(Enrollment.id)
        ).all()
        for row, enrollment, sp in rows:
            self._send_catchup(session, row, enrollment, sp)
        self._late_seen = last
        return len(rows)

    @staticmethod
    def _enrollment_ids(session: Session, row: LiveSessionRow) -> list[int]:
        return list(session.scalars(select(Enrollment.id).where(Enrollment.cohort_id == row.cohort_id)))

    def _queue(
        self,
        session: Session,
        row: LiveSessionRow,
        purpose: Purpose,
        enrollment: Enrollment,
        progress_id: int | None,
        payload: dict[str, Any],
    ) -> None:
        enqueue(
            session,
            purpose,
            (row.id, enrollment.id),
            now=self.live.clock.now(),
            person_id=enrollment.person_id,
            enrollment_id=enrollment.id,
            progress_id=progress_id,
            cohort_id=enrollment.cohort_id,
            payload=payload,
        )

    # ------------------------------------------------------------------ catch-up lessons
    def catchup(self, session: Session, catchup_id: int | str, person: Person) -> LiveCatchup:
        try:
            cid = int(str(catchup_id).split(".")[0])
        except ValueError:
            raise InvalidInput("That button is no longer valid.") from None
        c = session.get(LiveCatchup, cid)
        if c is None:
            raise NotFound("catch-up", cid)
        enrollment = session.get(Enrollment, c.enrollment_id)
        if enrollment is None or enrollment.person_id != person.id:
            from bot.errors import PermissionDenied

            raise PermissionDenied("That catch-up belongs to someone else.")
        # Every catch-up action (Done, a recap answer) changes the learner's state: serialise them per learner, so
        # two presses at once record one fact.
        if hold_enrollment(session, c.enrollment_id):
            session.refresh(c)
        return c

    def _parts(
        self, session: Session, c: LiveCatchup
    ) -> tuple[LiveSessionRow, Enrollment, Person, dict[str, Any]]:
        row = session.get(LiveSessionRow, c.session_id)
        enrollment = session.get(Enrollment, c.enrollment_id)
        assert row is not None and enrollment is not None
        person = session.get(Person, enrollment.person_id)
        assert person is not None
        return row, enrollment, person, released_recap(row)

    def counts_for_attendance(self, enrollment: Enrollment) -> bool:
        return self.engine.library.program(enrollment.program_id).completion.allow_catch_up

    def card(self, session: Session, c: LiveCatchup) -> Message:
        row, enrollment, person, recap = self._parts(session, c)
        questions = recap.get("questions", [])
        if c.state == "done":
            return self.done_card(session, c)
        summary = recap.get("summary", "")  # the released version (see _parts): never a newer draft
        points = list(recap.get("key_points", []))

        def compose(summary: str, points: list[str]) -> str:
            return template(
                "catchup",
                first_name=person.first_name,
                title=row.title,
                summary=summary,
                key_points=points,
                recording_url=Markdown(row.recording_url or ""),
                questions=len(questions),
                counts=self.counts_for_attendance(enrollment),
            )

        # One message, held to the size of every other message: the last key points give way first (the summary
        # already covers the session), then the summary is shortened at a word.
        body = compose(summary, points)
        while len(body) > MAX_CHUNK and points:
            points.pop()
            body = compose(summary, points)
        while len(body) > MAX_CHUNK and len(summary) > 80:
            summary = truncate_markdown(summary, max(len(summary) - (len(body) - MAX_CHUNK) - 10, 80))
            body = compose(summary, points)
        buttons = []
        if questions:
            buttons.append(Button("Start the recap quiz", "catchup.quiz", str(c.id), "primary"))
        buttons.append(Button("Done", "catchup.done", str(c.id), "default" if questions else "primary"))
        program = self.engine.library.program(enrollment.program_id)
        return Message(
            text=f"Catch-up: {row.title}",
            title=f"Catch-up: {row.title}",
            body=body,
            buttons=buttons,
            context=f"{program.title} · catch-up lesson",
            kind="lesson",
        )

    def done_card(self, session: Session, c: LiveCatchup, feedback: str = "") -> Message:
        row, enrollment, _, recap = self._parts(session, c)
        questions = recap.get("questions", [])
        score = f"{c.correct}/{len(questions)} correct" if questions and c.question >= len(questions) else ""
        body = template(
            "catchup_done",
            title=row.title,
            score=score,
            counts=self.counts_for_attendance(enrollment),
            key_points=recap.get("key_points", []),
            recording_url=Markdown(row.recording_url or ""),
        )
        return Message(
            text=f"Caught up: {row.title}",
            title=f"Catch-up: {row.title}",
            body=(feedback + "\n\n" + body) if feedback else body,
            context="✅ Done",
            kind="lesson",
        )

    def quiz_card(self, session: Session, c: LiveCatchup, feedback: str = "") -> Message:
        row, _, _, recap = self._parts(session, c)
        questions = recap.get("questions", [])
        if c.state == "done" or c.question >= len(questions):
            return self.done_card(session, c, feedback)
        qi = c.question
        q = questions[qi]
        parts = [feedback] if feedback else []
        parts.append(f"**Question {qi + 1} of {len(questions)}**\n{q['text']}")
        options = q["options"]
        if len(options) > 3 or any(len(o["text"]) > 30 for o in options):
            parts.append("\n".join(f"{chr(65 + i)}. {o['text']}" for i, o in enumerate(options)))
        buttons = [
            Button(o["text"][:75], "catchup.answer", f"{c.id}.{qi}.{i}") for i, o in enumerate(options)
        ]
        return Message(
            text=f"Recap quiz: {row.title}",
            title=f"Recap quiz: {row.title}",
            body="\n\n".join(parts),
            buttons=buttons,
            context="Catch-up recap quiz · no pass mark, it is for you",
            kind="quiz",
        )

    def answer(self, session: Session, c: LiveCatchup, qi: int, option: int) -> Message:
        """Grade one recap answer. A stale press (double click, an old card) shows the card as it stands."""
        row, enrollment, _, recap = self._parts(session, c)
        questions = recap.get("questions", [])
        if c.state == "done" or qi != c.question or qi >= len(questions):
            return self.quiz_card(session, c)
        q = questions[qi]
        if not 0 <= option < len(q["options"]):
            raise InvalidInput("Please pick one of the options shown.")
        correct = grade([bool(o.get("correct")) for o in q["options"]], [option])
        now = self.live.clock.now()
        record_for(
            session,
            enrollment,
            ts=now,
            verb=Verb.ANSWERED,
            object_type="question",
            object_id=object_id(enrollment.program_id, row.step_id, q["id"]),
            result={"success": correct, "response": str(option), "extensions": {"catch_up": True}},
        )
        c.correct += int(correct)
        c.question = qi + 1
        lines = [("✅ **Correct.**" if correct else "❌ **Not quite.**") + f" _{q['text']}_"]
        chosen = q["options"][option]
        if chosen.get("feedback"):
            lines.append(f"- {chosen['text']}: {chosen['feedback']}")
        if not correct:
            lines.append(
                "Correct answer: **" + ", ".join(o["text"] for o in q["options"] if o.get("correct")) + "**"
            )
        if q.get("explanation"):
            lines.append(q["explanation"])
        feedback = "\n".join(lines)
        if c.question >= len(questions):
            self.complete(session, c)
        return self.quiz_card(session, c, feedback)

    def complete(self, session: Session, c: LiveCatchup) -> bool:
        """Record the catch-up; count it for attendance when the program allows. Idempotent."""
        if c.state == "done":
            return False
        row, enrollment, _, recap = self._parts(session, c)
        now = self.live.clock.now()
        c.state = "done"
        c.completed_at = now
        questions = recap.get("questions", [])
        result: dict[str, Any] = {"completion": True}
        if questions and c.question >= len(questions):
            result["score"] = {
                "raw": c.correct,
                "min": 0,
                "max": len(questions),
                "scaled": round(c.correct / len(questions), 4),
            }
        record_for(
            session,
            enrollment,
            ts=now,
            verb=Verb.CAUGHT_UP,
            object_type="session",
            object_id=object_id(enrollment.program_id, row.step_id),
            result=result,
            context={"extensions": {"session_id": row.id}},
        )
        touch(enrollment, now)
        if self.counts_for_attendance(enrollment):
            attendance = self.engine.attendance(session, row, enrollment)
            if attendance.attended_at is None:
                attendance.attended_at = now
                attendance.source = "catch_up"
            session.flush()
            self.engine.check_program_completion(session, enrollment)
        return True

    # ------------------------------------------------------------------ rendering for the sender
    def render_catchup(self, session: Session, d: DueRow) -> Message | None:
        c = session.get(LiveCatchup, (d.payload or {}).get("catchup_id"))
        if c is None or c.state == "done":
            return None
        return self.card(session, c)

    def render_recording(self, session: Session, d: DueRow) -> Message | None:
        row = session.get(LiveSessionRow, (d.payload or {}).get("session_id"))
        if row is None or not row.recording_url:
            return None
        summary = truncate_markdown(released_recap(row).get("summary", ""), 500)
        return Message(
            text=f"Recording: {row.title}",
            title=f"Recording: {row.title}",
            body=template("recording", title=row.title, recording_url=Markdown(row.recording_url), summary=summary),
            kind="notice",
        )

    def render_ready(self, session: Session, d: DueRow) -> Message | None:
        row = session.get(LiveSessionRow, (d.payload or {}).get("session_id"))
        if row is None or row.recap_state != "draft":
            return None
        body = self.review_text(session, row)
        return Message(
            text=f"Recap draft ready: {row.title}",
            title=f"Recap draft ready: {row.title}",
            body=body + f"\n\nEdit it with `blendwise session recap {row.step_id} --show` / `--edit FILE`, "
            "or release it as it is.",
            buttons=[Button("Release to the cohort", "recap.release", str(row.id), "primary")],
            kind="notice",
        )
