"""The one way into the outbox: :class:`Purpose`, its registry, and :func:`enqueue`.

Every row of the ``deliveries`` table is created here, by one of three functions:

* :func:`enqueue` plans one message (a lead's announcement, a digest, a recap-ready notice...);
* :func:`enqueue_many` plans a list of them in one statement (reinforcement planning);
* :func:`insert_planned` plans a whole set with ``INSERT ... SELECT`` (the tick), its columns built by
  :func:`planned_columns` from the same :class:`Purpose`.

All three are idempotent through the row's ``key``: planning the same key twice leaves one row, whether the two
attempts are in one transaction, two ticks racing, or two workers. A purpose owns its key scheme (a prefix and the
parts after it), its priority, whether it waits for the learner's working window, whether it is a channel post,
and how the sender renders it, so no caller invents a key format or a magic priority number, and nothing ever
parses a key back: code that needs "the row for poll 7" builds the key with :meth:`Purpose.key` and looks it up.

Purposes are plain values (the tick and the planners use them without a registry); the sender finds a row's
renderer and policy in a :class:`PurposeRegistry`, where each purpose is registered once, by the core or by the
feature that owns it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from sqlalchemy import Engine, String, cast, literal, null
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from bot.errors import DuplicateRegistration
from bot.states import DeliveryState, PurposeName, StepKind
from bot.storage.db import rowcount
from bot.storage.models import Delivery

if TYPE_CHECKING:
    from bot.messages import Message


@dataclass
class ChannelPost:
    """What a channel purpose's renderer returns when the post is more than a message.

    Attributes:
        message: the post itself.
        kind: the ``cohort_posts.kind`` recorded once it is sent (prompt, announce, recap, poll...).
        thread: reply in this thread instead of posting at the top of the channel.
        step_id: the step a discussion post belongs to, so learners' replies in its thread count for that step.
    """

    message: Message
    kind: str
    thread: str | None = None
    step_id: str | None = None


class DueRow(Protocol):
    """What a renderer reads of the row it renders: the claimed row's columns, as the claim statement returned them
    (the sender loads no ORM object for its own rows; a :class:`~bot.storage.models.Delivery` reads the same)."""

    @property
    def id(self) -> int: ...
    @property
    def purpose(self) -> str: ...
    @property
    def person_id(self) -> int | None: ...
    @property
    def enrollment_id(self) -> int | None: ...
    @property
    def progress_id(self) -> int | None: ...
    @property
    def cohort_id(self) -> int | None: ...
    @property
    def payload(self) -> dict[str, Any] | None: ...
    @property
    def due_at(self) -> datetime: ...


#: A renderer turns a due row into what the adapter sends: one message, several (a multi-part lesson), a
#: :class:`ChannelPost`, or ``None`` when the row no longer makes sense (the row is then skipped, not sent).
Rendered: TypeAlias = "Message | list[Message] | ChannelPost | None"
Renderer: TypeAlias = Callable[[Session, DueRow], Any]


@dataclass(frozen=True)
class Purpose:
    """Why a message is sent, and everything the outbox needs to know about such messages.

    Attributes:
        name: stored in ``deliveries.purpose``.
        priority: lower goes first among rows due at the same time. Channel posts precede the direct messages that
            point at them; reminders come after new content.
        key_parts: names of the key's parts after the prefix, e.g. ``("progress", "seq")`` gives
            ``remind:<progress id>:<seq>``. Documentation for readers and for :meth:`key_sql`'s callers.
        key_prefix: the key's first part; the name unless several purposes share one key space (every step kind
            is keyed ``deliver:<progress id>``, so a step is delivered once whatever its kind).
        unique: every enqueue is a new message (a lead's announcement): a random part is appended to the key.
        windowed: waits for the learner's working window (working hours, quiet hours, pause). ``False`` means
            time-bound: it goes out when due, and expires (``expires_at``) instead of waiting.
        channel: a post in the cohort's channel rather than a direct message.
        opens_step: delivering it opens the row's step and records a ``delivered`` learning event.
        render: the sender's renderer; a purpose can be used for planning before it has one, but the sender
            refuses rows whose purpose is not registered with a renderer.
        owner: who registered it, named when a second registration of the same name is refused.
    """

    name: str
    priority: int
    key_parts: tuple[str, ...] = ()
    key_prefix: str = ""
    unique: bool = False
    windowed: bool = True
    channel: bool = False
    opens_step: bool = False
    render: Renderer | None = field(default=None, compare=False, repr=False)
    owner: str = field(default="", compare=False)

    @property
    def prefix(self) -> str:
        return self.key_prefix or self.name

    def key(self, *parts: object) -> str:
        """The row key for ``parts`` (``remind:12:3``): used to plan a row, and to look one up."""
        return ":".join((self.prefix, *(str(p) for p in parts)))

    def key_sql(self, *parts: Any) -> ColumnElement[str]:
        """The same key, built in SQL from column expressions, for set-wise planning."""
        expr: Any = literal(self.prefix, String)
        for part in parts:
            expr = expr.concat(":").concat(cast(part, String))
        return expr

    def bind(self, render: Renderer, owner: str | None = None) -> Purpose:
        """This purpose with its renderer, ready to register."""
        return replace(self, render=render, owner=owner or _owner_of(render))


def _owner_of(render: Renderer) -> str:
    module = getattr(render, "__module__", None) or type(render).__module__
    name = getattr(render, "__qualname__", None) or type(render).__qualname__
    return f"{module}.{name}"


class PurposeRegistry:
    """The purposes the sender knows how to deliver, by name. A name is registered once."""

    def __init__(self) -> None:
        self._by_name: dict[str, Purpose] = {}

    def register(self, purpose: Purpose, owner: str | None = None) -> Purpose:
        """Add ``purpose``. Raises :class:`DuplicateRegistration` naming both registrants if its name is taken."""
        if owner is not None or not purpose.owner:
            purpose = replace(purpose, owner=owner or (purpose.render and _owner_of(purpose.render)) or "?")
        previous = self._by_name.get(purpose.name)
        if previous is not None:
            raise DuplicateRegistration("purpose", purpose.name, previous.owner, purpose.owner)
        self._by_name[purpose.name] = purpose
        return purpose

    def wrap(self, name: str, wrapper: Callable[[Renderer], Renderer]) -> None:
        """Decorate a registered purpose's renderer (the digest gains a chart when reporting is installed).

        Explicit, unlike registering the name again: the purpose must exist, and its other properties stay.
        """
        purpose = self[name]
        if purpose.render is None:
            raise KeyError(f"purpose '{name}' has no renderer to wrap")
        self._by_name[name] = replace(purpose, render=wrapper(purpose.render))

    def get(self, name: str) -> Purpose | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> Purpose:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Purpose]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


# ---------------------------------------------------------------------- the core's purposes
def _step(kind: StepKind) -> Purpose:
    return Purpose(kind.value, priority=5, key_prefix="deliver", key_parts=("progress",), opens_step=True)


#: A step's card, by step kind. All share the key space ``deliver:<progress id>``: one card per step.
STEP_PURPOSES: dict[str, Purpose] = {kind.value: _step(kind) for kind in StepKind}
#: The key scheme and priority every step kind shares (the tick plans all kinds in one statement).
STEP_CARD = STEP_PURPOSES[StepKind.LESSON]
#: A discussion prompt's channel post, once per cohort and step.
COHORT_PROMPT = Purpose(
    PurposeName.COHORT_PROMPT, priority=1, key_prefix="prompt", key_parts=("cohort", "step"), windowed=False,
    channel=True,
)
#: Session nudges are keyed by the session's revision too: after a move, the nudges for the new time are new rows
#: even where the old time's were already sent.
CHECKIN = Purpose(PurposeName.CHECKIN, priority=2, key_parts=("progress", "seq", "revision"), windowed=False)
SESSION_REMIND = Purpose(
    PurposeName.SESSION_REMIND, priority=3, key_parts=("progress", "seq", "revision"), windowed=False
)
#: A moved or cancelled session: the learner's invite edited in place, and the new calendar file.
SESSION_CHANGE = Purpose(
    PurposeName.SESSION_CHANGE, priority=2, key_prefix="session-change", key_parts=("progress", "revision"),
    windowed=False,
)
REMIND = Purpose(PurposeName.REMIND, priority=7, key_parts=("progress", "seq"))
#: The polite notice that reminders are paused after too many ignored nudges.
AUTOPAUSE = Purpose(PurposeName.AUTOPAUSE, priority=8, key_parts=("enrollment", "ignored"))
LEAD_PROMPT = Purpose(
    PurposeName.LEAD_PROMPT, priority=2, key_parts=("cohort",), unique=True, windowed=False, channel=True
)
ANNOUNCE = Purpose(PurposeName.ANNOUNCE, priority=2, key_parts=("cohort",), unique=True, windowed=False, channel=True)
DIGEST = Purpose(PurposeName.DIGEST, priority=6, key_parts=("manager", "week"))
COHORT_RECAP = Purpose(
    PurposeName.COHORT_RECAP, priority=6, key_prefix="cohort-recap", key_parts=("cohort", "week"), windowed=False,
    channel=True,
)


# ---------------------------------------------------------------------- planning rows
@dataclass
class Planned:
    """One row for :func:`enqueue_many`: the key's parts and the row's columns."""

    key: Sequence[object]
    due_at: datetime | None = None
    expires_at: datetime | None = None
    person_id: int | None = None
    enrollment_id: int | None = None
    progress_id: int | None = None
    cohort_id: int | None = None
    payload: dict[str, Any] | None = None


def _values(purpose: Purpose, row: Planned, now: datetime) -> dict[str, Any]:
    if not row.key and not purpose.unique:
        raise ValueError(f"purpose '{purpose.name}' needs key parts {purpose.key_parts}")
    if purpose.channel and row.person_id is not None:
        raise ValueError(f"'{purpose.name}' is a channel post; it has no person")
    if not purpose.channel and row.person_id is None:
        raise ValueError(f"'{purpose.name}' is a direct message; it needs a person")
    parts = [*row.key, uuid.uuid4().hex] if purpose.unique else list(row.key)
    return {
        "key": purpose.key(*parts),
        "purpose": purpose.name,
        "priority": purpose.priority,
        "person_id": row.person_id,
        "enrollment_id": row.enrollment_id,
        "progress_id": row.progress_id,
        "cohort_id": row.cohort_id,
        "due_at": row.due_at or now,
        "expires_at": row.expires_at,
        "state": DeliveryState.PENDING,
        "attempts": 0,
        # SQL NULL, not the JSON document ``null``, as the ORM wrote for rows without a payload.
        "payload": null() if row.payload is None else row.payload,
        "created_at": now,
    }


def _insert(session: Session) -> Any:
    bind = session.get_bind()
    name = bind.dialect.name if isinstance(bind, Engine) else bind.engine.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(Delivery)


def enqueue(
    session: Session,
    purpose: Purpose,
    key: Sequence[object] = (),
    *,
    now: datetime,
    due_at: datetime | None = None,
    expires_at: datetime | None = None,
    person_id: int | None = None,
    enrollment_id: int | None = None,
    progress_id: int | None = None,
    cohort_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> int | None:
    """Plan one message for ``purpose``, keyed ``purpose.key(*key)``, due at ``due_at`` (default ``now``).

    Returns the new row's id, or ``None`` when a row with that key already exists: planning is idempotent, and
    the caller learns whether this call planned something. The row is inserted at once, inside the session's
    transaction, so it commits or rolls back with the caller's other changes.
    """
    row = Planned(key, due_at, expires_at, person_id, enrollment_id, progress_id, cohort_id, payload)
    stmt = (
        _insert(session)
        .values(**_values(purpose, row, now))
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Delivery.id)
    )
    return session.execute(stmt).scalar()


def enqueue_many(session: Session, purpose: Purpose, rows: Sequence[Planned], *, now: datetime) -> int:
    """Plan many rows of one purpose in one statement per 500 rows. Returns how many were new."""
    planned = 0
    for start in range(0, len(rows), 500):
        values = [_values(purpose, row, now) for row in rows[start : start + 500]]
        stmt = (
            _insert(session)
            .values(values)
            .on_conflict_do_nothing(index_elements=["key"])
            .execution_options(preserve_rowcount=True)
        )
        planned += rowcount(session.execute(stmt))
    return planned


#: The columns :func:`planned_columns` fills, in order.
PLANNED_COLUMNS = [
    "key",
    "purpose",
    "priority",
    "person_id",
    "enrollment_id",
    "progress_id",
    "cohort_id",
    "due_at",
    "expires_at",
    "state",
    "attempts",
    "created_at",
]


def planned_columns(
    purpose: Purpose,
    key: Sequence[Any],
    *,
    now: Any,
    due_at: Any,
    person_id: Any = None,
    enrollment_id: Any = None,
    progress_id: Any = None,
    cohort_id: Any = None,
    expires_at: Any = None,
    name: Any = None,
) -> list[Any]:
    """The SELECT list of a set-wise plan for ``purpose``, in :data:`PLANNED_COLUMNS` order.

    Arguments are SQL expressions (or plain values, bound as literals); instants are epoch milliseconds, as the
    tick computes them. ``name`` overrides the stored purpose name with an expression (the tick plans every step
    kind in one statement, each row named after its step's kind, all sharing ``purpose``'s key scheme and priority).
    """

    def sql(value: Any) -> Any:
        is_sql = isinstance(value, ColumnElement) or hasattr(value, "__clause_element__")
        return value if is_sql else literal(value)

    return [
        purpose.key_sql(*key),
        sql(purpose.name if name is None else name),
        literal(purpose.priority),
        sql(person_id),
        sql(enrollment_id),
        sql(progress_id),
        sql(cohort_id),
        sql(due_at),
        sql(expires_at),
        literal(DeliveryState.PENDING.value),
        literal(0),
        sql(now),
    ]


def planned_insert(dialect: str, select_stmt: Select[Any]) -> Any:
    """The statement :func:`insert_planned` runs, for a caller that builds it once and runs it with bound
    parameters (the tick: building and cache-keying it on every pass cost more than running it)."""
    # On the table, not the entity: the ORM would take an entity INSERT run with parameters for a bulk insert.
    table: Any = Delivery.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).from_select(
        PLANNED_COLUMNS, select_stmt
    )
    # SQLAlchemy 2.1 reports rowcount -1 for INSERT ... SELECT on psycopg unless asked to keep it.
    return stmt.on_conflict_do_nothing(index_elements=["key"]).execution_options(preserve_rowcount=True)


def insert_planned(session: Session, select_stmt: Select[Any]) -> int:
    """``INSERT INTO deliveries (...) SELECT ... ON CONFLICT (key) DO NOTHING``; returns the rows planned.

    ``select_stmt`` selects :func:`planned_columns`. One statement, whatever the number of rows: this is how the
    tick plans a cohort-wide unlock of 100,000 messages.
    """
    bind = session.get_bind()
    name = bind.dialect.name if isinstance(bind, Engine) else bind.engine.dialect.name
    return rowcount(session.execute(planned_insert(name, select_stmt)))


__all__ = [
    "ANNOUNCE",
    "AUTOPAUSE",
    "CHECKIN",
    "COHORT_PROMPT",
    "COHORT_RECAP",
    "DIGEST",
    "LEAD_PROMPT",
    "PLANNED_COLUMNS",
    "REMIND",
    "SESSION_CHANGE",
    "SESSION_REMIND",
    "STEP_CARD",
    "STEP_PURPOSES",
    "ChannelPost",
    "Planned",
    "Purpose",
    "PurposeRegistry",
    "Rendered",
    "Renderer",
    "enqueue",
    "enqueue_many",
    "insert_planned",
    "planned_columns",
    "planned_insert",
]
