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
from bot.storage.db import rowcount
from bot.storage.events import object_id, record_for
from bot.storage.models import Cohort, CohortPost, Delivery, Enrollment, Person, StepProgress

log = logging.getLogger(__name__)

STEP_KINDS = ("lesson", "quiz", "session", "prompt", "reflection", "poll")
#: Purposes that wait for the learner's working window. Session reminders and check-ins are tied to the
#: session's own time and go out when due (they expire instead of waiting).
WINDOWED = (*STEP_KINDS, "remind", "autopause", "digest", "reinforce", "catchup", "recording")
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
        composers: Mapping[str, Any] | None = None,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.adapters = adapters
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch = batch
        self.composer = Composer(engine)
        #: Extra renderers by purpose (digests, recaps, reinforcement...) registered by other modules.
        self.renderers: dict[str, Any] = dict(composers or {})

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
                    .where(Delivery.state == "pending", Delivery.due_at <= now)
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
                select(Delivery).where(Delivery.state == "sending", Delivery.created_at <= cutoff)
            ).all()
            for d in stuck:
                ref = None
                person = session.get(Person, d.person_id) if d.person_id else None
                adapter = self.adapters.get(person.platform) if person else None
                if person is not None and isinstance(adapter, AdapterBase):
                    ref = adapter.find_delivery(self._recipient(session, person), d.id)
                if ref is not None:
                    d.state, d.message_ref, d.sent_at = "sent", ref.encode(), self.clock.now()
                else:
                    d.state = "pending"
                fixed += 1
        if fixed:
            log.warning("recovered %d deliveries left in 'sending' by an earlier crash", fixed)
        return fixed

    # ------------------------------------------------------------------ one row
    def _claim(self, delivery_id: int) -> bool:
        with self.factory() as session, session.begin():
            res = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.state == "pending")
                .values(state="sending", attempts=Delivery.attempts + 1)
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
                    d.state = "pending"
                    d.attempts -= 1
                elif plan == "skipped":
                    d.state = "skipped"
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
            d.state, d.sent_at, d.last_error = "sent", self.clock.now(), None
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
                d.state = "pending"
                d.due_at = self.clock.now() + backoff
                log.warning("delivery %s failed (%s); retry %d in %s", d.id, error, d.attempts, backoff)
                return "retried"
            d.state = "failed"
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
        if d.purpose in WINDOWED:
            window = self.engine.window(person, cohort)
            if not window.contains(now):
                d.due_at = window.next_open(now)
                return "deferred"
        sp = session.get(StepProgress, d.progress_id) if d.progress_id else None
        messages = self._render(session, d, sp)
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
        if sp is None or d.purpose not in STEP_KINDS:
            return
        sp.message_ref = ref.encode()
        # The step opens when its card actually reaches the learner, not when the tick plans it: that keeps the
        # tick's burst cost to inserts, and makes "open" mean "the learner has it".
        if sp.state == "locked":
            sp.state = "open"
            sp.opened_at = self.clock.now()
        enrollment = session.get(Enrollment, sp.enrollment_id)
        assert enrollment is not None
        record_for(
            session,
            enrollment,
            ts=self.clock.now(),
            verb="delivered",
            object_type="session" if sp.kind == "session" else "step",
            object_id=object_id(enrollment.program_id, sp.step_id),
            context={"extensions": {"delivery_id": d.id}},
        )

    def _render(self, session: Session, d: Delivery, sp: StepProgress | None) -> list[Message]:
        if d.purpose in self.renderers:
            out = self.renderers[d.purpose](session, d)
            return [] if out is None else (out if isinstance(out, list) else [out])
        if d.purpose in STEP_KINDS:
            assert sp is not None
            return self.composer.step_card(session, sp)
        if d.purpose == "remind":
            assert sp is not None
            if sp.state != "open":
                return []
            return self.composer.step_card(session, sp, reminder=True)
        if d.purpose in ("session_remind", "checkin"):
            assert sp is not None
            if sp.state in ("done", "missed"):
                return []
            return [self.composer.session_reminder(session, sp, checkin=d.purpose == "checkin")]
        if d.purpose == "autopause":
            enrollment = session.get(Enrollment, d.enrollment_id)
            assert enrollment is not None
            return [self.composer.autopause(session, enrollment)]
        raise AdapterError(f"no renderer for purpose '{d.purpose}'", retryable=False)

    def _prepare_channel(self, session: Session, d: Delivery) -> Plan | str:
        cohort = session.get(Cohort, d.cohort_id)
        if cohort is None or not cohort.channel:
            return "skipped"
        adapter = self.adapters.get(cohort.platform)
        if adapter is None:
            raise AdapterError(f"no adapter running for platform '{cohort.platform}'", retryable=True)
        payload = d.payload or {}
        step_id: str | None = None
        kind = "announce"
        message: Message | None
        if d.purpose == "cohort_prompt":
            sp = session.get(StepProgress, d.progress_id)
            assert sp is not None
            step = self.engine.library.step(cohort.program_id, sp.step_id)
            assert isinstance(step, PromptStep)
            message = self.composer.authored_prompt(session, cohort, step)
            step_id, kind = step.id, "prompt"
        elif d.purpose == "cohort_recap":
            # One "Weekly recaps" post per cohort; every later recap is a reply in its thread.
            parent = session.scalar(
                select(CohortPost)
                .where(CohortPost.cohort_id == cohort.id, CohortPost.kind == "recaps")
                .order_by(CohortPost.id)
            )
            message = self.renderers[d.purpose](session, d)
            kind = "recap" if parent is not None else "recaps"
            if parent is not None:
                payload = {**payload, "thread": parent.ref}
            elif message is not None:
                message.opens_thread = True
        elif d.purpose in self.renderers:
            message = self.renderers[d.purpose](session, d)
            kind = payload.get("kind", d.purpose)
        else:
            title = payload.get("title", "Announcement")
            message = self.composer.cohort_prompt(session, cohort, None, payload.get("text", ""), title=title)
            kind = "prompt" if d.purpose == "lead_prompt" else "announce"
        if message is None:
            return "skipped"
        return Plan(
            adapter=adapter,
            messages=[message],
            workspace=cohort.workspace,
            channel=cohort.channel,
            thread=payload.get("thread"),
            step_id=step_id,
            post_kind=kind,
        )


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
