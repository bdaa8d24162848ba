"""The sender: drains the outbox through the adapters.

Each row goes ``pending -> sending -> sent`` (or back to ``pending`` with a backoff, or ``failed`` after the last
attempt, or ``skipped`` when it no longer makes sense, e.g. a reminder for a step finished meanwhile). The claim
(``state = 'sending'``) is committed *before* the platform call, so a crash mid-send leaves a row whose outcome is
unknown rather than one that is silently re-sent: :meth:`Sender.recover` asks the adapter whether the message
exists (Slack message metadata carries the delivery id) before trying again. Messages that are not urgent wait for
the learner's window (working hours, quiet hours, pause) instead of being sent outside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.base import Adapter, AdapterBase, Recipient
from bot.clock import Clock
from bot.errors import AdapterError, BlendwiseError
from bot.journeys.compose import Composer
from bot.journeys.engine import Engine
from bot.journeys.model import PromptStep
from bot.messages import Message, MessageRef
from bot.nudges.purposes import (
    ANNOUNCE,
    AUTOPAUSE,
    CHECKIN,
    COHORT_PROMPT,
    LEAD_PROMPT,
    REMIND,
    SESSION_REMIND,
    STEP_PURPOSES,
    ChannelPost,
    Purpose,
    PurposeRegistry,
)
from bot.states import DeliveryState, StepKind, StepState, Verb
from bot.storage.db import rowcount
from bot.storage.events import object_id, record_for
from bot.storage.models import Cohort, CohortPost, Delivery, Enrollment, Person, StepProgress

log = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=5)


@dataclass
class DrainResult:
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    by_purpose: dict[str, int] = field(default_factory=dict)


class Sender:
    def __init__(
        self,
        factory: sessionmaker[Session],
        engine: Engine,
        adapters: Mapping[str, Adapter],
        clock: Clock,
        *,
        max_attempts: int = 8,
        batch: int = 200,
        purposes: PurposeRegistry | None = None,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.adapters = adapters
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch = batch
        self.composer = Composer(engine)
        #: How to render each purpose, and whether it waits for the learner's window. The core's purposes are
        #: registered here; digests and features register theirs on the same registry.
        self.purposes = purposes if purposes is not None else PurposeRegistry()
        for purpose in core_purposes(self.composer, engine):
            self.purposes.register(purpose, owner=__name__)

    # ------------------------------------------------------------------ driving
    def drain(self, limit: int | None = None) -> DrainResult:
        """Send everything due now, up to ``limit`` rows."""
        result = DrainResult()
        remaining = limit if limit is not None else 10**9
        while remaining > 0:
            now = self.clock.now()
            with self.factory() as session:
                ids = session.scalars(
                    select(Delivery.id)
                    .where(Delivery.state == DeliveryState.PENDING, Delivery.due_at <= now)
                    .order_by(Delivery.priority, Delivery.due_at, Delivery.id)
                    .limit(min(self.batch, remaining))
                ).all()
            if not ids:
                break
            for delivery_id in ids:
                self._one(delivery_id, result)
                remaining -= 1
        return result

    def recover(self) -> int:
        """Resolve rows left in ``sending`` by a crash: sent if the platform has them, otherwise pending again."""
        cutoff = self.clock.now() - STUCK_AFTER
        fixed = 0
        with self.factory() as session, session.begin():
            stuck = session.scalars(
                select(Delivery).where(Delivery.state == DeliveryState.SENDING, Delivery.created_at <= cutoff)
            ).all()
            for d in stuck:
                ref = None
                person = session.get(Person, d.person_id) if d.person_id else None
                adapter = self.adapters.get(person.platform) if person else None
                if person is not None and isinstance(adapter, AdapterBase):
                    ref = adapter.find_delivery(self._recipient(session, person), d.id)
                if ref is not None:
                    d.state, d.message_ref, d.sent_at = DeliveryState.SENT, ref.encode(), self.clock.now()
                else:
                    d.state = DeliveryState.PENDING
                fixed += 1
        if fixed:
            log.warning("recovered %d deliveries left in 'sending' by an earlier crash", fixed)
        return fixed

    # ------------------------------------------------------------------ one row
    def _claim(self, delivery_id: int) -> bool:
        with self.factory() as session, session.begin():
            res = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.PENDING)
                .values(state=DeliveryState.SENDING, attempts=Delivery.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            return bool(rowcount(res))

    def _one(self, delivery_id: int, result: DrainResult) -> None:
        if not self._claim(delivery_id):
            return  # another sender took it
        try:
            outcome = self._deliver(delivery_id)
        except AdapterError as exc:
            outcome = self._failed(delivery_id, str(exc), exc.retryable, exc.retry_after)
        except BlendwiseError as exc:
            outcome = self._failed(delivery_id, str(exc), False, None)
        except Exception as exc:  # a bug: keep the row, log it, try again later
            log.exception("unexpected error sending delivery %s", delivery_id)
            outcome = self._failed(delivery_id, f"internal error: {type(exc).__name__}", True, None)
        setattr(result, outcome, getattr(result, outcome) + 1)

    def _deliver(self, delivery_id: int) -> str:
        """Prepare in one short transaction, call the platform with no transaction open, record in another.

        Holding a database transaction across a network call would block inbound handlers on SQLite and pin a
        connection on PostgreSQL, so the platform call happens between transactions.
        """
        now = self.clock.now()
        with self.factory() as session, session.begin():
            d = session.get(Delivery, delivery_id)
            assert d is not None
            plan = self._prepare(session, d, now)
            if isinstance(plan, str):
                if plan == "deferred":
                    d.state = DeliveryState.PENDING
                    d.attempts -= 1
                elif plan == "skipped":
                    d.state = DeliveryState.SKIPPED
                return plan
        ref: MessageRef | None = None
        for i, message in enumerate(plan.messages):
            if i < plan.parts_sent:
                continue
            message.delivery_id = delivery_id
            if plan.to is not None:
                ref = plan.adapter.send_direct(plan.to, message)
            else:
                assert plan.channel is not None
                ref = plan.adapter.send_channel(plan.workspace, plan.channel, message, thread=plan.thread)
            if len(plan.messages) > 1:
                # Remember progress through multi-part lessons so a retry resumes instead of repeating part 1.
                with self.factory() as session, session.begin():
                    d = session.get(Delivery, delivery_id)
                    assert d is not None
                    d.payload = {**(d.payload or {}), "parts_sent": i + 1}
        with self.factory() as session, session.begin():
            d = session.get(Delivery, delivery_id)
            assert d is not None
            d.state, d.sent_at, d.last_error = DeliveryState.SENT, self.clock.now(), None
            if ref is not None:
                d.message_ref = ref.encode()
                self._after_send(session, d, ref, plan)
        return "sent"

    def _failed(self, delivery_id: int, error: str, retryable: bool, retry_after: float | None) -> str:
        with self.factory() as session, session.begin():
            d = session.get(Delivery, delivery_id)
            assert d is not None
            d.last_error = error[:500]
            if retryable and d.attempts < self.max_attempts:
                backoff = timedelta(seconds=min(30 * 2 ** (d.attempts - 1), 3600))
                if retry_after:
                    backoff = max(backoff, timedelta(seconds=retry_after))
                d.state = DeliveryState.PENDING
                d.due_at = self.clock.now() + backoff
                log.warning("delivery %s failed (%s); retry %d in %s", d.id, error, d.attempts, backoff)
                return "retried"
            d.state = DeliveryState.FAILED
            log.error("delivery %s failed for good after %d attempt(s): %s", d.id, d.attempts, error)
            return "failed"

    def _recipient(self, session: Session, person: Person) -> Recipient:
        return Recipient(person.platform, person.workspace, person.user_id, person.name, self.engine.person_tz(person))

    def _prepare(self, session: Session, d: Delivery, now: datetime) -> Plan | str:
        if d.expires_at is not None and now > d.expires_at:
            return "skipped"
        if d.person_id is None:
            return self._prepare_channel(session, d)
        person = session.get(Person, d.person_id)
        assert person is not None
        if person.opted_out:
            return "skipped"
        cohort = session.get(Cohort, d.cohort_id) if d.cohort_id else None
        purpose = self._purpose(d)
        if purpose.windowed:
            window = self.engine.window(person, cohort)
            if not window.contains(now):
                d.due_at = window.next_open(now)
                return "deferred"
        out = self._call(purpose, session, d)
        if isinstance(out, ChannelPost):
            raise AdapterError(f"purpose '{purpose.name}' rendered a channel post for a person", retryable=False)
        messages = [] if out is None else (out if isinstance(out, list) else [out])
        if not messages:
            return "skipped"
        adapter = self.adapters.get(person.platform)
        if adapter is None:
            raise AdapterError(f"no adapter running for platform '{person.platform}'", retryable=True)
        return Plan(
            adapter=adapter,
            messages=messages,
            parts_sent=int((d.payload or {}).get("parts_sent", 0)),
            to=self._recipient(session, person),
        )

    def _after_send(self, session: Session, d: Delivery, ref: MessageRef, plan: Plan) -> None:
        if plan.to is None:
            session.add(
                CohortPost(
                    cohort_id=d.cohort_id,
                    step_id=plan.step_id,
                    kind=plan.post_kind,
                    channel=ref.channel,
                    ref=ref.ts,
                    created_at=self.clock.now(),
                )
            )
            return
        sp = session.get(StepProgress, d.progress_id) if d.progress_id else None
        if sp is None or not self._purpose(d).opens_step:
            return
        sp.message_ref = ref.encode()
        # The step opens when its card actually reaches the learner, not when the tick plans it: that keeps the
        # tick's burst cost to inserts, and makes "open" mean "the learner has it".
        if sp.state == StepState.LOCKED:
            sp.state = StepState.OPEN
            sp.opened_at = self.clock.now()
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        record_for(
            session,
            enrollment,
            ts=self.clock.now(),
            verb=Verb.DELIVERED,
            object_type="session" if sp.kind == StepKind.SESSION else "step",
            object_id=object_id(enrollment.program_id, sp.step_id),
            context={"extensions": {"delivery_id": d.id}},
        )

    def _purpose(self, d: Delivery) -> Purpose:
        purpose = self.purposes.get(d.purpose)
        if purpose is None or purpose.render is None:
            raise AdapterError(f"no renderer for purpose '{d.purpose}'", retryable=False)
        return purpose

    @staticmethod
    def _call(purpose: Purpose, session: Session, d: Delivery) -> Any:
        assert purpose.render is not None
        return purpose.render(session, d)

    def _prepare_channel(self, session: Session, d: Delivery) -> Plan | str:
        cohort = session.get(Cohort, d.cohort_id)
        if cohort is None or not cohort.channel:
            return "skipped"
        adapter = self.adapters.get(cohort.platform)
        if adapter is None:
            raise AdapterError(f"no adapter running for platform '{cohort.platform}'", retryable=True)
        purpose = self._purpose(d)
        out = self._call(purpose, session, d)
        if out is None:
            return "skipped"
        if not isinstance(out, ChannelPost):
            payload = d.payload or {}
            out = ChannelPost(out, kind=payload.get("kind", purpose.name), thread=payload.get("thread"))
        return Plan(
            adapter=adapter,
            messages=[out.message],
            workspace=cohort.workspace,
            channel=cohort.channel,
            thread=out.thread,
            step_id=out.step_id,
            post_kind=out.kind,
        )


def core_purposes(composer: Composer, engine: Engine) -> list[Purpose]:
    """The core's purposes with their renderers: step cards, reminders, session reminders and check-ins, the
    auto-pause notice, and the cohort channel's discussion prompts and announcements."""

    def progress(session: Session, d: Delivery) -> StepProgress:
        sp = session.get(StepProgress, d.progress_id)
        assert sp is not None
        return sp

    def step_card(session: Session, d: Delivery) -> list[Message]:
        return composer.step_card(session, progress(session, d))

    def reminder(session: Session, d: Delivery) -> list[Message]:
        sp = progress(session, d)
        if sp.state != StepState.OPEN:
            return []
        return composer.step_card(session, sp, reminder=True)

    def session_reminder(session: Session, d: Delivery) -> Message | None:
        sp = progress(session, d)
        if sp.state in (StepState.DONE, StepState.MISSED):
            return None
        return composer.session_reminder(session, sp, checkin=d.purpose == CHECKIN.name)

    def autopause(session: Session, d: Delivery) -> Message:
        enrollment = session.get(Enrollment, d.enrollment_id)
        assert enrollment is not None
        return composer.autopause(session, enrollment)

    def cohort_prompt(session: Session, d: Delivery) -> ChannelPost:
        cohort = session.get(Cohort, d.cohort_id)
        assert cohort is not None
        step = engine.library.step(cohort.program_id, progress(session, d).step_id)
        assert isinstance(step, PromptStep)
        return ChannelPost(composer.authored_prompt(session, cohort, step), kind="prompt", step_id=step.id)

    def lead_post(session: Session, d: Delivery) -> ChannelPost:
        cohort = session.get(Cohort, d.cohort_id)
        assert cohort is not None
        payload = d.payload or {}
        title = payload.get("title", "Announcement")
        message = composer.cohort_prompt(session, cohort, None, payload.get("text", ""), title=title)
        kind = "prompt" if d.purpose == LEAD_PROMPT.name else "announce"
        return ChannelPost(message, kind=kind, thread=payload.get("thread"))

    return [
        *(purpose.bind(step_card) for purpose in STEP_PURPOSES.values()),
        REMIND.bind(reminder),
        SESSION_REMIND.bind(session_reminder),
        CHECKIN.bind(session_reminder),
        AUTOPAUSE.bind(autopause),
        COHORT_PROMPT.bind(cohort_prompt),
        LEAD_PROMPT.bind(lead_post),
        ANNOUNCE.bind(lead_post),
    ]


@dataclass
class Plan:
    """A prepared send: everything the platform call needs, gathered inside a transaction."""

    adapter: Adapter
    messages: list[Message]
    parts_sent: int = 0
    to: Recipient | None = None
    workspace: str = ""
    channel: str | None = None
    thread: str | None = None
    step_id: str | None = None
    post_kind: str = "announce"
