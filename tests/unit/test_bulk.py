"""Many rows in one statement (bot.storage.bulk): on SQLite the driver's executemany with the statement compiled
once must write exactly what SQLAlchemy's own executemany writes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from bot.storage.bulk import DRIVER_ROWS, execute_rows
from bot.storage.db import make_engine
from bot.storage.types import Instant

TYPES: dict[str, Any] = {"id": BigInteger(), "p": JSON(), "s": String(), "b": Boolean(), "at": BigInteger()}


@pytest.mark.parametrize("filler", [0, DRIVER_ROWS], ids=["sqlalchemy executemany", "driver executemany"])
def test_rows_are_written_as_sqlalchemy_would_write_them(tmp_path, filler):
    md = MetaData()
    t = Table(
        "t",
        md,
        Column("id", Integer, primary_key=True),
        Column("p", JSON),
        Column("s", String),
        Column("b", Boolean),
        Column("w", String),
        Column("at", Instant),
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    md.create_all(engine)
    rows = [
        {"id": 1, "p": None, "s": "x", "b": True, "at": 5},
        {"id": 2, "p": {"a": [1, "é"]}, "s": None, "b": False, "at": None},
    ] + [{"id": 3 + i, "p": [i], "s": "f", "b": False, "at": i} for i in range(filler)]
    with Session(engine) as session, session.begin():
        execute_rows(session, rows, TYPES, lambda v: insert(t).from_select(list(v), select(*v.values())))
        # The statement's own values (``w``) are bound once; a row value used twice fills both places.
        execute_rows(
            session,
            [
                {"id": 2, "p": {"z": 1}, "s": "y", "b": True, "at": 7},
                {"id": 1, "p": None, "s": "q", "b": False, "at": 9},
            ]
            + [{"id": 3 + i, "p": [i], "s": "g", "b": False, "at": i} for i in range(filler)],
            TYPES,
            lambda v: (
                update(t)
                .where(t.c.id == v["id"])
                .values(p=v["p"], s=v["s"], w="fixed", at=case((t.c.b, v["at"] + 100), else_=v["at"]))
            ),
        )
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT id, p, s, b, w, at FROM t WHERE id < 3 ORDER BY id").all()
        typed = conn.execute(select(t.c.p, t.c.at).where(t.c.id < 3).order_by(t.c.id)).all()
        fillers = conn.exec_driver_sql("SELECT count(*) FROM t WHERE s = 'g' AND w = 'fixed'").scalar()
    # JSON None is stored as JSON null, as SQLAlchemy stores it; booleans as 0/1.
    assert raw == [(1, "null", "q", 1, "fixed", 109), (2, '{"z": 1}', "y", 0, "fixed", 7)]
    assert [row.p for row in typed] == [None, {"z": 1}]
    assert fillers == filler
    engine.dispose()


def _stamp(v):
    """A builder of module scope whose statement is kept: the value that changes per call is a named parameter."""
    table = _STAMPED
    return (
        update(table).where(table.c.id == v["id"], table.c.w == bindparam("owner")).values(at=bindparam("at"))
    )


_MD = MetaData()
_STAMPED = Table(
    "stamped", _MD, Column("id", Integer, primary_key=True), Column("w", String), Column("at", Instant)
)


@pytest.mark.parametrize("count", [2, DRIVER_ROWS + 1], ids=["sqlalchemy executemany", "driver executemany"])
def test_a_kept_statement_takes_each_calls_parameters(db_url, count):
    """The statement is built and compiled once per builder; ``params`` still bind afresh on every call (a kept
    compilation that froze the first call's time or worker would stamp every later batch with it)."""
    engine = make_engine(db_url)
    _MD.drop_all(engine)
    _MD.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(_STAMPED), [{"id": i, "w": "me" if i % 2 else "other", "at": None} for i in range(count)]
        )
    rows = [{"id": i} for i in range(count)]
    for at in (1000, 2000):
        with Session(engine) as session, session.begin():
            execute_rows(session, rows, {"id": BigInteger()}, _stamp, {"owner": "me", "at": at})
        with engine.connect() as conn:
            stamped = dict(conn.execute(select(_STAMPED.c.id, _STAMPED.c.at)).all())
        assert {i: (at if i % 2 else None) for i in range(count)} == {
            i: (None if v is None else int(v.timestamp() * 1000)) for i, v in stamped.items()
        }
    _MD.drop_all(engine)
    engine.dispose()
