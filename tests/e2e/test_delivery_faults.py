"""The delivery runtime under platform faults: the real Slack adapter, the real sender, a fake Slack that fails 30 %
of the posts at random (429, a 5xx before storing, and a 5xx *after* storing the message) and enforces the posting
limits. Every part of every delivery must arrive exactly once, and each learner's messages in planning order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.adapters.slack.adapter import SlackAdapter
from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.storage.db import transaction
from bot.storage.models import Delivery, Person
from tests.conftest import make_settings
from tests.fakes import slack_signing
from tests.fakes.slack_api import FakeSlack
from tests.unit.helpers import write_programs

pytestmark = [pytest.mark.slack]

PARAGRAPH = " ".join(["Practice turns knowledge into a habit, one small and deliberate step at a time."] * 11)
PROGRAM = f"""
id: faults
title: Faults
tz: UTC
defaults:
  reminders: {{enabled: false}}
steps:
  - id: first
    title: First lesson
    kind: lesson
    body: The first one.
  - id: long
    title: Long lesson
    kind: lesson
    body: |
      {PARAGRAPH}

      {PARAGRAPH}

      {PARAGRAPH}
  - id: third
    title: Third lesson
    kind: lesson
    body: The third one.
"""
ALWAYS = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEARNERS = 24


def slack_runtime(db_url: str, root: Path, fake: FakeSlack, clock: VirtualClock, **sender: Any) -> Runtime:
    adapter = SlackAdapter(
        bot_token=fake.token,
        signing_secret=slack_signing.SIGNING_SECRET,
        api_url=fake.api_url,
        port=0,
        host="127.0.0.1",
        per_channel_interval=0.05,
        workspace_rate=400.0,
        max_retry_wait=0.0,  # a 429 goes back to the outbox, which schedules the row after Retry-After
    )
    adapter.team_id = fake.team_id
    settings = make_settings(
        db_url,
        content_dir=str(write_programs(root, {"faults": PROGRAM})),
        working_hours=ALWAYS,
        sender={"max_attempts": 30, **sender},
    )
    return build(settings, clock=clock, adapters={"slack": adapter})


def enrol(rt: Runtime, fake: FakeSlack, n: int) -> None:
    with transaction(rt.factory) as session:
        cohort = rt.engine.create_cohort(
            session,
            name="c1",
            program_id="faults",
            platform="slack",
            workspace=fake.team_id,
            start=date(2026, 3, 2),
            channel="C0COHORT01",
        )
        for i in range(n):
            user = f"U{i:07d}"
            fake.add_user(user, f"learner{i}", real_name=f"Learner {i}", tz="UTC")
            person = rt.engine.person(session, "slack", fake.team_id, user, name=f"Learner {i}", tz="UTC")
            rt.engine.enroll(session, cohort, person)


def run_until_sent(rt: Runtime, clock: VirtualClock, expected: int, rounds: int = 300) -> None:
    for _ in range(rounds):
        rt.tick()
        rt.drain()
        with rt.factory() as session:
            states = Counter(session.scalars(select(Delivery.state)).all())
        if states["sent"] + states["failed"] + states["skipped"] >= expected:
            return
        clock.advance(timedelta(seconds=61))
    raise AssertionError("deliveries still open after every retry")


def posted_parts(fake: FakeSlack, user: str) -> list[tuple[int, int]]:
    """(delivery id, part) of every message in the learner's DM, in the order Slack stored them."""
    out = []
    for message in fake.messages_to(user):
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        out.append((int(payload["delivery_id"]), int(payload.get("part", 1))))
    return out


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


def test_thirty_percent_faults_deliver_every_part_exactly_once_in_order(
    db_url: str, tmp_path: Path, fake: FakeSlack
) -> None:
    clock = VirtualClock(START)
    rt = slack_runtime(db_url, tmp_path, fake, clock)
    try:
        enrol(rt, fake, LEARNERS)
        fake.limit_posts(per_channel_interval=0.05)
        fake.chaos(0.3, seed=7)
        run_until_sent(rt, clock, 3 * LEARNERS)
        with rt.factory() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.state, Person.user_id).join(Person, Person.id == Delivery.person_id)
            ).all()
        assert len(rows) == 3 * LEARNERS
        assert {state for _, state, _ in rows} == {"sent"}
        for user in {u for _, _, u in rows}:
            parts = posted_parts(fake, user)
            mine = sorted({d for d, _, u in rows if u == user})
            expected = [(mine[0], 1), (mine[1], 1), (mine[1], 2), (mine[1], 3), (mine[2], 1)]
            counts = Counter(parts)
            assert all(c == 1 for c in counts.values()), f"{user}: duplicates {counts.most_common(2)}"
            assert parts == expected, f"{user}: {parts}"
        statuses = Counter(c.status for c in fake.calls("chat.postMessage"))
        assert statuses[500] > 0 and statuses[429] > 0  # the faults really happened
        assert fake.stored_then_failed > 0  # including answers lost after Slack stored the message
        assert fake.calls("conversations.history")  # unsure rows were reconciled before re-sending
    finally:
        rt.adapters["slack"].stop()
        rt.db.dispose()
