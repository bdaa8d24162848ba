"""Rows a batch has loaded, found again without the ORM's identity-map lookup.

The sender loads a batch's people, enrolments, progress and cohorts with one ``IN`` query each, then composes each
delivery, which looks each of them up again by primary key. ``Session.get`` answers those from the identity map,
but it costs tens of microseconds a call (inspection, identity key, weak-reference lookup, state checks), and a
lesson card makes five of them: at thousands of messages a second that was a tenth of the drain. :func:`keep`
files the loaded rows in ``session.info``; :func:`get` reads them there first and falls back to ``Session.get``.
The rows are only kept for the session that loaded them, which the sender closes after the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")

_KEY = "batch_rows"


def keep(session: Session, rows: Iterable[Any]) -> None:
    """Remember ``rows`` (ORM objects loaded in ``session``, each with an ``id`` primary key) by class and id."""
    kept: dict[tuple[type, Any], Any] = session.info.setdefault(_KEY, {})
    for row in rows:
        kept[(type(row), row.id)] = row


def get(session: Session, model: type[T], ident: Any) -> T | None:
    """``session.get(model, ident)``, from the rows :func:`keep` filed when it holds them."""
    kept = session.info.get(_KEY)
    if kept is not None:
        row = kept.get((model, ident))
        if row is not None:
            return row
    return session.get(model, ident)
