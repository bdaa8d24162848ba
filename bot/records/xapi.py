"""Learning events as xAPI 1.0.3 statements.

The event log (:class:`~bot.storage.models.LearningEvent`) is already shaped like xAPI; this module only dresses it:
verb IRIs, the actor as a platform account (or ``mbox`` when the roster has an email and ``lrs.use_mbox`` is set),
activity IRIs under ``lrs.activity_base``, a context carrying the enrolment's registration UUID with the cohort as
grouping, and a statement id that is a UUID5 of the event id and an install-specific salt. The id never changes,
so sending a statement again is harmless: an LRS keeps the first copy. The mapping is documented in docs/xapi.md.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import LRSSettings
from bot.journeys.library import Library
from bot.records.models import RecordsCursor
from bot.states import Verb
from bot.storage.models import Cohort, Enrollment, LearningEvent, LiveSessionRow, Person

XAPI_VERSION = "1.0.3"
#: Namespace of statement ids; never change it, or every statement gets a new id and an LRS stores it twice.
STATEMENT_NAMESPACE = uuid.UUID("6f1f0c52-8d4e-5b7a-9a51-3c2f0e4b9d17")
#: Vocabulary of the verbs and extensions no public registry defines. w3id.org is the usual home for permanent
#: xAPI IRIs; the prefix is fixed here because a vocabulary IRI must never move.
VOCAB = "https://w3id.org/blendwise/xapi"

VERB_IRIS: dict[str, str] = {
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "answered": "http://adlnet.gov/expapi/verbs/answered",
    "attended": "http://adlnet.gov/expapi/verbs/attended",
    "registered": "http://adlnet.gov/expapi/verbs/registered",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
    "unregistered": "http://id.tincanapi.com/verb/unregistered",
    "replied": "http://id.tincanapi.com/verb/replied",
    "voted": "http://adlnet.gov/expapi/verbs/responded",
    "opened": "http://activitystrea.ms/schema/1.0/open",
    "delivered": f"{VOCAB}/verbs/delivered",
    "missed": f"{VOCAB}/verbs/missed",
    "reflected": f"{VOCAB}/verbs/reflected",
    "caught-up": f"{VOCAB}/verbs/caught-up",
    "rescheduled": f"{VOCAB}/verbs/rescheduled",
    "cancelled": "http://activitystrea.ms/schema/1.0/cancel",
}

VERB_DISPLAY: dict[str, str] = {
    "caught-up": "caught up",
    "voted": "responded",
    "delivered": "was delivered",
    "rescheduled": "was rescheduled for",
    "cancelled": "was cancelled for",
}

ACTIVITY_TYPES: dict[str, str] = {
    "program": "http://adlnet.gov/expapi/activities/course",
    "step": "http://adlnet.gov/expapi/activities/lesson",
    "quiz": "http://adlnet.gov/expapi/activities/assessment",
    "question": "http://adlnet.gov/expapi/activities/cmi.interaction",
    "session": "http://adlnet.gov/expapi/activities/meeting",
    "prompt": "http://id.tincanapi.com/activitytype/discussion",
    "cohort": f"{VOCAB}/activity-types/cohort",
}

PLATFORM_HOMES = {
    "slack": "https://slack.com/team/{workspace}",
    "discord": "https://discord.com/guilds/{workspace}",
    "console": "https://blendwise.local/console",
}

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
_IRI = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$", re.I)
_MBOX = re.compile(r"^mailto:[^@\s]+@[^@\s]+$")


# ---------------------------------------------------------------------- ids and salt
def cursor(session: Session, name: str, now: datetime) -> RecordsCursor:
    """The named cursor row, created on first use with a fresh random salt."""
    row = session.get(RecordsCursor, name)
    if row is None:
        row = RecordsCursor(name=name, position=0, salt=secrets.token_hex(16), failures=0, updated_at=now)
        session.add(row)
        session.flush()
    return row


def install_salt(session: Session, now: datetime | None = None) -> str:
    """The salt that makes this install's statement ids differ from another install's (event ids both start at 1)."""
    return cursor(session, "lrs", now or datetime.now(UTC)).salt


def statement_id(salt: str, event_id: int) -> str:
    return str(uuid.uuid5(STATEMENT_NAMESPACE, f"{salt}:{event_id}"))


def xapi_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, the form every LRS accepts."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class Interaction:
    """What an LRS needs to decode a ``choice`` response: the question, its options in order, the correct ones."""

    text: str
    options: tuple[str, ...]
    correct: tuple[int, ...]

    def definition(self) -> dict[str, Any]:
        """The xAPI ``choice`` fields: option ids are the indexes the ``response`` uses (``0[,]2``)."""
        return {
            "interactionType": "choice",
            "choices": [{"id": str(i), "description": {"en-US": text}} for i, text in enumerate(self.options)],
            "correctResponsesPattern": ["[,]".join(str(i) for i in self.correct)],
        }


@dataclass
class StatementBuilder:
    """Maps events to statements, caching people, enrolments and cohorts across a batch (no query per event)."""

    session: Session
    library: Library
    settings: LRSSettings
    salt: str
    _people: dict[int, Person] = field(default_factory=dict)
    _enrollments: dict[int, Enrollment] = field(default_factory=dict)
    _cohorts: dict[int, Cohort] = field(default_factory=dict)
    _recaps: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.settings.activity_base.rstrip("/")

    def prefetch(self, events: list[LearningEvent]) -> None:
        people = {e.person_id for e in events} - set(self._people)
        enrollments = {e.enrollment_id for e in events if e.enrollment_id} - set(self._enrollments)
        cohorts = {e.cohort_id for e in events if e.cohort_id} - set(self._cohorts)
        if people:
            self._people.update(
                (p.id, p) for p in self.session.scalars(select(Person).where(Person.id.in_(people)))
            )
        if enrollments:
            self._enrollments.update(
                (e.id, e)
                for e in self.session.scalars(select(Enrollment).where(Enrollment.id.in_(enrollments)))
            )
        if cohorts:
            self._cohorts.update(
                (c.id, c) for c in self.session.scalars(select(Cohort).where(Cohort.id.in_(cohorts)))
            )

    def build_all(self, events: list[LearningEvent]) -> list[dict[str, Any]]:
        self.prefetch(events)
        return [self.build(e) for e in events]

    # ------------------------------------------------------------------ parts
    def actor(self, person: Person) -> dict[str, Any]:
        if self.settings.use_mbox and person.email and "@" in person.email:
            return {"objectType": "Agent", "mbox": f"mailto:{person.email.strip()}"}
        home = PLATFORM_HOMES.get(person.platform, f"{self.base}/platform/{person.platform}/{{workspace}}")
        return {
            "objectType": "Agent",
            "account": {"homePage": home.format(workspace=person.workspace), "name": person.user_id},
        }

    def activity(
        self, object_id: str, kind: str, name: str | None = None, interaction: Interaction | None = None
    ) -> dict[str, Any]:
        definition: dict[str, Any] = {"type": ACTIVITY_TYPES.get(kind, ACTIVITY_TYPES["step"])}
        if name:
            definition["name"] = {"en-US": name}
        if interaction is not None:  # a question that is no longer in the content is left undescribed
            definition.update(interaction.definition())
        return {"objectType": "Activity", "id": f"{self.base}/{object_id}", "definition": definition}

    def cohort_activity(self, cohort: Cohort) -> dict[str, Any]:
        return self.activity(f"cohort/{cohort.id}", "cohort", cohort.name)

    def _titles(self, object_id: str) -> tuple[str | None, str | None, Any, str]:
        """(program title, step title, authored question, step kind) for a ``program/<p>/step/<s>/question/<q>``
        id."""
        parts = object_id.split("/")
        program_title = step_title = question = None
        kind = "step"
        if len(parts) >= 2 and parts[0] == "program" and parts[1] in self.library:
            program = self.library.program(parts[1])
            program_title = program.title
            if len(parts) >= 4 and parts[2] == "step":
                step = next((s for s in program.steps if s.id == parts[3]), None)
                if step is not None:
                    step_title, kind = step.title, step.kind
                    if len(parts) >= 6 and parts[4] == "question":
                        question = next((q for q in getattr(step, "questions", []) if q.id == parts[5]), None)
        return program_title, step_title, question, kind

    def _recap_question(self, event: LearningEvent, step_id: str, question_id: str) -> Interaction | None:
        """A catch-up recap quiz question lives in the cohort's session row, not in the program."""
        if not event.cohort_id:
            return None
        key = (event.cohort_id, step_id)
        if key not in self._recaps:
            found = self.session.execute(
                select(LiveSessionRow.recap, LiveSessionRow.recap_state).where(
                    LiveSessionRow.cohort_id == event.cohort_id, LiveSessionRow.step_id == step_id
                )
            ).first()
            recap = dict(found[0] or {}) if found else {}
            # Learners answer the released version (a newer draft may sit at the top level); see bot/live/recaps.py.
            self._recaps[key] = recap.get("released") or (recap if found and found[1] == "released" else {})
        q = next((q for q in self._recaps[key].get("questions", []) if q.get("id") == question_id), None)
        if q is None:
            return None
        options = q.get("options", [])
        return Interaction(
            str(q.get("text", "")),
            tuple(str(o.get("text", "")) for o in options),
            tuple(i for i, o in enumerate(options) if o.get("correct")),
        )

    def _interaction(self, event: LearningEvent, question: Any) -> Interaction | None:
        if question is not None:
            return Interaction(
                question.text,
                tuple(o.text for o in question.options),
                tuple(i for i, o in enumerate(question.options) if o.correct),
            )
        parts = event.object_id.split("/")
        return self._recap_question(event, parts[3], parts[5]) if len(parts) >= 6 else None

    def object(self, event: LearningEvent) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The statement object and its parents (step -> program, question -> step)."""
        program_title, step_title, question, step_kind = self._titles(event.object_id)
        parts = event.object_id.split("/")
        parents: list[dict[str, Any]] = []
        if event.object_type == "program":
            return self.activity(event.object_id, "program", program_title), parents
        program_ref = "/".join(parts[:2]) if parts[0] == "program" else None
        if event.object_type == "question":
            step_ref = "/".join(parts[:4])
            kind = "quiz" if step_kind == "quiz" else "step"
            parents.append(self.activity(step_ref, kind, step_title))
            interaction = self._interaction(event, question)
            text = interaction.text if interaction is not None else None
            obj = self.activity(event.object_id, "question", text, interaction)
        elif event.object_type == "session":
            obj = self.activity(event.object_id, "session", step_title)
        elif event.object_type == "prompt":
            obj = self.activity(event.object_id, "prompt", step_title)
        else:
            obj = self.activity(event.object_id, "quiz" if step_kind == "quiz" else "step", step_title)
        if program_ref and event.object_type != "question":
            parents.append(self.activity(program_ref, "program", program_title))
        return obj, parents

    def _extensions(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        return {f"{VOCAB}/extensions/{k}": v for k, v in (raw or {}).items() if v is not None}

    def result(self, event: LearningEvent) -> dict[str, Any] | None:
        raw = dict(event.result or {})
        out: dict[str, Any] = {}
        score = raw.get("score")
        if isinstance(score, dict):
            clean = {k: score[k] for k in ("scaled", "raw", "min", "max") if score.get(k) is not None}
            if "scaled" in clean:
                clean["scaled"] = max(-1.0, min(1.0, float(clean["scaled"])))
            if clean:
                out["score"] = clean
        if isinstance(raw.get("success"), bool):
            out["success"] = raw["success"]
        if isinstance(raw.get("completion"), bool):
            out["completion"] = raw["completion"]
        if raw.get("response") is not None:
            out["response"] = str(raw["response"])
        ext = self._extensions(raw.get("extensions"))
        if ext:
            out["extensions"] = ext
        if event.verb in (Verb.PASSED, Verb.FAILED):
            out["success"] = event.verb == Verb.PASSED
            out.setdefault("completion", True)
        return out or None

    def context(self, event: LearningEvent, parents: list[dict[str, Any]], person: Person) -> dict[str, Any]:
        ctx: dict[str, Any] = {"platform": f"Blendwise ({person.platform})", "language": "en"}
        enrollment = self._enrollments.get(event.enrollment_id) if event.enrollment_id else None
        if enrollment is not None and _UUID.match(enrollment.registration or ""):
            ctx["registration"] = enrollment.registration.lower()
        activities: dict[str, list[dict[str, Any]]] = {}
        if parents:
            activities["parent"] = parents[:1]
            if len(parents) > 1:
                activities.setdefault("grouping", []).extend(parents[1:])
        cohort_id = event.cohort_id or (enrollment.cohort_id if enrollment else None)
        cohort = self._cohorts.get(cohort_id) if cohort_id else None
        if cohort_id and cohort is None:
            cohort = self.session.get(Cohort, cohort_id)
        if cohort is not None:
            activities.setdefault("grouping", []).append(self.cohort_activity(cohort))
            if event.object_type == "question" and enrollment is not None:
                program_title = (
                    self.library.program(enrollment.program_id).title
                    if enrollment.program_id in self.library
                    else None
                )
                activities["grouping"].insert(
                    0, self.activity(f"program/{enrollment.program_id}", "program", program_title)
                )
        if activities:
            ctx["contextActivities"] = activities
        ext = self._extensions((event.context or {}).get("extensions"))
        ext[f"{VOCAB}/extensions/event-id"] = event.id
        ctx["extensions"] = ext
        return ctx

    def build(self, event: LearningEvent) -> dict[str, Any]:
        person = self._people.get(event.person_id) or self.session.get(Person, event.person_id)
        assert person is not None, f"event {event.id} names person {event.person_id}, which does not exist"
        self._people[person.id] = person
        if event.enrollment_id and event.enrollment_id not in self._enrollments:
            enrollment = self.session.get(Enrollment, event.enrollment_id)
            if enrollment is not None:
                self._enrollments[enrollment.id] = enrollment
        obj, parents = self.object(event)
        statement: dict[str, Any] = {
            "id": statement_id(self.salt, event.id),
            "actor": self.actor(person),
            "verb": {
                "id": VERB_IRIS[event.verb],
                "display": {"en-US": VERB_DISPLAY.get(event.verb, event.verb)},
            },
            "object": obj,
            "context": self.context(event, parents, person),
            "timestamp": xapi_timestamp(event.ts),
            "version": XAPI_VERSION,
        }
        result = self.result(event)
        if result:
            statement["result"] = result
        return statement


def iter_events(
    session: Session, *, after_id: int = 0, since: datetime | None = None, batch: int = 500
) -> Iterator[list[LearningEvent]]:
    """Events in id order, ``batch`` at a time (keyset pagination, so memory stays flat on a large log)."""
    last = after_id
    while True:
        q = select(LearningEvent).where(LearningEvent.id > last).order_by(LearningEvent.id).limit(batch)
        if since is not None:
            q = q.where(LearningEvent.ts >= since)
        rows = list(session.scalars(q))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def export_statements(
    session: Session, library: Library, settings: LRSSettings, *, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Every event (or those since ``since``) as a statement, in log order."""
    builder = StatementBuilder(session, library, settings, install_salt(session))
    for chunk in iter_events(session, since=since):
        yield from builder.build_all(chunk)


# ---------------------------------------------------------------------- validation
def validate_statement(st: Any) -> list[str]:
    """Problems with a statement's shape under xAPI 1.0.3 (the parts Blendwise produces). Empty means valid."""
    problems: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    if not isinstance(st, dict):
        return ["statement is not an object"]
    need(isinstance(st.get("id"), str) and bool(_UUID.match(st["id"])), "id must be a UUID string")
    _check_actor(st.get("actor"), need)
    _check_verb(st.get("verb"), need)
    _check_object(st.get("object"), need)
    result = st.get("result")
    if result is not None:
        _check_result(result, need)
    ctx = st.get("context")
    if ctx is not None:
        _check_context(ctx, need)
    ts = st.get("timestamp")
    need(isinstance(ts, str) and _parse_ts(ts), "timestamp must be ISO 8601 with a zone")
    need(st.get("version", XAPI_VERSION).startswith("1.0"), "version must be 1.0.x")
    return problems


#: Records a problem message when its condition is false; the checks below share one, so problems keep the order
#: of the statement's parts.
_Need = Callable[[bool, str], None]


def _check_actor(actor: Any, need: _Need) -> None:
    """The actor: an Agent with exactly one identifier, a well-formed mailbox or account."""
    if not isinstance(actor, dict):
        need(False, "actor is required")
        return
    ifis = [k for k in ("mbox", "mbox_sha1sum", "openid", "account") if k in actor]
    need(len(ifis) == 1, "actor needs exactly one inverse functional identifier")
    need(actor.get("objectType", "Agent") == "Agent", "actor.objectType must be Agent")
    if "mbox" in actor:
        need(
            isinstance(actor["mbox"], str) and bool(_MBOX.match(actor["mbox"])),
            "actor.mbox must be mailto:",
        )
    if "account" in actor:
        acc = actor["account"]
        need(
            isinstance(acc, dict)
            and isinstance(acc.get("homePage"), str)
            and bool(_IRI.match(acc["homePage"])),
            "actor.account.homePage must be an IRL",
        )
        need(
            isinstance(acc, dict) and isinstance(acc.get("name"), str) and bool(acc.get("name")),
            "actor.account.name is required",
        )


def _check_verb(verb: Any, need: _Need) -> None:
    """The verb: an IRI id and, if present, a language-map display."""
    need(
        isinstance(verb, dict) and isinstance(verb.get("id"), str) and bool(_IRI.match(verb["id"])),
        "verb.id must be an IRI",
    )
    if isinstance(verb, dict) and "display" in verb:
        need(
            isinstance(verb["display"], dict) and all(isinstance(v, str) for v in verb["display"].values()),
            "verb.display must be a language map",
        )


def _check_object(obj: Any, need: _Need) -> None:
    """The object: an Activity with an IRI id and, if typed, an IRI type."""
    need(
        isinstance(obj, dict) and isinstance(obj.get("id"), str) and bool(_IRI.match(obj["id"])),
        "object.id must be an IRI",
    )
    if isinstance(obj, dict):
        need(obj.get("objectType", "Activity") == "Activity", "object.objectType must be Activity")
        definition = obj.get("definition", {})
        need(isinstance(definition, dict), "object.definition must be an object")
        if isinstance(definition, dict) and "type" in definition:
            need(bool(_IRI.match(str(definition["type"]))), "object.definition.type must be an IRI")
        if isinstance(definition, dict) and definition.get("interactionType") == "choice":
            _check_choices(definition, need)


def _check_choices(definition: dict[str, Any], need: _Need) -> None:
    """A ``choice`` interaction lists its choices (id + language-map description) and the correct pattern, so an
    LRS can decode a response such as ``1``."""
    choices = definition.get("choices")
    need(isinstance(choices, list) and bool(choices), "a choice interaction must list its choices")
    ids: list[str] = []
    for c in choices if isinstance(choices, list) else []:
        ok = isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("description"), dict)
        need(ok, "each choice needs an id and a description language map")
        ids.append(c.get("id", "") if isinstance(c, dict) else "")
    need(len(set(ids)) == len(ids), "choice ids must be unique")
    pattern = definition.get("correctResponsesPattern")
    need(
        isinstance(pattern, list) and all(isinstance(p, str) for p in pattern),
        "a choice interaction must carry correctResponsesPattern, a list of strings",
    )
    for p in pattern if isinstance(pattern, list) else []:
        need(all(i in ids for i in str(p).split("[,]")), "correctResponsesPattern names a choice that is not listed")


def _check_result(result: Any, need: _Need) -> None:
    """An optional result: score bounds, boolean flags, a string response, IRI-keyed extensions."""
    need(isinstance(result, dict), "result must be an object")
    if not isinstance(result, dict):
        return
    score = result.get("score")
    if score is not None:
        _check_score(score, need)
    for key in ("success", "completion"):
        need(key not in result or isinstance(result[key], bool), f"result.{key} must be a boolean")
    need(
        "response" not in result or isinstance(result["response"], str),
        "result.response must be a string",
    )
    _check_extensions(result.get("extensions"), "result.extensions", need)


def _check_score(score: Any, need: _Need) -> None:
    """A result score: scaled within [-1, 1], raw within min and max."""
    need(isinstance(score, dict), "result.score must be an object")
    if not isinstance(score, dict):
        return
    scaled = score.get("scaled")
    need(
        scaled is None or (isinstance(scaled, int | float) and -1 <= scaled <= 1),
        "result.score.scaled must be in [-1, 1]",
    )
    lo, hi, raw = score.get("min"), score.get("max"), score.get("raw")
    if lo is not None and hi is not None:
        need(lo < hi, "result.score.min must be below max")
    if raw is not None:
        need(
            (lo is None or raw >= lo) and (hi is None or raw <= hi),
            "result.score.raw out of range",
        )


def _check_context(ctx: Any, need: _Need) -> None:
    """An optional context: a UUID registration, the four allowed context-activity lists, extensions."""
    need(isinstance(ctx, dict), "context must be an object")
    if not isinstance(ctx, dict):
        return
    if "registration" in ctx:
        need(
            isinstance(ctx["registration"], str) and bool(_UUID.match(ctx["registration"])),
            "context.registration must be a UUID",
        )
    acts = ctx.get("contextActivities", {})
    need(isinstance(acts, dict), "context.contextActivities must be an object")
    if isinstance(acts, dict):
        for key, value in acts.items():
            need(
                key in ("parent", "grouping", "category", "other"),
                f"context.contextActivities.{key} is not allowed",
            )
            need(
                isinstance(value, list)
                and all(isinstance(a, dict) and _IRI.match(str(a.get("id", ""))) for a in value),
                f"context.contextActivities.{key} must be a list of activities",
            )
    _check_extensions(ctx.get("extensions"), "context.extensions", need)


def _check_extensions(ext: Any, where: str, need: Any) -> None:
    if ext is None:
        return
    need(isinstance(ext, dict) and all(_IRI.match(k) for k in ext), f"{where} keys must be IRIs")


def _parse_ts(value: str) -> bool:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def validate_all(statements: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Problems per statement id, for statements that have any."""
    out: dict[str, list[str]] = {}
    for st in statements:
        problems = validate_statement(st)
        if problems:
            out[str(st.get("id"))] = problems
    return out
