"""The database schema (SQLAlchemy 2 typed models).

Every row that belongs to a platform workspace carries ``workspace`` (or reaches it through a cohort or person), so
that one Blendwise install can serve several Slack workspaces or Discord guilds without any of them reading another's
data. The learning-event log is append-only: the code base has no update or delete path for it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.storage.types import Instant

# BigInteger primary keys are plain INTEGER on SQLite so that they alias the rowid and autoincrement.
PK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: Instant(), dict[str, Any]: JSON(), date: Date()}


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("platform", "workspace", "user_id", name="uq_people_platform_user"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    workspace: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    tz: Mapped[str | None] = mapped_column(String(64))
    tz_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    roles: Mapped[str] = mapped_column(String(100), default="")
    paused_until: Mapped[datetime | None]
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    @property
    def role_set(self) -> set[str]:
        return {r for r in self.roles.split(",") if r}

    @property
    def first_name(self) -> str:
        return (self.name or self.user_id).split()[0]


class Cohort(Base):
    __tablename__ = "cohorts"
    __table_args__ = (UniqueConstraint("workspace", "name", name="uq_cohorts_workspace_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    program_id: Mapped[str] = mapped_column(String(64), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    workspace: Mapped[str] = mapped_column(String(64))
    start_date: Mapped[date]
    tz: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]


class CohortLead(Base):
    __tablename__ = "cohort_leads"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)


class LiveSessionRow(Base):
    """One live session of one cohort (a program's ``session`` step, scheduled for that cohort)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("cohort_id", "step_id", name="uq_sessions_cohort_step"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    checkin_opens_at: Mapped[datetime]
    checkin_closes_at: Mapped[datetime]
    checkin_state: Mapped[str] = mapped_column(String(10), default="auto")  # auto | open | closed
    join_url: Mapped[str | None] = mapped_column(String(500))
    capacity: Mapped[int | None] = mapped_column(Integer)
    platform_ref: Mapped[str | None] = mapped_column(String(100))
    recording_url: Mapped[str | None] = mapped_column(String(500))
    transcript: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    recap: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recap_state: Mapped[str | None] = mapped_column(String(20))  # draft | released
    #: The calendar revision (iCalendar ``SEQUENCE``): 0 when scheduled, +1 on every move or cancellation.
    #: Outbox keys of its reminders and check-in prompts include it, so a moved session's nudges are new rows.
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    cancelled_at: Mapped[datetime | None]
    #: The revision the platform's native twin (a Discord Scheduled Event) last showed; behind ``sequence`` means
    #: the runtime still has to update (or cancel) it.
    mirrored_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: (Last, as migration 0005 added it: a database created from the models has the migrated column order.)
    #: Why the platform refused to mirror the session natively (its ``platform_ref`` is then ``-``): recorded once,
    #: never retried, so a refused session costs one platform call, not one per tick.
    mirror_refused: Mapped[str | None] = mapped_column(String(300))


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("person_id", "cohort_id", name="uq_enrollments_person_cohort"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    registration: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | completed | dropped
    completed_at: Mapped[datetime | None]
    nudges_ignored: Mapped[int] = mapped_column(Integer, default=0)
    auto_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    last_activity_at: Mapped[datetime | None]


class StepProgress(Base):
    """One learner's state on one step. States: locked -> open -> done, or missed (sessions) / skipped."""

    __tablename__ = "step_progress"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id", name="uq_progress_enrollment_step"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(8), default="locked")
    waiting_on: Mapped[int] = mapped_column(Integer, default=0)
    unlock_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    snoozed_until: Mapped[datetime | None]
    message_ref: Mapped[str | None] = mapped_column(String(200))
    scratch: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AgendaItem(Base):
    """A learner's timeline: what should happen when. The tick claims due rows set-wise, turns them into outbox
    rows and deletes them, so the agenda only ever holds the future; ``fire_at`` is NULL while a step still waits
    for prerequisites."""

    __tablename__ = "agenda"
    __table_args__ = (
        UniqueConstraint("progress_id", "action", "seq", name="uq_agenda_progress_action_seq"),
        Index("ix_agenda_due", "fire_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    progress_id: Mapped[int] = mapped_column(ForeignKey("step_progress.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # deliver | remind | session_remind | checkin | close
    seq: Mapped[int] = mapped_column(Integer, default=0)
    fire_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class Delivery(Base):
    """The outbox. One row per message we intend to send; ``key`` makes planning idempotent."""

    __tablename__ = "deliveries"
    # Only pending rows are ever looked up by time, so the index holds only them: smaller, and cheaper to maintain
    # when a burst tick inserts 100,000 rows at once. Its columns are the claim's order, so a claim reads its batch
    # from the head of the index instead of sorting every due row (a burst is all one due_at).
    __table_args__ = (
        Index(
            "ix_deliveries_pending_due",
            "due_at",
            "priority",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        # A learner's lane: the sender holds a row while an earlier one of the same person is still live.
        Index(
            "ix_deliveries_lane",
            "person_id",
            "id",
            sqlite_where=text("state IN ('pending', 'sending')"),
            postgresql_where=text("state IN ('pending', 'sending')"),
        ),
        # Expired leases are looked up on every drain pass; only rows being sent are in this index.
        Index(
            "ix_deliveries_lease",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    # No foreign-key constraints on the outbox: rows are only ever planned from existing rows (INSERT ... SELECT),
    # and on PostgreSQL four FK triggers per row were more than a third of a 100,000-row burst tick.
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    enrollment_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_id: Mapped[int | None] = mapped_column(BigInteger)
    cohort_id: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending|sending|sent|failed|skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_ref: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(String(500))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: The worker holding the row while it is ``sending``, and until when: an expired lease is reclaimed by any
    #: worker, which reconciles with the platform before sending anything again.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    #: The platform may hold a part we have no record of (a crash or an error after the platform stored it): the
    #: next attempt looks before it sends.
    unsure: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class SendBudget(Base):
    """A workspace's send budget shared by every worker: the next free send slot, in epoch milliseconds.

    A worker takes ``k`` slots with one atomic ``UPDATE ... RETURNING`` that moves ``next_at`` on by ``k / rate``
    seconds, so any number of workers together stay spaced at the workspace rate (a virtual-scheduling token
    bucket, as in GCRA).
    """

    __tablename__ = "send_budget"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_at: Mapped[int] = mapped_column(BigInteger)


class Attendance(Base):
    """RSVPs and attendance for one learner and one live session."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("session_id", "enrollment_id", name="uq_attendance_session_enrollment"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    rsvp: Mapped[str | None] = mapped_column(String(8))  # yes | maybe | no
    rsvp_at: Mapped[datetime | None]
    attended_at: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(String(12))  # checkin | voice | lead | catch_up
    minutes: Mapped[float | None] = mapped_column(Float)


class QuizAnswer(Base):
    __tablename__ = "quiz_answers"
    __table_args__ = (
        UniqueConstraint("progress_id", "attempt", "question_id", name="uq_quiz_answer_attempt_question"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    progress_id: Mapped[int] = mapped_column(ForeignKey("step_progress.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    question_id: Mapped[str] = mapped_column(String(64))
    choice: Mapped[str] = mapped_column(String(64))
    correct: Mapped[bool] = mapped_column(Boolean)
    reinforcement: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_at: Mapped[datetime]


class CohortPost(Base):
    """A message we posted in a cohort channel (prompt, announcement, recap), so that replies in its thread can be
    attributed to the right cohort and step."""

    __tablename__ = "cohort_posts"
    __table_args__ = (UniqueConstraint("channel", "ref", name="uq_cohort_posts_channel_ref"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))  # prompt | announce | recap | poll
    channel: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Poll(Base):
    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str | None] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    multi: Mapped[bool] = mapped_column(Boolean, default=False)
    hide_results: Mapped[bool] = mapped_column(Boolean, default=False)
    salt: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    message_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class PollVote(Base):
    """A vote. For anonymous polls ``voter`` is a salted hash, never a person id, so no one can read who voted what."""

    __tablename__ = "poll_votes"
    __table_args__ = (UniqueConstraint("poll_id", "voter", "option", name="uq_poll_votes_voter_option"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), index=True)
    voter: Mapped[str] = mapped_column(String(64))
    option: Mapped[int] = mapped_column(Integer)


class LearningEvent(Base):
    """The append-only learning record, shaped like an xAPI statement (actor, verb, object, result, context).

    Reports are derived from it and from the state tables it mirrors. ``id`` is stable, so the statement UUID
    derived from it is stable too and an LRS never receives a statement twice.
    """

    __tablename__ = "learning_events"
    __table_args__ = (Index("ix_events_person_ts", "person_id", "ts"), Index("ix_events_verb", "verb"))

    id: Mapped[int] = mapped_column(PK, primary_key=True)
    ts: Mapped[datetime]
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    verb: Mapped[str] = mapped_column(String(20))
    object_type: Mapped[str] = mapped_column(String(20))  # program | step | question | session | prompt
    object_id: Mapped[str] = mapped_column(String(200))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class InboundSeen(Base):
    """Keys of inbound platform events already processed: a replayed request or a double click is recorded once."""

    __tablename__ = "inbound_seen"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime]


class ConversationRef(Base):
    """How to reach a person or a channel proactively, on platforms that need a stored address for that.

    Some platforms let a bot message a person only inside a conversation the platform created when the person (or
    an admin, for them) installed the app; the bot learns its id and the regional service that hosts it from the
    install event and must keep them. ``kind`` is ``person`` (``key`` is the person's user id) or ``channel``
    (``key`` is the channel id). ``reference`` holds the platform's whole reference, for the adapter only.
    """

    __tablename__ = "conversation_refs"
    __table_args__ = (Index("ix_conversation_refs_conversation", "platform", "conversation_id"),)

    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(300))
    service_url: Mapped[str] = mapped_column(String(300))
    reference: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime]
