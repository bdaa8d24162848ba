"""Helpers shared by the core tests: small purpose-built programs and queries over the real database.

Tests build a runtime over a temporary content folder holding only the programs they need, so their numbers do
not drift when the shipped programs in ``content/`` are edited. Nothing of ours is mocked.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.messages import Button
from bot.storage.models import Delivery, Enrollment, LearningEvent, Person, StepProgress
from tests.conftest import make_settings


def write_programs(root: Path, programs: dict[str, str]) -> Path:
    """Write ``{program_id: program.yaml text}`` under ``root/content`` and return the folder."""
    content = root / "content"
    for program_id, text in programs.items():
        folder = content / program_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "program.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return content


def build_runtime(
    db_url: str,
    root: Path,
    clock: VirtualClock,
    console: ConsoleAdapter,
    programs: dict[str, str],
    **settings: Any,
) -> Runtime:
    content = write_programs(root, programs)
    runtime = build(
        make_settings(db_url, content_dir=str(content), **settings),
        clock=clock,
        adapters={"console": console},
    )
    console.start(runtime.dispatcher)
    return runtime


# ---------------------------------------------------------------------------------------------------- queries
def progress(rt: Runtime, user: str, step: str) -> StepProgress:
    """A detached copy of one learner's progress row on one step."""
    with rt.factory() as session:
        sp = session.scalar(
            select(StepProgress)
            .join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(Person.user_id == user, StepProgress.step_id == step)
        )
        assert sp is not None, f"no progress for {user}/{step}"
        session.expunge(sp)
        return sp


def state(rt: Runtime, user: str, step: str) -> str:
    return progress(rt, user, step).state


def enrollment(rt: Runtime, user: str) -> Enrollment:
    with rt.factory() as session:
        e = session.scalar(
            select(Enrollment).join(Person, Person.id == Enrollment.person_id).where(Person.user_id == user)
        )
        assert e is not None
        session.expunge(e)
        return e


def events(rt: Runtime, verb: str | None = None, user: str | None = None) -> list[LearningEvent]:
    with rt.factory() as session:
        stmt = (
            select(LearningEvent)
            .join(Person, Person.id == LearningEvent.person_id)
            .order_by(LearningEvent.id)
        )
        if verb is not None:
            stmt = stmt.where(LearningEvent.verb == verb)
        if user is not None:
            stmt = stmt.where(Person.user_id == user)
        rows = list(session.scalars(stmt))
        for r in rows:
            session.expunge(r)
        return rows


def count(rt: Runtime, model: type, *where: Any) -> int:
    with rt.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def deliveries(rt: Runtime, purpose: str | None = None, user: str | None = None) -> list[Delivery]:
    with rt.factory() as session:
        stmt = select(Delivery).order_by(Delivery.id)
        if purpose is not None:
            stmt = stmt.where(Delivery.purpose == purpose)
        if user is not None:
            stmt = stmt.join(Person, Person.id == Delivery.person_id).where(Person.user_id == user)
        rows = list(session.scalars(stmt))
        for r in rows:
            session.expunge(r)
        return rows


def row_counts(rt: Runtime) -> dict[str, int]:
    """Rows in every table: a tick that plans nothing leaves these unchanged."""
    from bot.storage.models import Base

    with rt.factory() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }


# ---------------------------------------------------------------------------------------------------- conversation
def titles(console: ConsoleAdapter, user: str) -> list[str]:
    return [s.message.title for s in console.messages_to(user)]


def cards(console: ConsoleAdapter, user: str, kind: str) -> list[Sent]:
    return [s for s in console.messages_to(user) if s.message.kind == kind]


def button(console: ConsoleAdapter, user: str, action: str, title: str | None = None) -> tuple[Sent, Button]:
    """The most recent message to ``user`` carrying ``action`` (optionally with a title containing ``title``)."""
    for sent in reversed(console.messages_to(user)):
        if title is not None and title not in sent.message.title:
            continue
        for b in sent.message.buttons:
            if b.action == action:
                return sent, b
    raise AssertionError(
        f"no message to {user} with a {action!r} button" + (f" titled {title!r}" if title else "")
    )


def ephemeral_texts(console: ConsoleAdapter, user: str) -> list[str]:
    return [m.body or m.text for u, m in console.ephemerals if u == user]
