"""One way into the outbox: enqueue is idempotent, purposes are registered once, and no other module writes rows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import Runtime
from bot.errors import DuplicateRegistration
from bot.live.purposes import LIVE_POLL
from bot.nudges.purposes import (
    ANNOUNCE,
    DIGEST,
    REMIND,
    STEP_PURPOSES,
    Planned,
    Purpose,
    PurposeRegistry,
    enqueue,
    enqueue_many,
)
from bot.states import DeliveryState, PurposeName, StepKind
from bot.storage.db import transaction
from bot.storage.models import Delivery

ROOT = Path(__file__).resolve().parents[2]
#: The only module allowed to create outbox rows.
OUTBOX_WRITER = ROOT / "bot" / "nudges" / "purposes.py"


def _rows(rt: Runtime) -> list[Delivery]:
    with rt.factory() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_the_same_key_twice_is_one_row(rt: Runtime) -> None:
    now = rt.clock.now()
    with transaction(rt.factory) as session:
        first = enqueue(session, DIGEST, (7, "2026-W10"), now=now, person_id=7, payload={"week": "2026-W10"})
        again = enqueue(session, DIGEST, (7, "2026-W10"), now=now, person_id=7, payload={"week": "other"})
    with transaction(rt.factory) as session:
        third = enqueue(session, DIGEST, (7, "2026-W10"), now=now, person_id=7)
    assert isinstance(first, int)
    assert again is None and third is None
    [row] = _rows(rt)
    assert (row.id, row.key, row.purpose, row.priority) == (first, "digest:7:2026-W10", "digest", DIGEST.priority)
    assert row.state == DeliveryState.PENDING and row.attempts == 0
    assert row.payload == {"week": "2026-W10"}  # the first plan stands
    assert row.due_at == now and row.created_at == now


def test_enqueue_many_plans_each_key_once(rt: Runtime) -> None:
    now = rt.clock.now()
    rows = [Planned(key=(n, 3), person_id=n, progress_id=n) for n in range(1, 1202)]
    with transaction(rt.factory) as session:
        assert enqueue_many(session, REMIND, rows, now=now) == 1201
    with transaction(rt.factory) as session:
        assert enqueue_many(session, REMIND, [*rows[:5], Planned(key=(9999, 3), person_id=1)], now=now) == 1
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1202
        assert session.scalar(select(Delivery.payload).where(Delivery.key == "remind:1:3")) is None


def test_unique_purposes_get_a_new_key_each_time(rt: Runtime) -> None:
    now = rt.clock.now()
    with transaction(rt.factory) as session:
        a = enqueue(session, ANNOUNCE, (4,), now=now, cohort_id=4, payload={"text": "hi"})
        b = enqueue(session, ANNOUNCE, (4,), now=now, cohort_id=4, payload={"text": "hi"})
    assert a is not None and b is not None and a != b
    keys = [r.key for r in _rows(rt)]
    assert all(k.startswith("announce:4:") for k in keys) and len(set(keys)) == 2


def test_a_purpose_refuses_rows_that_do_not_fit_it(rt: Runtime) -> None:
    now = rt.clock.now()
    with transaction(rt.factory) as session:
        with pytest.raises(ValueError, match="channel post"):
            enqueue(session, ANNOUNCE, (1,), now=now, person_id=1)
        with pytest.raises(ValueError, match="needs a person"):
            enqueue(session, REMIND, (1, 1), now=now)
        with pytest.raises(ValueError, match="key parts"):
            enqueue(session, REMIND, (), now=now, person_id=1)
    assert _rows(rt) == []


def test_keys_are_built_in_one_place() -> None:
    assert REMIND.key(12, 3) == "remind:12:3"
    assert STEP_PURPOSES[StepKind.QUIZ].key(5) == STEP_PURPOSES[StepKind.LESSON].key(5) == "deliver:5"
    assert LIVE_POLL.key(9) == "poll:9" and LIVE_POLL.key(9, "results") == "poll:9:results"


def test_registering_a_purpose_twice_names_both_registrants() -> None:
    def render_a(session: object, d: object) -> None:
        return None

    def render_b(session: object, d: object) -> None:
        return None

    registry = PurposeRegistry()
    thing = Purpose("thing", priority=4)
    registry.register(thing.bind(render_a))
    with pytest.raises(DuplicateRegistration) as err:
        registry.register(thing.bind(render_b))
    message = str(err.value)
    assert "purpose 'thing' is registered twice" in message
    assert "render_a" in message and "render_b" in message
    assert registry["thing"].render is render_a  # the first registration stands


def test_the_runtime_refuses_a_second_registration_of_a_feature_purpose(rt: Runtime) -> None:
    with pytest.raises(DuplicateRegistration, match=r"'live_poll' is registered twice: by bot\.live and by tests"):
        rt.sender.purposes.register(LIVE_POLL.bind(lambda s, d: None), owner="tests")


def test_every_planned_purpose_has_a_renderer(rt: Runtime) -> None:
    names = {p.name for p in rt.sender.purposes if p.render is not None}
    assert {k.value for k in StepKind} <= names
    assert {p.value for p in PurposeName} <= names
    assert {"live_poll", "catchup", "recording", "recap_ready", "reopen"} <= names


def test_a_row_whose_purpose_nobody_registered_fails_for_good(rt: Runtime) -> None:
    now = rt.clock.now()
    with transaction(rt.factory) as session:
        ana = rt.engine.person(session, "console", "console", "ana", name="Ana")
        session.flush()
        enqueue(session, Purpose("mystery", priority=1), (1,), now=now, person_id=ana.id)
    result = rt.sender.drain()
    [row] = _rows(rt)
    assert result.failed == 1 and row.state == DeliveryState.FAILED
    assert row.last_error is not None and "no renderer for purpose 'mystery'" in row.last_error


# ---------------------------------------------------------------------- nothing else writes the outbox
def _builds_delivery(node: ast.Call) -> bool:
    """``Delivery(...)``, ``insert(Delivery)`` (any dialect's), or ``Delivery.insert()`` / ``Delivery.__table__.insert()``."""
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    if name == "Delivery":
        return True
    if name != "insert":
        return False
    if any(isinstance(a, ast.Name) and a.id == "Delivery" for a in node.args):
        return True
    target = node.func.value if isinstance(node.func, ast.Attribute) else None
    if isinstance(target, ast.Attribute) and target.attr == "__table__":
        target = target.value
    return isinstance(target, ast.Name) and target.id == "Delivery"


def _writes_deliveries(tree: ast.AST) -> list[int]:
    """Lines that build a ``Delivery`` row, an INSERT into ``Delivery``, or raw ``INSERT INTO deliveries`` SQL."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _builds_delivery(node):
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lines += [node.lineno] if "insert into deliveries" in " ".join(node.value.lower().split()) else []
    return lines


def test_only_the_outbox_module_creates_delivery_rows() -> None:
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if path == OUTBOX_WRITER or "migrations" in path.parts:
            continue
        for line in _writes_deliveries(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []
    # The check itself finds each shape it looks for (a check that cannot fail proves nothing).
    probe = ast.parse(
        "Delivery(key='x')\nsqlite.insert(Delivery)\nDelivery.__table__.insert()\n"
        "text('INSERT INTO  deliveries (key) VALUES (1)')\n"
    )
    assert _writes_deliveries(probe) == [1, 2, 3, 4]
    assert _writes_deliveries(ast.parse(OUTBOX_WRITER.read_text())) != []


def test_the_step_kinds_are_one_vocabulary() -> None:
    from typing import get_args

    from bot.journeys.model import STEP_KINDS, Step

    union = get_args(get_args(Step)[0])
    authored = {get_args(model.model_fields["kind"].annotation)[0] for model in union}
    assert authored == set(STEP_KINDS) == set(StepKind) == set(STEP_PURPOSES)
