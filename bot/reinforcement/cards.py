"""Spaced reinforcement: quiz questions come back as single-question micro-quizzes, scheduled by FSRS.

A question becomes a card for a learner when they answer it wrong, or when the program marks it
``reinforce: true``. FSRS (the ``fsrs`` package) decides when each card is due; :func:`plan_reinforcement`
turns due cards into outbox rows set-wise (one query for new answers, one for due cards, one for the weekly
counts), never one scheduler job per learner. Micro-quizzes go out inside the learner's working hours, at most
``nudges.max_reinforcement_per_week`` in any seven days and one at a time. Answers are stored as
``QuizAnswer(reinforcement=True)`` plus an ``answered`` event, which is what the report's retention figure reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from fsrs import Card, Rating, Scheduler, State
from sqlalchemy import and_, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from bot.errors import InvalidInput, PermissionDenied
from bot.events import ButtonPressed, Response
from bot.journeys.compose import Composer
from bot.journeys.context import hold_enrollment
from bot.journeys.engine import Engine
from bot.journeys.model import Question, QuizStep
from bot.journeys.quizzes import grade
from bot.messages import Button, Message
from bot.nudges.purposes import DueRow, Planned, Purpose, enqueue_many
from bot.records.models import RecordsCursor
from bot.reinforcement.models import ReinforcementCard
from bot.states import EnrollmentStatus, Verb
from bot.storage.events import object_id, record
from bot.storage.models import Cohort, Delivery, Enrollment, Person, QuizAnswer, StepProgress

log = logging.getLogger(__name__)

ACTION = "reinforce.answer"
PURPOSE = "reinforce"
#: One micro-quiz, keyed by card, review number and the time it was asked; it waits for the learner's window.
REINFORCE = Purpose(PURPOSE, priority=7, key_parts=("card", "review", "asked"))
#: Reinforcement answers share ``quiz_answers`` with the quiz itself; their attempt numbers start here so they never
#: collide with a quiz attempt under the (progress, attempt, question) unique key.
ATTEMPT_BASE = 1000
#: A micro-quiz left unanswered this long stops blocking the next one; the card comes back a day later.
STALE_AFTER = timedelta(days=5)
PLAN_BATCH = 500

# Reinforcement happens over days, not within one study sitting, so FSRS's minute-scale learning steps are off:
# a card goes straight to day-scale review intervals. No fuzzing, so tests and the demo are reproducible.
SCHEDULER = Scheduler(learning_steps=(), relearning_steps=(), enable_fuzzing=False)


# ---------------------------------------------------------------------- FSRS <-> rows
def _to_card(row: ReinforcementCard) -> Card:
    return Card(
        card_id=row.id,
        state=State(row.state),
        step=None if row.state == State.Review else 0,
        stability=row.stability,
        difficulty=row.difficulty,
        due=row.due_at,
        last_review=row.last_review_at,
    )


def _apply(row: ReinforcementCard, card: Card) -> None:
    row.state = int(card.state)
    row.stability = card.stability
    row.difficulty = card.difficulty
    row.due_at = card.due
    row.last_review_at = card.last_review


def review(row: ReinforcementCard, correct: bool, when: datetime) -> None:
    """Apply one review: Good when right, Again when wrong."""
    card, _ = SCHEDULER.review_card(_to_card(row), Rating.Good if correct else Rating.Again, when)
    _apply(row, card)


def _question(
    engine: Engine, program_id: str, step_id: str, question_id: str
) -> tuple[QuizStep, Question] | None:
    if program_id not in engine.library:
        return None
    step = next((s for s in engine.library.program(program_id).steps if s.id == step_id), None)
    if not isinstance(step, QuizStep):
        return None
    q = next((q for q in step.questions if q.id == question_id), None)
    return (step, q) if q is not None else None


# ---------------------------------------------------------------------- planning
def collect_cards(session: Session, engine: Engine, now: datetime) -> int:
    """Create or activate cards for quiz answers not seen yet. Returns cards created or activated.

    The anti-join returns each (progress, question) once (its first answer), plus wrong answers on questions whose
    card is still inactive; every other answer already has a card that says all there is to say.
    """
    from bot.records.xapi import cursor

    cur = cursor(session, "reinforce", now)
    newest = session.scalar(_NEWEST_ANSWER)
    if newest is None or newest <= cur.position:
        return 0  # nothing answered since the last pass: the common, idle case
    rows = session.execute(_NEW_ANSWERS, {"position": cur.position}).all()
    created: dict[tuple[int, str], ReinforcementCard] = {}
    changed = 0
    for answer, step_id, enrollment, existing in rows:
        key = (answer.progress_id, answer.question_id)
        card = existing or created.get(key)
        found = _question(engine, enrollment.program_id, step_id, answer.question_id)
        marked = bool(found and found[1].reinforce)
        supported = bool(found and not found[1].multiple)
        wants = supported and (not answer.correct or marked)
        if card is None:
            card = ReinforcementCard(
                person_id=enrollment.person_id,
                enrollment_id=enrollment.id,
                progress_id=answer.progress_id,
                program_id=enrollment.program_id,
                step_id=step_id,
                question_id=answer.question_id,
                active=wants,
                reason=("wrong" if not answer.correct else "marked") if wants else "correct",
                state=int(State.Learning),
                due_at=answer.answered_at,
                reviews=0,
                lapses=0,
                created_at=now,
            )
            session.add(card)
            created[key] = card
            if wants:
                review(card, answer.correct, answer.answered_at)
                changed += 1
        elif wants and not card.active:
            card.active, card.reason = True, "wrong"
            review(card, False, answer.answered_at)
            changed += 1
    # A short batch read every answer up to ``newest``: the cursor moves past the answers it skipped too
    # (reinforcement answers, answers whose card already says it all), or the next pass would read them again.
    position = max((answer.id for answer, _, _, _ in rows), default=cur.position)
    if len(rows) < PLAN_BATCH * 4:
        position = max(position, newest)
    if position != cur.position:
        cur.position = position
        cur.updated_at = now
    session.flush()
    return changed


def plan_reinforcement(session: Session, engine: Engine, now: datetime) -> int:
    """Queue micro-quizzes for due cards (call it from the tick). Returns deliveries planned.

    Per person: at most one outstanding micro-quiz, and at most ``nudges.max_reinforcement_per_week`` planned in
    any seven days. The delivery is due at the next moment inside the learner's working window.
    """
    answered, stale, due_any = session.execute(_WORK, {"now": now, "stale_before": now - STALE_AFTER}).one()
    if not (answered or stale or due_any):
        return 0  # the common, idle pass: nothing answered, nothing stale, no card due for a free learner
    if answered:
        collect_cards(session, engine, now)
    limit = engine.settings.nudges.max_reinforcement_per_week
    if limit <= 0:
        return 0
    if stale:
        _release_stale(session, now)
    due = _due_cards(session, now)
    if not due:
        return 0
    people = {p.id for _, p, _ in due}
    recent, oldest = _recent_reinforcements(session, people, now)
    busy = set(session.scalars(_BUSY, {"people": list(people)}))
    cohorts = {c.id: c for c in session.scalars(_COHORTS, {"ids": list({e.cohort_id for _, _, e in due})})}
    planned = 0
    rows: list[Planned] = []
    for card, person, enrollment in due:
        if person.id in busy:
            continue
        if recent[person.id] >= limit:
            # A full week defers the card until the oldest micro-quiz leaves the seven-day window, so the planner
            # does not look at it again on every tick.
            card.due_at = max(card.due_at, oldest[person.id] + timedelta(days=7))
            continue
        window = engine.window(person, cohorts.get(enrollment.cohort_id))
        send_at = window.next_open(now)
        rows.append(
            Planned(
                # Planning is idempotent through ``asked_at``; the time in the key only tells a re-ask after a
                # stale micro-quiz apart from the first ask.
                key=(card.id, card.reviews, int(now.timestamp())),
                person_id=person.id,
                enrollment_id=enrollment.id,
                progress_id=card.progress_id,
                due_at=send_at,
                payload={"card_id": card.id, "review": card.reviews},
            )
        )
        card.asked_at = now
        busy.add(person.id)
        recent[person.id] += 1
        planned += 1
    enqueue_many(session, REINFORCE, rows, now=now)
    if planned:
        log.info("planned %d reinforcement micro-quiz(zes)", planned)
    return planned


# The planner's statements are built once: it runs after every tick, and building (and cache-keying) a statement
# costs more than SQLite takes to run it. Each takes its instants and ids as bound parameters.
_NEWEST_ANSWER = select(func.max(QuizAnswer.id))

_NEW_ANSWERS = (
    select(QuizAnswer, StepProgress.step_id, Enrollment, ReinforcementCard)
    .join(StepProgress, StepProgress.id == QuizAnswer.progress_id)
    .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
    .outerjoin(
        ReinforcementCard,
        and_(
            ReinforcementCard.progress_id == QuizAnswer.progress_id,
            ReinforcementCard.question_id == QuizAnswer.question_id,
        ),
    )
    .where(
        # Only answers recorded since the last pass: the cursor keeps an idle tick from rescanning every
        # answer ever given (millions, at scale).
        QuizAnswer.id > bindparam("position"),
        QuizAnswer.reinforcement.is_(False),
        or_(
            ReinforcementCard.id.is_(None),
            and_(ReinforcementCard.active.is_(False), QuizAnswer.correct.is_(False)),
        ),
    )
    .order_by(QuizAnswer.id)
    .limit(PLAN_BATCH * 4)
)

#: People with a micro-quiz out: one at a time per person, so their due cards wait.
_ASKED_PEOPLE = select(ReinforcementCard.person_id).where(ReinforcementCard.asked_at.is_not(None)).scalar_subquery()

_STALE = and_(ReinforcementCard.asked_at.is_not(None), ReinforcementCard.asked_at < bindparam("stale_before"))


def _work() -> Any:
    """The one statement of the common idle pass: is there an answer the cards have not seen, a stale micro-quiz to
    release, or a card due for someone with no micro-quiz out? Three flags, so the pass runs only the steps that
    can find something (a card due for a learner who is still to answer the last one keeps every flag off)."""
    answered = select(func.max(QuizAnswer.id)).scalar_subquery()
    seen = select(RecordsCursor.position).where(RecordsCursor.name == "reinforce").scalar_subquery()
    due = exists().where(
        ReinforcementCard.active.is_(True),
        ReinforcementCard.due_at <= bindparam("now"),
        ReinforcementCard.asked_at.is_(None),
        ReinforcementCard.person_id.not_in(_ASKED_PEOPLE),
    )
    return select(answered > func.coalesce(seen, 0), exists().where(_STALE), due)


_WORK = _work()

_STALE_CARDS = select(ReinforcementCard).where(_STALE)

_DUE_CARDS = (
    select(ReinforcementCard, Person, Enrollment)
    .join(Person, Person.id == ReinforcementCard.person_id)
    .join(Enrollment, Enrollment.id == ReinforcementCard.enrollment_id)
    .where(
        ReinforcementCard.active.is_(True),
        ReinforcementCard.due_at <= bindparam("now"),
        ReinforcementCard.asked_at.is_(None),
        ReinforcementCard.person_id.not_in(_ASKED_PEOPLE),
        Person.opted_out.is_(False),
        Enrollment.status != EnrollmentStatus.DROPPED,
    )
    .order_by(ReinforcementCard.due_at, ReinforcementCard.id)
    .limit(PLAN_BATCH)
)

_BUSY = select(ReinforcementCard.person_id).where(
    ReinforcementCard.person_id.in_(bindparam("people", expanding=True)), ReinforcementCard.asked_at.is_not(None)
)

_COHORTS = select(Cohort).where(Cohort.id.in_(bindparam("ids", expanding=True)))

_RECENT = (
    select(Delivery.person_id, func.count(), func.min(Delivery.due_at))
    .where(
        Delivery.purpose == PURPOSE,
        Delivery.person_id.in_(bindparam("people", expanding=True)),
        Delivery.due_at > bindparam("week_ago"),
    )
    .group_by(Delivery.person_id)
)


def _release_stale(session: Session, now: datetime) -> None:
    """Unanswered micro-quizzes that went stale stop blocking: the card simply comes back a day later."""
    for stale in session.scalars(_STALE_CARDS, {"stale_before": now - STALE_AFTER}):
        stale.asked_at = None
        stale.due_at = now + timedelta(days=1)


def _due_cards(session: Session, now: datetime) -> list[Any]:
    """One batch of due (card, person, enrolment) rows, oldest first, for people free to be asked."""
    return list(session.execute(_DUE_CARDS, {"now": now}).all())


def _recent_reinforcements(
    session: Session, people: set[int], now: datetime
) -> tuple[Counter[int], dict[int, datetime]]:
    """Micro-quizzes planned per person in the last seven days, and the oldest one's due time (for deferral)."""
    recent: Counter[int] = Counter()
    oldest: dict[int, datetime] = {}
    for pid, n, first in session.execute(_RECENT, {"people": list(people), "week_ago": now - timedelta(days=7)}):
        if pid is not None:
            recent[pid], oldest[pid] = n, first
    return recent, oldest


# ---------------------------------------------------------------------- rendering and answering
def render_reinforcement(engine: Engine) -> Any:
    """The sender's renderer for ``reinforce`` rows: one question, one button per option."""
    composer = Composer(engine)

    def render(session: Session, delivery: DueRow) -> Message | None:
        payload = delivery.payload or {}
        card = session.get(ReinforcementCard, payload.get("card_id"))
        if card is None or not card.active or card.reviews != payload.get("review"):
            return None
        found = _question(engine, card.program_id, card.step_id, card.question_id)
        enrollment = session.get(Enrollment, card.enrollment_id)
        if found is None or enrollment is None:
            return None
        step, q = found
        ctx = composer.template_context(session, composer.scope(session, enrollment), step)
        text = composer.text(q.text, ctx)
        buttons = [
            Button(o.text[:75], ACTION, f"{card.id}.{card.reviews}.{i}") for i, o in enumerate(q.options)
        ]
        body = f"**Quick recall** from _{step.title}_\n{text}"
        if len(q.options) > 3 or any(len(o.text) > 30 for o in q.options):
            body += "\n\n" + "\n".join(f"{chr(65 + i)}. {o.text}" for i, o in enumerate(q.options))
        return Message(
            text=f"Quick recall: {text[:150]}",
            title="Quick recall",
            body=body,
            buttons=buttons,
            context="One question, spaced over time so it sticks. It does not change your quiz score.",
            kind="quiz",
        )

    return render


def answer_reinforcement(
    engine: Engine, session: Session, person: Person, card_id: int, review_no: int, option: int
) -> tuple[ReinforcementCard, bool, bool]:
    """Grade one reinforcement answer. Returns (card, correct, duplicate)."""
    card = session.get(ReinforcementCard, card_id)
    if card is None:
        raise InvalidInput("That question is no longer active.")
    if card.person_id != person.id:
        raise PermissionDenied("That button belongs to someone else's journey.")
    # Two presses at once (two workers) run one after the other; the second sees the first's review and is stale.
    if hold_enrollment(session, card.enrollment_id):
        session.refresh(card)
    if card.reviews != review_no or card.asked_at is None:
        return card, False, True
    found = _question(engine, card.program_id, card.step_id, card.question_id)
    if found is None:
        raise InvalidInput("That question is no longer part of the program.")
    _, q = found
    if not 0 <= option < len(q.options):
        raise InvalidInput("Please pick one of the options shown.")
    now = engine.clock.now()
    correct = grade([o.correct for o in q.options], [option])
    card.reviews += 1
    session.add(
        QuizAnswer(
            progress_id=card.progress_id,
            attempt=ATTEMPT_BASE + card.reviews,
            question_id=card.question_id,
            choice=str(option),
            correct=correct,
            reinforcement=True,
            answered_at=now,
        )
    )
    enrollment = session.get(Enrollment, card.enrollment_id)
    assert enrollment is not None
    record(
        session,
        ts=now,
        person_id=person.id,
        verb=Verb.ANSWERED,
        object_type="question",
        object_id=object_id(card.program_id, card.step_id, card.question_id),
        enrollment_id=enrollment.id,
        cohort_id=enrollment.cohort_id,
        result={
            "success": correct,
            "response": str(option),
            "extensions": {"reinforcement": True, "review": card.reviews},
        },
    )
    enrollment.last_activity_at = now
    if not correct:
        card.lapses += 1
    review(card, correct, now)
    card.asked_at = None
    session.flush()
    return card, correct, False


def button_handler(engine: Engine) -> Any:
    """The dispatcher's handler for ``reinforce.answer`` (value ``<card>.<review>.<option>``)."""
    composer = Composer(engine)

    def handle(session: Session, person: Person, ev: ButtonPressed) -> Response:
        try:
            card_id, review_no, option = (int(p) for p in ev.value.split("."))
        except ValueError:
            raise InvalidInput("That answer button is no longer valid.") from None
        card, correct, duplicate = answer_reinforcement(engine, session, person, card_id, review_no, option)
        if duplicate:
            return Response(
                ephemeral=Message(text="Already answered, thanks!", body="Already answered, thanks!")
            )
        found = _question(engine, card.program_id, card.step_id, card.question_id)
        assert found is not None
        step, q = found
        enrollment = session.get(Enrollment, card.enrollment_id)
        assert enrollment is not None
        ctx = composer.template_context(session, composer.scope(session, enrollment), step)
        feedback = composer.answer_feedback(step, step.questions.index(q), [option], correct, ctx)
        days = max(1, round((card.due_at - engine.clock.now()).total_seconds() / 86400))
        return Response(
            replace=Message(
                text=feedback.splitlines()[0],
                title="Quick recall",
                body=feedback,
                context=f"This one comes back in about {days} day{'s' if days != 1 else ''}.",
                kind="quiz",
            )
        )

    return handle


__all__ = [
    "ACTION",
    "PURPOSE",
    "answer_reinforcement",
    "button_handler",
    "collect_cards",
    "plan_reinforcement",
    "render_reinforcement",
    "review",
]
