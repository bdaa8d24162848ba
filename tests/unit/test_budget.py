"""The shared workspace send budget (``bot/nudges/budget.py``) on the real database."""

from __future__ import annotations

import itertools

from bot.app import Runtime
from bot.nudges.budget import SharedBudget


def test_the_shared_budget_is_never_faster_than_its_rate(rt: Runtime) -> None:
    # 5.4 ms a slot: the row holds whole milliseconds, and a gap rounded per slot (5 ms) would run 8 % too fast.
    rate = 1000 / 5.4
    now = [1_700_000_000.0]
    budget = SharedBudget(rt.factory, wall=lambda: now[0])
    slots: list[float] = []
    for n in (1, 1, 3, 1, 10, 2, 1, 7, 1, 1, 4, 1, 9, 1, 1):
        taken, _ = budget.take("console:T1", rate, n)
        assert taken, "a slot within the horizon is always given"
        slots += taken
        now[0] = slots[-1]  # the worker used its last slot; the next take starts from there
    assert slots == sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 1 / rate - 1e-6, min(gaps)  # floats of epoch seconds: microsecond resolution
    assert (len(slots) - 1) / (slots[-1] - slots[0]) <= rate
