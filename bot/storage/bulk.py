"""Many rows in one statement: PostgreSQL reads them from arrays, other databases run an executemany.

The sender records a few hundred outcomes per batch. As an executemany, PostgreSQL runs one statement per row:
psycopg pipelines them, but the server still binds and executes each one (and checks each row's foreign keys one
statement at a time), and the client adapts every row's parameters. On the three-worker PostgreSQL benchmark that
was most of the database server's CPU in the drain. Here the rows travel as one array per column and the statement
reads them with ``unnest``, so a batch is one statement whatever its size:

    UPDATE deliveries SET message_ref = v.ref FROM unnest(:ids, :refs) AS v(id, ref) WHERE deliveries.id = v.id

SQLite runs in process, where an executemany costs no round trips; it keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import ClauseElement, ColumnElement, Executable, bindparam, func
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import ARRAY, TypeEngine

#: From this many rows on, SQLite gets the driver's executemany with the statement compiled here (see below).
DRIVER_ROWS = 32

#: A statement built over one row's values, ``v[column]`` (the same statement serves every row).
Build = Callable[[Mapping[str, ColumnElement[Any]]], Executable]


def execute_rows(
    session: Session,
    rows: list[dict[str, Any]],
    types: Mapping[str, TypeEngine[Any]],
    build: Build,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Run ``build(v)`` for every row of ``rows`` at once; ``v[name]`` stands for a row's value of ``name``.

    Args:
        session: the session whose transaction the statement joins.
        rows: the rows, each a dict holding at least the keys of ``types``.
        types: each column's SQL type, in the order the columns are read.
        build: makes the statement. An UPDATE joins on ``v["id"]``; an INSERT selects the values
            (``insert(t).from_select(names, select(*v.values()))``). It must depend on ``v`` alone: on SQLite its
            statement is built and compiled once per ``build`` and kept; a value that changes from call to call
            is a named ``bindparam`` given in ``params``.
        params: the values of the statement's own named parameters, the same for every row (the time, the
            worker's name).
    """
    if not rows:
        return
    consts = dict(params or {})
    if session.get_bind().dialect.name == "postgresql":
        arrays = [
            bindparam(f"a_{name}", [row[name] for row in rows], type_=ARRAY(type_)) for name, type_ in types.items()
        ]
        source = func.unnest(*arrays).table_valued(*types).render_derived(name="v")
        session.execute(build({name: source.c[name] for name in types}), consts)
        return
    columns = tuple(types.items())
    connection = session.connection()
    dialect = connection.dialect
    # A few rows: SQLAlchemy's executemany reuses its cached compilation, as cheap as the driver's here.
    compiled = _positional(build, columns, dialect) if len(rows) >= DRIVER_ROWS else None
    if compiled is None:
        session.execute(
            _built(build, columns), [{**consts, **{f"b_{name}": row[name] for name in types}} for row in rows]
        )
        return
    # The driver's executemany with the statement compiled once: SQLAlchemy's own executemany builds and processes
    # a parameter dict per row, which was most of recording a batch. Each position gets the bind processor
    # SQLAlchemy would apply (JSON serialising, instants to milliseconds); the statement's own values (``params``
    # and literals) are processed once.
    slots: list[tuple[int, str, Callable[[Any], Any] | None]] = []
    template: list[Any] = []
    for position, key in enumerate(compiled.positiontup or ()):
        bind = compiled.binds[key]
        process = bind.type.bind_processor(dialect)
        if key.startswith("b_") and key[2:] in types:
            slots.append((position, key[2:], process))
            template.append(None)
        else:
            value = consts.get(key, bind.effective_value)
            template.append(process(value) if process is not None else value)
    values_of = []
    for row in rows:
        values = list(template)
        for position, name, convert in slots:
            values[position] = convert(row[name]) if convert is not None else row[name]
        values_of.append(tuple(values))
    connection.exec_driver_sql(compiled.string, values_of)


Columns = tuple[tuple[str, TypeEngine[Any]], ...]


@lru_cache(maxsize=64)
def _built(build: Build, columns: Columns) -> Executable:
    """``build``'s statement over one row's bound values (kept: ``build`` depends on ``v`` alone)."""
    return build({name: bindparam(f"b_{name}", type_=type_) for name, type_ in columns})


@lru_cache(maxsize=64)
def _positional(build: Build, columns: Columns, dialect: Any) -> SQLCompiler | None:
    """``build``'s statement compiled for a driver with positional parameters, or ``None`` when it needs more than
    a plain executemany (named parameters, values rendered at execution). Compiled once: compiling was a tenth of
    recording a batch."""
    if not dialect.positional:
        return None
    compiled = cast(SQLCompiler, cast(ClauseElement, _built(build, columns)).compile(dialect=dialect))
    return None if compiled.positiontup is None or compiled.literal_execute_params else compiled
