"""A batch's read-only rows (bot.storage.batch) read exactly as the ORM objects they stand in for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, update

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.storage import batch
from bot.storage.db import transaction
from bot.storage.models import Cohort, Enrollment, Person, StepProgress
from tests.conftest import make_cohort
from tests.unit.helpers import build_runtime

PROGRAM = """
id: rows
title: Rows
steps:
  - id: quiz
    title: A quiz
    kind: quiz
    questions:
      - id: q1
        text: Two and two?
        options: [{text: "4", correct: true}, {text: "5"}]
"""


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path, clock, console, {"rows": PROGRAM})
    make_cohort(runtime, "rows", [("ana", "Europe/Lisbon"), ("bo", "Asia/Tokyo")])
    with transaction(runtime.factory) as session:  # values of every kind: text, time, JSON, booleans, nulls
        session.execute(
            update(Person)
            .where(Person.user_id == "ana")
            .values(name="Ana Lima", roles="lead,manager", paused_until=datetime(2026, 3, 9, 8, tzinfo=UTC))
        )
        session.execute(update(StepProgress).values(scratch={"attempt": 2, "selected": [1]}, score=0.5))
    yield runtime
    runtime.db.dispose()


@pytest.mark.parametrize("model", [Person, Cohort, Enrollment, StepProgress], ids=lambda m: m.__name__)
def test_a_loaded_row_reads_as_its_orm_object_reads(rt, model):
    with rt.factory() as session:
        objects = session.query(model).order_by(model.id).all()
        assert objects
    with rt.factory() as session:
        rows = batch.load(session, model, [o.id for o in objects])
        by_id = {row.id: row for row in rows}
        assert sorted(by_id) == [o.id for o in objects]
        for obj in objects:
            row = by_id[obj.id]
            for attr in inspect(model).column_attrs:
                assert getattr(row, attr.key) == getattr(obj, attr.key), (model.__name__, attr.key)
                assert type(getattr(row, attr.key)) is type(getattr(obj, attr.key)), (model.__name__, attr.key)
            for name in ("first_name", "role_set"):
                if hasattr(obj, name):
                    assert getattr(row, name) == getattr(obj, name)
            assert batch.get(session, model, obj.id) is row  # found again by id, without the identity map


def test_a_row_cannot_be_written_and_an_id_not_loaded_falls_back_to_the_session(rt):
    with rt.factory() as session:
        ana, bo = session.query(Person).filter(Person.user_id.in_(["ana", "bo"])).order_by(Person.user_id).all()
        ana_id, bo_id = ana.id, bo.id
    with rt.factory() as session:
        [row] = batch.load(session, Person, [ana_id])
        with pytest.raises(AttributeError):
            row.name = "someone else"  # type: ignore[misc]
        other = batch.get(session, Person, bo_id)
        assert isinstance(other, Person) and other.user_id == "bo"
        assert batch.get(session, Person, 10**9) is None
        assert batch.load(session, Person, []) == []
