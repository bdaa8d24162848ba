"""Rows a batch has loaded, as light read-only rows, found again by id.

The sender loads a batch's people, enrolments, progress and cohorts with one ``IN`` query each, then composes each
delivery, which looks each of them up again by primary key. Composing only reads them, so :func:`load` reads them
as plain rows instead of ORM objects: an ORM object costs several microseconds to build (identity map, instance
state) and each attribute read goes through an instrumented descriptor, and a lesson card reads about seventy.
A row is a named tuple of the model's columns, by attribute name, with the model's plain properties
(``Person.first_name``), so composing code reads it as it reads the model; it cannot be written to or flushed.
:func:`get` finds a kept row by model and id and falls back to ``Session.get`` (an ORM object) for anything the
batch did not load. The rows are only kept for the session that loaded them, which the sender closes after the
batch.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import Session

T = TypeVar("T")

_KEY = "batch_rows"


@lru_cache(maxsize=32)
def row_class(model: type[Any]) -> type[Any]:
    """A named tuple of ``model``'s mapped columns, with the model's properties (read-only stand-ins for its
    instances; writing one raises ``AttributeError``)."""
    columns = [attr.key for attr in inspect(model).column_attrs]
    base = namedtuple(f"{model.__name__}Row", columns)  # type: ignore[misc]
    properties = {
        name: value for klass in reversed(model.__mro__) for name, value in vars(klass).items()
        if isinstance(value, property)
    }
    return type(base.__name__, (base,), {"__slots__": (), "__doc__": f"A read-only {model.__name__} row.", **properties})


@lru_cache(maxsize=32)
def _by_ids(model: type[Any]) -> Any:
    """``SELECT`` every mapped column of ``model`` ``WHERE id IN :ids``, in :func:`row_class`'s order; built once."""
    mapper = inspect(model)
    columns = [mapper.columns[attr.key] for attr in mapper.column_attrs]
    return select(*columns).where(mapper.columns["id"].in_(bindparam("ids", expanding=True)))


def load(session: Session, model: type[T], ids: Iterable[Any]) -> list[T]:
    """Read ``model``'s rows with these ids as read-only rows (:func:`row_class`), keep them for :func:`get`, and
    return them (typed as the model: they read the same)."""
    wanted = list(ids)
    if not wanted:
        return []
    shape: Any = model
    make = row_class(shape)._make
    rows = [make(r) for r in session.execute(_by_ids(shape), {"ids": wanted})]
    kept: dict[tuple[type, Any], Any] = session.info.setdefault(_KEY, {})
    for row in rows:
        kept[(model, row.id)] = row
    return rows


def get(session: Session, model: type[T], ident: Any) -> T | None:
    """``session.get(model, ident)``, from the rows :func:`load` kept when it holds them."""
    kept = session.info.get(_KEY)
    if kept is not None:
        row = kept.get((model, ident))
        if row is not None:
            return row
    return session.get(model, ident)
