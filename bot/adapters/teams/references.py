"""Conversation references: where Teams lets the bot reach a person or a channel, kept in the database.

A bot can message someone in Teams only inside the personal conversation Teams created when the app was installed
for them (by themselves, or by an admin for a group through an app setup policy). The install arrives as an
``installationUpdate`` (or a ``conversationUpdate`` adding the bot); its conversation id and the regional service URL
are stored in ``conversation_refs`` keyed by tenant and the person's Entra object id, so any worker can send after a
restart. Channels are stored the same way when the app is added to a team.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from bot.states import EnrollmentStatus
from bot.storage.db import transaction
from bot.storage.models import ConversationRef, Enrollment, Person

PLATFORM = "teams"
PERSON = "person"
CHANNEL = "channel"


@dataclass(frozen=True)
class Address:
    """Where to post: the conversation and the service that hosts it."""

    conversation_id: str
    service_url: str
    member_id: str | None = None


class References:
    """Read and write conversation references (one short transaction each)."""

    def __init__(self, factory: sessionmaker[Session] | None) -> None:
        self._factory = factory

    @property
    def factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            raise RuntimeError("the Teams adapter has no database: pass factory= or call bind()")
        return self._factory

    def bind(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def save(
        self, workspace: str, kind: str, key: str, conversation_id: str, service_url: str, now: datetime,
        reference: dict[str, Any] | None = None,
    ) -> None:
        """Insert or refresh one reference (an install replayed or repeated is the same row)."""
        values = dict(platform=PLATFORM, workspace=workspace, kind=kind, key=key, conversation_id=conversation_id,
                      service_url=service_url, reference=reference, updated_at=now)
        with transaction(self.factory) as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = insert(ConversationRef).values(**values)
            session.execute(stmt.on_conflict_do_update(
                index_elements=["platform", "workspace", "kind", "key"],
                set_={k: stmt.excluded[k] for k in ("conversation_id", "service_url", "reference", "updated_at")},
            ))

    def forget(self, workspace: str, kind: str, key: str) -> None:
        """The app was uninstalled: the conversation is gone."""
        with transaction(self.factory) as session:
            session.execute(delete(ConversationRef).where(
                ConversationRef.platform == PLATFORM, ConversationRef.workspace == workspace,
                ConversationRef.kind == kind, ConversationRef.key == key))

    def find(self, workspace: str, kind: str, key: str) -> Address | None:
        with self.factory() as session:
            row = session.get(ConversationRef, (PLATFORM, workspace, kind, key))
            if row is None:
                return None
            member = (row.reference or {}).get("member_id")
            return Address(row.conversation_id, row.service_url, member if isinstance(member, str) else None)

    def service_url_of(self, conversation_id: str) -> str | None:
        """The service URL stored with ``conversation_id`` (or, for a channel thread, with its channel)."""
        channel = conversation_id.split(";", 1)[0]
        with self.factory() as session:
            return session.scalar(select(ConversationRef.service_url).where(
                ConversationRef.platform == PLATFORM,
                ConversationRef.conversation_id.in_({conversation_id, channel})).limit(1))

    def any_service_url(self, workspace: str) -> str | None:
        """The latest service URL Teams named for ``workspace`` (a tenant's region is one service)."""
        with self.factory() as session:
            return session.scalar(select(ConversationRef.service_url).where(
                ConversationRef.platform == PLATFORM, ConversationRef.workspace == workspace,
            ).order_by(ConversationRef.updated_at.desc()).limit(1))

    def not_installed(self, session: Session) -> list[tuple[str, str]]:
        """(workspace, user id) of every actively enrolled Teams learner without a personal conversation."""
        known = select(ConversationRef.key).where(
            ConversationRef.platform == PLATFORM, ConversationRef.kind == PERSON,
            ConversationRef.workspace == Person.workspace, ConversationRef.key == Person.user_id,
        ).exists()
        rows = session.execute(
            select(Person.workspace, Person.user_id).join(Enrollment, Enrollment.person_id == Person.id)
            .where(Person.platform == PLATFORM, Enrollment.status == EnrollmentStatus.ACTIVE, ~known)
            .group_by(Person.workspace, Person.user_id).order_by(Person.workspace, Person.user_id)
        ).all()
        return [(w, u) for w, u in rows]

    def count(self) -> int:
        with self.factory() as session:
            return session.scalar(select(func.count()).select_from(ConversationRef)) or 0
