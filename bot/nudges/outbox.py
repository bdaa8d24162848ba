"""The sender: drains the outbox through the adapters, in batches, concurrently, in per-learner order.

One drain pass is a few statements whatever the batch size:

1. **Reclaim** rows whose lease expired (a worker died or hung mid-send): one conditional UPDATE puts them back to
   ``pending`` and marks them ``unsure``. Any worker does this on every pass, not only at start-up.
2. **Claim** a batch with a lease (``claimed_by``, ``lease_until``): on PostgreSQL
   ``WITH pick AS MATERIALIZED (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... FROM pick RETURNING ...``, on
   SQLite ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING ...`` without the lock clause (SQLite has one
   writer). Only the *head* of each learner's lane
   is claimable: a row waits while an earlier row of the same person is being sent, is due, or is backing off after
   a failure. So a learner's messages go out in the order they were planned, and a retry holds that learner's later
   messages without holding anyone else's.
3. **Prepare** in one short transaction: people, enrolments, progress, cohorts and the rows themselves are loaded
   with one ``IN`` query each (the composer then finds them by id, :mod:`bot.storage.batch`); program content is in
   memory. Rows outside the learner's window are deferred, stale ones skipped.
4. **Dispatch** with no transaction open. Sends to different destinations run concurrently on a bounded pool;
   pacing is a scheduling decision: a destination that is not ready (the adapter's per-channel pacing, the shared
   workspace budget in :mod:`bot.nudges.budget`) is skipped for one that is, and nothing sleeps while other work is
   ready. The parts of a multi-part delivery go out in order, each carrying ``part i of n``.
5. **Record** outcomes, step openings, ``delivered`` learning events and cohort posts in bulk: one statement per
   kind of change (arrays on PostgreSQL, an executemany on SQLite; :mod:`bot.storage.bulk`).

Crash safety: an ``unsure`` row (reclaimed, or failed in a way the platform may still have stored, such as an HTTP
5xx or a lost answer) is reconciled before anything is re-sent: the adapter looks each remaining part up on the
platform (``Adapter.find_delivery``: message metadata or a nonce) and only missing parts are sent, in order. A graceful stop stops
claiming, lets in-flight sends finish for a bounded time, then releases the remaining claims without counting an
attempt.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import ColumnClause
from sqlalchemy.types import TypeEngine

from bot import metrics
from bot.clock import Clock
from bot.errors import AdapterError, BlendwiseError
from bot.journeys.compose import Composer
from bot.journeys.engine import Engine
from bot.journeys.model import AnyStep, PromptStep
from bot.journeys.timeline import due_after
from bot.markup import Markdown
from bot.messages import Message, MessageRef
from bot.nudges.budget import LocalBudget, SharedBudget
from bot.nudges.purposes import (
    ANNOUNCE,
    AUTOPAUSE,
    CHECKIN,
    COHORT_PROMPT,
    LEAD_PROMPT,
    REMIND,
    SESSION_CHANGE,
    SESSION_REMIND,
    STEP_PURPOSES,
    ChannelPost,
    DueRow,
    Purpose,
    PurposeRegistry,
)
from bot.nudges.sendpool import SendPool
from bot.ports import Adapter, ChannelTarget, Recipient
from bot.states import FINAL_STEP_STATES, DeliveryState, StepKind, StepState, Verb
from bot.storage import batch
from bot.storage.bulk import Build, execute_rows
from bot.storage.db import rowcount
from bot.storage.events import object_id
from bot.storage.models import (
    Cohort,
    CohortPost,
    Delivery,
    Enrollment,
    LearningEvent,
    Person,
    StepProgress,
)
from bot.storage.types import from_ms, to_ms
from bot.timewindow import Window

log = logging.getLogger(__name__)

#: A row left in ``sending`` with no lease (written before leases existed) counts as stuck after this long.
STUCK_AFTER = timedelta(minutes=5)

_deliveries: Table = Delivery.__table__  # type: ignore[assignment]
# States as SQL literals, not bound parameters: SQLite uses a partial index (``WHERE state = 'pending'``) only when
# the query's own condition names the same literal.
_PENDING: ColumnClause[str] = literal_column("'pending'")
_SENDING: ColumnClause[str] = literal_column("'sending'")
_progress: Table = StepProgress.__table__  # type: ignore[assignment]

# The columns of each kind of outcome row a batch records, with their SQL types (see bot.storage.bulk).
_SENT_TYPES: dict[str, TypeEngine[Any]] = {"id": BigInteger(), "ref": String()}
_RETRIED_TYPES: dict[str, TypeEngine[Any]] = {
    "id": BigInteger(),
    "state": String(),
    "due": BigInteger(),
    "attempts": Integer(),
    "error": String(),
    "payload": JSON(),
    "unsure": Boolean(),
}
_OPENED_TYPES: dict[str, TypeEngine[Any]] = {
    "id": BigInteger(), "ref": String(), "now": BigInteger(), "deadline": BigInteger()
}
_EVENT_TYPES: dict[str, TypeEngine[Any]] = {
    "ts": BigInteger(),
    "person_id": BigInteger(),
    "verb": String(),
    "object_type": String(),
    "object_id": String(),
    "enrollment_id": BigInteger(),
    "cohort_id": BigInteger(),
    "result": JSON(),
    "context": JSON(),
}
_POST_TYPES: dict[str, TypeEngine[Any]] = {
    "cohort_id": BigInteger(),
    "step_id": String(),
    "kind": String(),
    "channel": String(),
    "ref": String(),
    "created_at": BigInteger(),
}


@cache
def _inserting(table: Any) -> Build:
    """An INSERT of the rows' values into ``table`` (for :func:`~bot.storage.bulk.execute_rows`; one builder per
    table, so its statement is compiled once)."""
    return lambda v: insert(table).from_select(list(v), select(*v.values()))


# The outcome statements of a batch (bot.storage.bulk.execute_rows), over one row's values ``v``. Delivery updates
# are conditional on this worker (``:worker``) still holding the claim, so a lease another worker reclaimed is not
# overwritten.
def _sent_rows(v: Mapping[str, Any]) -> Any:
    d = _deliveries.c
    return (
        update(_deliveries)
        .where(d.id == v["id"], d.claimed_by == bindparam("worker", type_=String()))
        .values(
            state=DeliveryState.SENT,
            sent_at=bindparam("t", type_=BigInteger()),
            last_error=None,
            message_ref=v["ref"],
            claimed_by=None,
            lease_until=None,
            unsure=False,
        )
    )


def _retried_rows(v: Mapping[str, Any]) -> Any:
    d = _deliveries.c
    return (
        update(_deliveries)
        .where(d.id == v["id"], d.claimed_by == bindparam("worker", type_=String()))
        .values(
            state=v["state"],
            due_at=v["due"],
            attempts=v["attempts"],
            last_error=v["error"],
            payload=v["payload"],
            unsure=v["unsure"],
            claimed_by=None,
            lease_until=None,
        )
    )


def _opened_rows(v: Mapping[str, Any]) -> Any:
    # The step opens when its card actually reaches the learner, not when the tick plans it: that keeps the tick's
    # burst cost to inserts, and makes "open" mean "the learner has it". One UPDATE writes the reference and, if
    # the step was still locked, opens it (SET reads the row as it was before). A step's due time runs from its
    # delivery (a weekend unlock must not eat it).
    p = _progress.c
    locked = p.state == StepState.LOCKED
    return (
        update(_progress)
        .where(p.id == v["id"])
        .values(
            message_ref=v["ref"],
            state=case((locked, StepState.OPEN), else_=p.state),
            opened_at=case((locked, v["now"]), else_=p.opened_at),
            due_at=case((locked, func.coalesce(v["deadline"], p.due_at)), else_=p.due_at),
        )
    )



def _expired_at(t: Any, stuck: Any) -> Any:
    """Rows whose lease ran out at ``t`` (or, written before leases, left in ``sending`` since ``stuck``)."""
    d = _deliveries.c
    return and_(
        d.state == _SENDING,
        or_(d.lease_until < t, (d.lease_until.is_(None)) & (d.created_at <= stuck)),
    )


@lru_cache(maxsize=1)
def _probe_statement() -> Any:
    """Is anything due at ``:t``, and did any lease expire? One round trip over two partial indexes, built once
    (the demo and an idle worker probe on every pass)."""
    d = _deliveries.c
    due = exists().where(d.state == _PENDING, d.due_at <= bindparam("t"))
    return select(due, exists().where(_expired_at(bindparam("t"), bindparam("stuck"))))


@lru_cache(maxsize=1)
def _probe_due() -> Any:
    """Is any row due at ``:t``? One probe of the partial index on pending rows."""
    d = _deliveries.c
    return select(d.id).where(d.state == _PENDING, d.due_at <= bindparam("t")).limit(1)


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Any:
    """The claim: up to ``:n`` rows due at ``:t`` that head their learner's lane, marked ``sending`` for
    ``:worker`` until ``:lease``. Built once per dialect (a drain claims often, and building the statement, with
    its two aliases, cost more than running it); the values are bound parameters."""
    t: Any = bindparam("t")
    cand = _deliveries.alias("cand")
    earlier = _deliveries.alias("earlier")
    held = exists().where(
        earlier.c.person_id == cand.c.person_id,
        earlier.c.id < cand.c.id,
        earlier.c.state.in_([_PENDING, _SENDING]),
        or_(earlier.c.state == _SENDING, earlier.c.due_at <= t, earlier.c.attempts > 0, earlier.c.unsure.is_(True)),
    )
    pick = (
        select(cand.c.id)
        .where(cand.c.state == _PENDING, cand.c.due_at <= t, or_(cand.c.person_id.is_(None), ~held))
        .order_by(cand.c.due_at, cand.c.priority, cand.c.id)
        .limit(bindparam("n", type_=Integer))
    )
    d = _deliveries.c
    claim = update(_deliveries).values(
        state=DeliveryState.SENDING,
        claimed_by=bindparam("worker"),
        lease_until=bindparam("lease"),
        attempts=d.attempts + 1,
    )
    if dialect == "postgresql":
        # The picked ids are materialised once, then joined on the primary key. As ``id IN (SELECT ...
        # FOR UPDATE SKIP LOCKED LIMIT n)`` PostgreSQL may run the subquery once per outer row, and each
        # rerun skips the rows this same statement has just updated, so the LIMIT slides down the queue:
        # one claim took every due row (all 20,000 of a benchmark burst, in quadratic time) and the other
        # workers found nothing. The row lock re-checks ``state = 'pending'`` on the newest version.
        picked = pick.with_for_update(skip_locked=True, of=cand).cte("pick").prefix_with("MATERIALIZED")
        claim = claim.where(d.id == picked.c.id)
    else:
        claim = claim.where(d.id.in_(pick.scalar_subquery()), d.state == DeliveryState.PENDING)
    return claim.returning(
        d.id,
        d.purpose,
        d.person_id,
        d.attempts,
        d.payload,
        d.unsure,
        d.due_at,
        d.priority,
        d.enrollment_id,
        d.progress_id,
        d.cohort_id,
        d.expires_at,
        d.last_error,
    )


def worker_name() -> str:
    """A name for this worker that is unique across hosts and restarts (it goes into ``claimed_by``)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DrainResult:
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    released: int = 0
    reclaimed: int = 0
    by_purpose: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class Claimed:
    """The columns of a claimed row, as returned by the claim statement: all that preparing it reads (renderers
    see it as a :class:`~bot.nudges.purposes.DueRow`), so the batch loads no ORM object for its own rows."""

    id: int
    purpose: str
    person_id: int | None
    attempts: int
    payload: dict[str, Any] | None
    unsure: bool
    due_at: datetime
    priority: int
    enrollment_id: int | None
    progress_id: int | None
    cohort_id: int | None
    expires_at: datetime | None
    last_error: str | None
    #: When the claim's lease runs out (the injected clock), as written by the claim statement.
    lease_until: datetime | None = None


@dataclass
class Plan:
    """A prepared send: everything the platform calls need, gathered inside the prepare transaction."""

    delivery_id: int
    purpose: str
    adapter: Adapter
    messages: list[Message]
    attempts: int
    payload: dict[str, Any]
    parts_sent: int = 0
    unsure: bool = False
    to: Recipient | None = None
    target: ChannelTarget | None = None
    step_id: str | None = None
    post_kind: str = "announce"
    cohort_id: int | None = None
    progress_id: int | None = None
    #: For step deliveries: (person id, enrollment id, cohort id, program id, step id, step kind).
    step: tuple[int, int, int, str, str, str] | None = None
    #: The authored step a step delivery opens and the learner's window: its ``due`` runs from the moment the card
    #: is sent, in the learner's working days.
    authored: AnyStep | None = None
    window: Window | None = None
    due_at: datetime | None = None
    ref: MessageRef | None = None
    error: AdapterError | None = None
    ready_at: float = 0.0
    #: Still in flight when the grace period ran out: its outcome is unknown, so it is released as ``unsure``.
    abandoned: bool = False
    #: When this worker's lease on the row runs out, as far as this worker last confirmed it.
    lease_until: datetime | None = None
    #: The lease was lost (it expired and another worker reclaimed the row): never send it from here.
    lost: bool = False

    @property
    def destination(self) -> Recipient | ChannelTarget:
        if self.to is not None:
            return self.to
        assert self.target is not None
        return self.target

    @property
    def lane(self) -> tuple[str, str, str]:
        """Sends to one destination never overlap: the platform's per-channel order and pacing apply to it."""
        if self.to is not None:
            return ("dm", self.to.workspace, self.to.user_id)
        assert self.target is not None
        return ("channel", self.target.workspace, self.target.channel)


class Sender:
    """Drains the outbox. Thread-safe to :meth:`request_stop` from a signal handler or another thread.

    Args:
        factory: sessions on the database.
        engine: the core engine (windows, time zones, content).
        adapters: the running adapters by platform.
        clock: the injected clock (due times, leases).
        max_attempts: a row fails for good after this many attempts.
        batch: rows claimed per pass.
        purposes: how to render each purpose and whether it waits for the learner's window; the core's purposes
            are registered here, digests and features register theirs on the same registry.
        worker: this worker's name in ``claimed_by`` (unique by default).
        lease_seconds: how long a claim holds before another worker may reclaim it; renewed while sending.
        concurrency: sends running at once (each adapter may lower it with ``max_concurrency``).
        grace_seconds: after :meth:`request_stop`, how long in-flight sends may take before claims are released.
    """

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
        worker: str | None = None,
        lease_seconds: float = 120.0,
        concurrency: int = 16,
        grace_seconds: float = 10.0,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.adapters = adapters
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch = batch
        self.composer = Composer(engine)
        self.purposes = purposes if purposes is not None else PurposeRegistry()
        for purpose in core_purposes(self.composer, engine):
            self.purposes.register(purpose, owner=__name__)
        self.worker = worker or worker_name()
        self.lease = timedelta(seconds=lease_seconds)
        #: A send does not start on a lease with less than this left: it is renewed first.
        self._lease_margin = min(timedelta(seconds=5), self.lease / 4)
        self.concurrency = max(1, concurrency)
        self.grace_seconds = grace_seconds
        shared = factory.kw.get("bind") is not None and factory.kw["bind"].dialect.name == "postgresql"
        self.budget: SharedBudget | LocalBudget = SharedBudget(factory) if shared else LocalBudget()
        #: Per budget key, the wall time before which asking the budget is pointless (saves round trips).
        self._not_before: dict[str, float] = {}
        #: Per budget key, slots taken from the budget and not yet used (wall times, oldest first).
        self._slots: dict[str, deque[float]] = {}
        #: How many slots to ask the budget for at once: the plans ready to go (set by the dispatch loop).
        self._want = 1
        self._stopping = threading.Event()
        self._seq = itertools.count()

    # ------------------------------------------------------------------ driving
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop claiming; sends in flight get ``grace_seconds`` to finish, the rest is released."""
        self._stopping.set()

    def drain(self, limit: int | None = None) -> DrainResult:
        """Send everything due now, up to ``limit`` rows; returns early after :meth:`request_stop`."""
        result = DrainResult()
        remaining = limit if limit is not None else 10**9
        due, expired = self._probe()
        if expired:
            result.reclaimed = self.reclaim()
        elif not due:
            return result  # the idle pass: one read, nothing written
        probe = not due
        # The first batch is small, so sends start at once; the next batches are claimed while it sends.
        first = min(self.batch, max(2 * self.concurrency, self.batch // 4))
        while remaining > 0 and not self.stopping:
            claimed = self._claim(min(first, remaining), probe=probe)
            first = self.batch
            probe = True
            if not claimed:
                break
            remaining -= len(claimed)
            remaining = self._process(claimed, result, remaining)
        return result

    def _probe(self) -> tuple[bool, bool]:
        """Whether anything is due, and whether any lease expired: one round trip over two partial indexes."""
        now = self.clock.now()
        with self.factory() as session:
            row = session.execute(_probe_statement(), {"t": to_ms(now), "stuck": to_ms(now - STUCK_AFTER)}).one()
        return bool(row[0]), bool(row[1])

    @staticmethod
    def _expired(now: datetime) -> Any:
        return _expired_at(to_ms(now), to_ms(now - STUCK_AFTER))

    def reclaim(self) -> int:
        """Put rows whose lease expired back in the queue, marked ``unsure`` so they are reconciled before any
        part is sent again. Cheap when nothing expired (a probe of a partial index); safe to run on every worker
        at once (the UPDATE is conditional on the expired lease)."""
        now = self.clock.now()
        d = _deliveries.c
        expired = self._expired(now)
        # A read first: almost every pass finds nothing, and a read commits no write transaction.
        with self.factory() as session:
            if session.execute(select(d.id).where(expired).limit(1)).first() is None:
                return 0
        with self.factory() as session, session.begin():
            res = session.execute(
                update(_deliveries)
                .where(expired)
                .values(state=DeliveryState.PENDING, claimed_by=None, lease_until=None, unsure=True)
            )
            fixed = rowcount(res)
        if fixed:
            log.warning("reclaimed %d deliveries whose lease expired (a worker stopped mid-send)", fixed)
            metrics.lease_reclaimed(fixed)
        return fixed

    def recover(self) -> int:
        """Kept for start-up: the same as :meth:`reclaim`, which every drain pass runs anyway."""
        return self.reclaim()

    def release(self) -> int:
        """Give back every row this worker still holds, without counting an attempt (graceful stop)."""
        d = _deliveries.c
        with self.factory() as session, session.begin():
            res = session.execute(
                update(_deliveries)
                .where(d.state == DeliveryState.SENDING, d.claimed_by == self.worker)
                .values(state=DeliveryState.PENDING, claimed_by=None, lease_until=None, attempts=d.attempts - 1)
            )
            return rowcount(res)

    # ------------------------------------------------------------------ 1-2: claiming
    def _claim(self, n: int, *, probe: bool = True) -> list[Claimed]:
        now = self.clock.now()
        t = to_ms(now)
        with self.factory() as session:
            dialect = session.get_bind().dialect.name
            if probe and session.execute(_probe_due(), {"t": t}).first() is None:
                return []  # the idle fast path: one probe of the partial index on pending rows
        params = {"t": t, "n": n, "worker": self.worker, "lease": to_ms(now + self.lease)}
        with self.factory() as session, session.begin():
            rows = session.execute(_claim_statement(dialect), params).all()
        claimed = [Claimed(*row) for row in rows]
        for c in claimed:
            c.lease_until = now + self.lease
        claimed.sort(key=lambda c: (c.due_at, c.priority, c.id))
        return claimed

    # ------------------------------------------------------------------ 3: preparing
    def _process(self, claimed: list[Claimed], result: DrainResult, remaining: int) -> int:
        """Prepare, send and record ``claimed``, claiming further batches while it sends; returns ``remaining``
        less what those further batches took."""
        left = [remaining]

        def refill(finished: list[Plan]) -> list[Plan]:
            # The next batch is claimed while the current one's last sends are in flight, so a batch boundary costs
            # no idle time (a paced drain would otherwise wait out each batch's tail before claiming). Finished
            # plans are recorded first: a learner's next delivery is claimable once the earlier one is recorded.
            self._record(finished, {}, result)
            if left[0] <= 0 or self.stopping:
                return []
            more = self._claim(min(self.batch, left[0]))
            left[0] -= len(more)
            fresh, skipped = self._prepare_batch(more, result) if more else ([], {})
            self._record([], skipped, result)
            return fresh

        plans, outcomes = self._prepare_batch(claimed, result)
        self._record([], outcomes, result)
        if plans:
            self._record(self._dispatch(plans, refill), {}, result)
        return left[0]

    def _prepare_batch(self, claimed: list[Claimed], result: DrainResult) -> tuple[list[Plan], dict[int, str]]:
        """Prepare each claimed row in one read transaction; rows that will not be sent now (deferred to the
        learner's window, skipped, or failed while rendering) are written back in the same transaction, with one
        statement."""
        now = self.clock.now()
        plans: list[Plan] = []
        outcomes: dict[int, str] = {}
        back: list[dict[str, Any]] = []
        with self.factory() as session, session.begin():
            session.info["batch"] = {}  # lets the composer cache per-cohort lookups for this batch
            self._preload(session, claimed)
            for c in claimed:
                try:
                    plan = self._prepare(session, c, now)
                except AdapterError as exc:
                    outcomes[c.id] = self._failed(c, str(exc), exc.retryable, exc.retry_after, back)
                    continue
                except BlendwiseError as exc:
                    outcomes[c.id] = self._failed(c, str(exc), False, None, back)
                    continue
                except Exception as exc:  # a bug: keep the row, log it, try again later
                    log.exception("unexpected error preparing delivery %s", c.id)
                    outcomes[c.id] = self._failed(c, f"internal error: {type(exc).__name__}", True, None, back)
                    continue
                if isinstance(plan, str):
                    # Deferred: back to pending at the window's opening (set by _prepare), the attempt uncounted.
                    deferred = plan == "deferred"
                    state = DeliveryState.PENDING if deferred else DeliveryState.SKIPPED
                    attempts = c.attempts - 1 if deferred else c.attempts
                    back.append(_outcome(c.id, state, c.due_at, attempts, c.last_error, c.payload, c.unsure))
                    outcomes[c.id] = plan
                    continue
                plan.attempts, plan.unsure, plan.due_at = c.attempts, c.unsure, c.due_at
                plan.lease_until = c.lease_until
                plans.append(plan)
            execute_rows(session, back, _RETRIED_TYPES, _retried_rows, {"worker": self.worker})
        return plans, outcomes

    def _failed(
        self, c: Claimed, error: str, retryable: bool, retry_after: float | None, back: list[dict[str, Any]]
    ) -> str:
        """A row that failed before any send: retried after a backoff, or failed for good; returns the outcome."""
        retry_at = self._retry_at(c.id, c.attempts, error, retryable, retry_after, self.clock.now())
        state = DeliveryState.FAILED if retry_at is None else DeliveryState.PENDING
        back.append(_outcome(c.id, state, retry_at or c.due_at, c.attempts, error, c.payload, c.unsure))
        return "failed" if retry_at is None else "retried"

    def _retry_at(
        self, delivery_id: int, attempts: int, error: str, retryable: bool, retry_after: float | None, now: datetime
    ) -> datetime | None:
        """When a failed row is tried again (exponential backoff, or the platform's Retry-After), or ``None`` when
        it has failed for good; logs which."""
        if retryable and attempts < self.max_attempts:
            backoff = timedelta(seconds=retry_after if retry_after is not None else min(30 * 2 ** (attempts - 1), 3600))
            log.warning("delivery %s failed (%s); retry %d in %s", delivery_id, error, attempts, backoff)
            return now + backoff
        log.error("delivery %s failed for good after %d attempt(s): %s", delivery_id, attempts, error)
        return None

    def _preload(self, session: Session, rows: list[Claimed]) -> None:
        """Load what the batch needs with one ``IN`` query per table, as read-only rows kept for the batch
        (:mod:`bot.storage.batch`: composing then finds each row by id)."""
        progress = batch.load(session, StepProgress, {d.progress_id for d in rows if d.progress_id})
        enrollment_ids = {d.enrollment_id for d in rows if d.enrollment_id} | {sp.enrollment_id for sp in progress}
        enrollments = batch.load(session, Enrollment, enrollment_ids)
        batch.load(session, Person, {d.person_id for d in rows if d.person_id} | {e.person_id for e in enrollments})
        batch.load(session, Cohort, {d.cohort_id for d in rows if d.cohort_id} | {e.cohort_id for e in enrollments})

    def _recipient(self, person: Person, cohort: Cohort | None = None) -> Recipient:
        return Recipient(
            person.platform, person.workspace, person.user_id, person.name, self.engine.person_tz(person, cohort)
        )

    def _prepare(self, session: Session, d: Claimed, now: datetime) -> Plan | str:
        if d.expires_at is not None and now > d.expires_at:
            return "skipped"
        if d.person_id is None:
            return self._prepare_channel(session, d)
        person = batch.get(session, Person, d.person_id)
        assert person is not None
        if person.opted_out:
            return "skipped"
        cohort = batch.get(session, Cohort, d.cohort_id) if d.cohort_id else None
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
        sp = batch.get(session, StepProgress, d.progress_id) if d.progress_id else None
        step, authored, calendar = self._opening(session, person, cohort, sp) if purpose.opens_step else (None,) * 3
        return Plan(
            delivery_id=d.id,
            purpose=d.purpose,
            adapter=adapter,
            messages=messages,
            attempts=d.attempts,
            payload=dict(d.payload or {}),
            parts_sent=int((d.payload or {}).get("parts_sent", 0)),
            to=self._recipient(person, cohort),
            progress_id=d.progress_id,
            step=step,
            authored=authored,
            window=calendar,
        )

    def _opening(
        self, session: Session, person: Person, cohort: Cohort | None, sp: StepProgress | None
    ) -> tuple[tuple[int, int, int, str, str, str] | None, AnyStep | None, Window | None]:
        """What recording a step card needs: the step's identity for its event, the authored step and the
        learner's working days (its due time runs from the delivery)."""
        if sp is None:
            return None, None, None
        enrollment = batch.get(session, Enrollment, sp.enrollment_id)
        assert enrollment is not None
        step = (person.id, enrollment.id, enrollment.cohort_id, enrollment.program_id, sp.step_id, sp.kind)
        authored = self.engine.library.program(enrollment.program_id).step(sp.step_id)
        return step, authored, self.engine.window(person, cohort, respect_pause=False)

    def _purpose(self, d: Claimed) -> Purpose:
        purpose = self.purposes.get(d.purpose)
        if purpose is None or purpose.render is None:
            raise AdapterError(f"no renderer for purpose '{d.purpose}'", retryable=False)
        return purpose

    @staticmethod
    def _call(purpose: Purpose, session: Session, d: Claimed) -> Any:
        assert purpose.render is not None
        return purpose.render(session, d)

    def _prepare_channel(self, session: Session, d: Claimed) -> Plan | str:
        cohort = batch.get(session, Cohort, d.cohort_id)
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
            delivery_id=d.id,
            purpose=d.purpose,
            adapter=adapter,
            messages=[out.message],
            attempts=d.attempts,
            payload=dict(d.payload or {}),
            parts_sent=int((d.payload or {}).get("parts_sent", 0)),
            target=ChannelTarget(cohort.workspace, cohort.channel, out.thread),
            step_id=out.step_id,
            post_kind=out.kind,
            cohort_id=cohort.id,
        )

    # ------------------------------------------------------------------ 4: dispatching
    def _dispatch(self, plans: list[Plan], refill: Callable[[list[Plan]], list[Plan]] | None = None) -> list[Plan]:
        """Send every plan's missing parts: concurrently across destinations, in order within one, paced by
        scheduling (a destination that is not ready waits in a heap while others are served).

        When fewer than a quarter of a batch is left, ``refill`` runs on a helper thread: it records the plans
        finished so far and claims and prepares the next batch, whose plans join the same schedule, while the sends
        in flight go on (a batch boundary costs no idle time). Returns the plans still to be recorded.
        """
        s = _Schedule(self._seq)
        s.add(plans)
        width = min([self.concurrency, *(_concurrency(p.adapter) for p in plans)])
        low_water = max(2 * width, self.batch // 4)
        pool = SendPool(width, self._send_parts) if width > 1 else None
        loader = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim") if refill is not None else None
        loading: cf.Future[list[Plan]] | None = None
        next_refill = 0.0
        renew_every = max(1.0, self.lease.total_seconds() / 3)
        last_renew = time.monotonic()
        stop_at = float("inf")
        try:
            while s.queued or loading is not None:
                mono = time.monotonic()
                if self.stopping and stop_at == float("inf"):
                    stop_at = mono + self.grace_seconds
                if mono - last_renew >= renew_every:
                    self._renew(s.plans)  # finished plans too: their rows stay claimed until recorded
                    last_renew = mono
                if loading is not None and loading.done():
                    fresh, loading = loading.result(), None
                    next_refill = self._refilled(s, fresh, mono)
                idle_loader = loader is not None and loading is None and not self.stopping
                # More work is wanted when the schedule runs low, or when nothing is in flight and nothing can go
                # now (every plan left waits for its channel, e.g. a lesson's next part): other learners could.
                idle = not s.running and (not s.ready or s.ready[0][0] > mono + 0.05)
                if idle_loader and mono >= next_refill and (s.queued < low_water or idle):
                    assert loader is not None and refill is not None
                    if idle or (s.ready and s.ready[0][0] > mono):
                        # The loop is waiting on pacing anyway: claim on the helper thread meanwhile.
                        loading = loader.submit(refill, s.take_finished())
                        if pool is not None:
                            loading.add_done_callback(lambda _: pool.wake())
                    else:
                        # Sends can go now: claiming here is cheaper than a helper thread contending with the
                        # send threads for the interpreter (a fast adapter would slow to a crawl).
                        next_refill = self._refilled(s, refill(s.take_finished()), mono)
                if self.stopping:
                    # No new part starts; what is in flight may finish within the grace period.
                    s.halt()
                    if (not s.running and loading is None) or mono >= stop_at:
                        break
                started = self._start_ready(s, mono, width, pool)
                if pool is None and started:
                    continue
                self._await(s, width, stop_at, loading, pool)
        finally:
            for plan in s.running.values():
                plan.abandoned = True
            if pool is not None:
                # In-flight sends past the grace period are abandoned: their rows stay claimed until
                # release() (or another worker's reclaim) and are reconciled before any re-send.
                pool.close()
            if loader is not None:
                loader.shutdown(wait=True)  # a claim under way completes; its plans are released with the rest
                if loading is not None and loading.exception() is None:
                    s.plans += loading.result()
        return s.plans

    @staticmethod
    def _refilled(s: _Schedule, fresh: list[Plan], mono: float) -> float:
        """Add a refill's plans; returns when to try the next refill (nothing more due: not on every turn)."""
        s.add(fresh)
        return 0.0 if fresh else mono + 0.25

    def _start_ready(self, s: _Schedule, mono: float, width: int, pool: SendPool[Plan] | None) -> bool:
        """Start every plan whose time has come and whose destination and budget are ready; True if any began."""
        started = False
        self._want = max(1, min(len(s.ready), width - len(s.running)))
        while s.ready and s.ready[0][0] <= mono and len(s.running) < width and not self.stopping:
            _, _, plan = heapq.heappop(s.ready)
            if plan.lease_until is not None and plan.lease_until - self.clock.now() < self._lease_margin:
                self._renew(s.plans)  # never start a send on a lease that may run out meanwhile
            if plan.lost:
                s.drop(plan)
                continue
            if plan.lane in s.busy:
                s.blocked.append(plan)
                continue
            wait = self._slot(plan)
            if wait > 0:
                s.push(plan, mono + wait)
                continue
            s.busy.add(plan.lane)
            if pool is None:
                self._send_parts(plan)
                s.after_part(plan)
            else:
                s.running[id(plan)] = plan
                pool.submit(plan)
            started = True
        return started

    def _await(
        self,
        s: _Schedule,
        width: int,
        stop_at: float,
        loading: cf.Future[list[Plan]] | None,
        pool: SendPool[Plan] | None,
    ) -> None:
        """Wait for a send or the next batch to complete, or for the next plan's time, whichever is first."""
        now = time.monotonic()
        timeout = 1.0
        if s.ready and len(s.running) < width:
            timeout = min(timeout, max(0.0, s.ready[0][0] - now))
        if self.stopping:
            timeout = min(timeout, max(0.0, stop_at - now))
        if pool is not None and (s.running or loading is not None):
            # The loader wakes the pool's queue when its batch is ready (a done callback), so one wait covers both.
            if loading is not None and loading.done():
                timeout = 0.0
            for plan in pool.finished(timeout):
                s.after_part(s.running.pop(id(plan)))
        elif loading is not None:
            cf.wait([loading], timeout=timeout)
        elif timeout > 0 and s.queued:
            time.sleep(min(timeout, 0.5))

    def _slot(self, plan: Plan) -> float:
        """Seconds until ``plan``'s next part may go out: the adapter's pacing, then the shared workspace budget."""
        adapter = plan.adapter
        rate = adapter.workspace_rate
        if rate is not None and plan.ready_at <= 0:
            # The destination's own pacing first, taking nothing: a budget slot taken for a channel that is not
            # ready would pass unused (a lesson's next part waits about a second after the previous one).
            channel_wait = adapter.ready_in(plan.destination)
            if channel_wait > 0:
                return channel_wait
            at, wait = self._budget_slot(f"{adapter.platform}:{plan.destination.workspace}", rate)
            if at is None:
                return wait
            plan.ready_at = at  # a slot is ours from ``at`` on
        if plan.ready_at > 0:
            wait = plan.ready_at - time.time()
            if wait > 0:
                return wait
            if rate is not None and -wait > max(0.05, 2.0 / rate):
                # A stalled loop would send slots that matured together as a burst: let a stale slot go (it has
                # passed; the budget stays spaced) and take a fresh one.
                plan.ready_at = 0.0
                return self._slot(plan)
        wait = adapter.reserve(plan.destination)
        if wait > 0:
            return wait
        plan.ready_at = 0.0
        return 0.0

    def _budget_slot(self, key: str, rate: float) -> tuple[float | None, float]:
        """A workspace budget slot (wall time) for one post, or ``(None, seconds to wait)``.

        Slots are taken from the budget several at a time (as many as plans are ready, within its horizon) and
        handed out from a local queue; a slot that went stale while queued is let go, never sent late as a burst.
        """
        now = time.time()
        slots = self._slots.setdefault(key, deque())
        stale = max(0.05, 2.0 / rate)
        while slots and slots[0] < now - stale:
            slots.popleft()
        if not slots:
            not_before = self._not_before.get(key, 0.0)
            if not_before > now:
                return None, not_before - now
            taken, again = self.budget.take(key, rate, self._want)
            if not taken:
                self._not_before[key] = again
                return None, max(0.001, again - now)  # nothing taken; ask again when the budget frees up
            slots.extend(taken)
            self._not_before[key] = taken[-1] + 1.0 / rate - self.budget.horizon
        return slots.popleft(), 0.0

    def _send_parts(self, plan: Plan) -> None:
        """Send the plan's next missing part, then go on with its later parts on the same thread while
        :meth:`_goes_on` allows: handing each part back to the dispatch loop costs a thread switch both ways, more
        than a fast platform call."""
        while True:
            self._send_next_part(plan)
            if plan.error is not None or plan.parts_sent >= len(plan.messages) or not self._goes_on(plan):
                return
            plan.ref = None

    def _goes_on(self, plan: Plan) -> bool:
        """Whether the plan's next part may follow at once: nothing stops or took the row, the lease has margin, no
        shared workspace budget needs a slot for it (those parts go back through the loop's scheduling), and the
        adapter's own pacing gives the destination a slot now (taking it)."""
        if self.stopping or plan.lost or plan.abandoned or plan.adapter.workspace_rate is not None:
            return False
        if plan.lease_until is not None and plan.lease_until - self.clock.now() < self._lease_margin:
            return False
        return plan.adapter.reserve(plan.destination) <= 0

    def _send_next_part(self, plan: Plan) -> None:
        """Send (or, if the outcome of an earlier try is unknown, first look for) the next missing part."""
        i = plan.parts_sent
        message = plan.messages[i]
        try:
            if plan.unsure:
                found = plan.adapter.find_delivery(plan.destination, plan.delivery_id, i + 1)
                if found is not None:
                    plan.ref, plan.parts_sent = found, i + 1
                    return
                # Parts go out in order: once one is missing, none after it was sent.
                plan.unsure = False
            started = time.perf_counter()
            if message.replaces is not None:
                plan.ref = self._edit(plan, message.replaces, message)
            elif plan.to is not None:
                plan.ref = plan.adapter.send_direct(plan.to, message)
            else:
                assert plan.target is not None
                plan.ref = plan.adapter.send_channel(
                    plan.target.workspace, plan.target.channel, message, thread=plan.target.thread
                )
            plan.parts_sent = i + 1
            metrics.sent(plan.adapter.platform, time.perf_counter() - started)
        except AdapterError as exc:
            if exc.retry_after is not None:  # adapters set retry_after only for a platform's 429
                metrics.rate_limited(plan.adapter.platform)
            plan.error = exc
        except BlendwiseError as exc:
            plan.error = AdapterError(str(exc), retryable=False)
        except Exception as exc:  # a bug: keep the row, log it, try again later
            log.exception("unexpected error sending delivery %s", plan.delivery_id)
            plan.error = AdapterError(f"internal error: {type(exc).__name__}", retryable=True)

    @staticmethod
    def _edit(plan: Plan, ref: MessageRef, message: Message) -> MessageRef:
        """Edit an earlier message in place (a moved session's invite). Editing twice is harmless, so an unsure
        retry simply edits again; a message the platform no longer has (deleted by the learner) is logged and the
        delivery goes on with its next part."""
        try:
            plan.adapter.update(ref, message)
        except AdapterError as exc:
            if exc.retryable:
                raise
            log.warning("delivery %s could not edit %s in place: %s", plan.delivery_id, ref.encode(), exc)
        return ref

    def _renew(self, plans: list[Plan]) -> None:
        """Extend the lease on every plan not yet recorded; a plan whose row this worker no longer holds (its lease
        ran out and another worker reclaimed it) is marked lost, so nothing more of it is sent from here."""
        if not plans:
            return
        d = _deliveries.c
        now = self.clock.now()
        until = now + self.lease
        with self.factory() as session, session.begin():
            held = set(
                session.scalars(
                    update(_deliveries)
                    .where(
                        d.id.in_([p.delivery_id for p in plans]),
                        d.claimed_by == self.worker,
                        d.state == DeliveryState.SENDING,
                    )
                    .values(lease_until=to_ms(until))
                    .returning(d.id)
                )
            )
        for plan in plans:
            if plan.delivery_id in held:
                plan.lease_until = until
            elif not plan.lost:
                plan.lost = True
                log.warning("lost the lease on delivery %s (another worker took it over)", plan.delivery_id)

    # ------------------------------------------------------------------ 5: recording
    def _record(self, plans: list[Plan], outcomes: dict[int, str], result: DrainResult) -> None:
        now = self.clock.now()
        t = to_ms(now)
        sent: list[dict[str, Any]] = []
        retried: list[dict[str, Any]] = []
        opened: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        posts: list[dict[str, Any]] = []
        deadlines: dict[tuple[int, Window], int | None] = {}
        for plan in plans:
            if plan.lost:
                continue  # another worker holds the row now
            if plan.abandoned:
                # Its request may still reach the platform after we let go: nobody looks (and re-sends) before a
                # lease has passed. Unsure, it holds the learner's later deliveries until reconciled.
                due = now + self.lease
                retried.append(self._row(plan, DeliveryState.PENDING, due, plan.attempts - 1, None, plan.payload, True))
                outcomes[plan.delivery_id] = "released"
                continue
            done = plan.error is None and plan.parts_sent >= len(plan.messages)
            if done:
                assert plan.ref is not None
                sent.append({"id": plan.delivery_id, "ref": plan.ref.encode()})
                outcomes[plan.delivery_id] = "sent"
                result.by_purpose[plan.purpose] = result.by_purpose.get(plan.purpose, 0) + 1
                _delivered_rows(plan, plan.ref, t, posts, opened, events, deadlines)
                continue
            payload = plan.payload
            if len(plan.messages) > 1:
                # Remember progress through multi-part lessons so a retry resumes instead of repeating part 1.
                payload = {**payload, "parts_sent": plan.parts_sent}
            if plan.error is None:  # stopped before every part went out: released without counting an attempt
                retried.append(self._row(plan, DeliveryState.PENDING, None, plan.attempts - 1, None, payload, plan.unsure))
                outcomes[plan.delivery_id] = "released"
                continue
            exc = plan.error
            # An error without Retry-After may have reached the platform (a 5xx after it stored the message, a
            # lost answer): look before sending that part again. A 429 means nothing was stored.
            unsure = exc.retry_after is None
            retry_at = self._retry_at(plan.delivery_id, plan.attempts, str(exc), exc.retryable, exc.retry_after, now)
            state = DeliveryState.FAILED if retry_at is None else DeliveryState.PENDING
            retried.append(self._row(plan, state, retry_at, plan.attempts, str(exc), payload, unsure))
            outcomes[plan.delivery_id] = "failed" if retry_at is None else "retried"
        self._write_outcomes(t, sent, retried, opened, events, posts)
        for outcome in outcomes.values():
            result.add(outcome)

    def _write_outcomes(
        self,
        t: int,
        sent: list[dict[str, Any]],
        retried: list[dict[str, Any]],
        opened: list[dict[str, Any]],
        events: list[dict[str, Any]],
        posts: list[dict[str, Any]],
    ) -> None:
        """Write a batch's outcomes in one transaction, one statement per kind of change whatever the batch size
        (:func:`~bot.storage.bulk.execute_rows`: arrays on PostgreSQL, an executemany on SQLite; the statements
        are :func:`_sent_rows` and its neighbours).
        """
        if not (sent or retried or opened or events or posts):
            return
        with self.factory() as session, session.begin():
            mine = {"worker": self.worker}
            execute_rows(session, sent, _SENT_TYPES, _sent_rows, {**mine, "t": t})
            execute_rows(session, retried, _RETRIED_TYPES, _retried_rows, mine)
            execute_rows(session, opened, _OPENED_TYPES, _opened_rows)
            execute_rows(session, events, _EVENT_TYPES, _inserting(LearningEvent.__table__))
            execute_rows(session, posts, _POST_TYPES, _inserting(CohortPost.__table__))

    @staticmethod
    def _row(
        plan: Plan,
        state: str,
        due: datetime | None,
        attempts: int,
        error: str | None,
        payload: dict[str, Any],
        unsure: bool,
    ) -> dict[str, Any]:
        # Without a new due time (released, failed for good) a row keeps its own, so it keeps its place in its lane.
        kept = due or plan.due_at or datetime.now(UTC)
        return _outcome(plan.delivery_id, state, kept, attempts, error, payload, unsure)


def _outcome(
    delivery_id: int,
    state: str,
    due: datetime,
    attempts: int,
    error: str | None,
    payload: dict[str, Any] | None,
    unsure: bool,
) -> dict[str, Any]:
    """One row's values for :func:`_retried_rows`: the row goes back to ``state``, unclaimed."""
    return {
        "id": delivery_id,
        "state": state,
        "due": to_ms(due),
        "attempts": attempts,
        "error": error[:500] if error else None,
        "payload": payload or None,
        "unsure": unsure,
    }


def _ms_or_none(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def core_purposes(composer: Composer, engine: Engine) -> list[Purpose]:
    """The core's purposes with their renderers: step cards, reminders, session reminders and check-ins, the
    auto-pause notice, and the cohort channel's discussion prompts and announcements."""

    def progress(session: Session, d: DueRow) -> StepProgress:
        sp = batch.get(session, StepProgress, d.progress_id)
        assert sp is not None
        return sp

    def step_card(session: Session, d: DueRow) -> list[Message]:
        return composer.step_card(session, progress(session, d))

    def reminder(session: Session, d: DueRow) -> list[Message]:
        sp = progress(session, d)
        if sp.state != StepState.OPEN:
            return []
        return composer.step_card(session, sp, reminder=True)

    def session_reminder(session: Session, d: DueRow) -> Message | None:
        sp = progress(session, d)
        if sp.state in FINAL_STEP_STATES:  # attended, missed, skipped or no longer applicable: nothing to remind
            return None
        return composer.session_reminder(session, sp, checkin=d.purpose == CHECKIN.name)

    def session_change(session: Session, d: DueRow) -> list[Message] | None:
        return composer.session_change(session, progress(session, d))

    def autopause(session: Session, d: DueRow) -> Message:
        enrollment = batch.get(session, Enrollment, d.enrollment_id)
        assert enrollment is not None
        return composer.autopause(session, enrollment)

    def cohort_prompt(session: Session, d: DueRow) -> ChannelPost:
        cohort = batch.get(session, Cohort, d.cohort_id)
        assert cohort is not None
        step = engine.library.step(cohort.program_id, progress(session, d).step_id)
        assert isinstance(step, PromptStep)
        return ChannelPost(composer.authored_prompt(session, cohort, step), kind="prompt", step_id=step.id)

    def lead_post(session: Session, d: DueRow) -> ChannelPost:
        cohort = batch.get(session, Cohort, d.cohort_id)
        assert cohort is not None
        payload = d.payload or {}
        title = payload.get("title", "Announcement")
        # A lead's prompt or announcement is authored Markdown, as a program's prompt text is.
        text = Markdown(payload.get("text", ""))
        message = composer.cohort_prompt(session, cohort, None, text, title=title)
        kind = "prompt" if d.purpose == LEAD_PROMPT.name else "announce"
        return ChannelPost(message, kind=kind, thread=payload.get("thread"))

    return [
        *(purpose.bind(step_card) for purpose in STEP_PURPOSES.values()),
        REMIND.bind(reminder),
        SESSION_REMIND.bind(session_reminder),
        CHECKIN.bind(session_reminder),
        SESSION_CHANGE.bind(session_change),
        AUTOPAUSE.bind(autopause),
        COHORT_PROMPT.bind(cohort_prompt),
        LEAD_PROMPT.bind(lead_post),
        ANNOUNCE.bind(lead_post),
    ]


def _delivered_rows(
    plan: Plan,
    ref: MessageRef,
    t: int,
    posts: list[dict[str, Any]],
    opened: list[dict[str, Any]],
    events: list[dict[str, Any]],
    deadlines: dict[tuple[int, Window], int | None],
) -> None:
    """What a delivered plan adds besides its own row: a cohort post, or a step opening and its learning event.

    ``deadlines`` keeps each step's due time per learner window for the batch (all recorded at the same ``t``)."""
    if plan.to is None:
        posts.append(
            {
                "cohort_id": plan.cohort_id,
                "step_id": plan.step_id,
                "kind": plan.post_kind,
                "channel": ref.channel,
                "ref": ref.ts,
                "created_at": t,
            }
        )
    elif plan.step is not None:
        person_id, enrollment_id, cohort_id, program_id, step_id, kind = plan.step
        deadline = None
        if plan.authored is not None and plan.window is not None:
            key = (id(plan.authored), plan.window)
            if key not in deadlines:
                deadlines[key] = _ms_or_none(due_after(plan.authored, from_ms(t), plan.window))
            deadline = deadlines[key]
        opened.append({"id": plan.progress_id, "ref": ref.encode(), "now": t, "deadline": deadline})
        events.append(
            {
                "ts": t,
                "person_id": person_id,
                "verb": Verb.DELIVERED,
                "object_type": "session" if kind == StepKind.SESSION else "step",
                "object_id": object_id(program_id, step_id),
                "enrollment_id": enrollment_id,
                "cohort_id": cohort_id,
                "result": None,
                "context": {"extensions": {"delivery_id": plan.delivery_id}},
            }
        )


class _Schedule:
    """The dispatch loop's state: plans by the time they may go next, lanes with a send in flight, plans waiting
    for a busy lane, sends in flight, and plans finished but not yet recorded."""

    def __init__(self, seq: itertools.count[int]) -> None:
        self._seq = seq
        self.plans: list[Plan] = []  # every plan not yet recorded
        self.ready: list[tuple[float, int, Plan]] = []
        self.busy: set[tuple[str, str, str]] = set()
        self.blocked: list[Plan] = []  # waiting for a busy lane (two channel posts to one channel)
        self.running: dict[int, Plan] = {}  # sends in flight, by id(plan)
        self.finished: list[Plan] = []

    @property
    def queued(self) -> int:
        return len(self.ready) + len(self.blocked) + len(self.running)

    def add(self, plans: list[Plan]) -> None:
        _number_parts(plans)
        self.plans += plans
        for plan in plans:
            self.push(plan, 0.0)

    def push(self, plan: Plan, at: float) -> None:
        heapq.heappush(self.ready, (at, next(self._seq), plan))

    def after_part(self, plan: Plan) -> None:
        self.busy.discard(plan.lane)
        if plan.error is None and plan.parts_sent < len(plan.messages):
            plan.ref = None
            self.push(plan, 0.0)
        else:
            self.finished.append(plan)
        for waiting in [p for p in self.blocked if p.lane == plan.lane]:
            self.blocked.remove(waiting)
            self.push(waiting, 0.0)

    def drop(self, plan: Plan) -> None:
        """Forget a plan whose row another worker took over: it is neither sent nor recorded here."""
        self.plans = [p for p in self.plans if p is not plan]

    def take_finished(self) -> list[Plan]:
        """Hand the finished plans over for recording (they leave the schedule)."""
        done, self.finished = self.finished, []
        taken = {id(p) for p in done}
        self.plans = [p for p in self.plans if id(p) not in taken]
        return done

    def halt(self) -> None:
        self.ready.clear()
        self.blocked.clear()


def _number_parts(plans: list[Plan]) -> None:
    """Tag each message with its delivery and ``part i of n`` (the platform lookup after a crash uses them)."""
    for plan in plans:
        n = len(plan.messages)
        for i, message in enumerate(plan.messages):
            message.delivery_id = plan.delivery_id
            message.part, message.parts = i + 1, n


def _concurrency(adapter: Adapter) -> int:
    return int(getattr(adapter, "max_concurrency", 1))
