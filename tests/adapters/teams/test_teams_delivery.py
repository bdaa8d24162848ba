"""Delivery through the Bot Connector: a learner without the app is reported and their delivery waits with the
reason (never dropped), and a 429's Retry-After reschedules only that delivery through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.storage.db import transaction
from bot.storage.models import Delivery
from tests.adapters.teams.conftest import Teams
from tests.contract.test_contract import COHORT_START, PROGRAM

pytestmark = pytest.mark.teams
MONDAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _enrol(teams: Teams, user: str, *, install: bool) -> None:
    d, rt = teams.driver, teams.rt
    if install:
        d.add_user(user, user.title(), "Europe/London")
    with transaction(rt.factory) as session:
        cohort = rt.engine.create_cohort(session, name="pilot", program_id=PROGRAM, platform="teams",
                                         workspace=d.workspace, start=COHORT_START, channel=d.channel)
        rt.engine.enroll(session, cohort, rt.engine.person(session, "teams", d.workspace, user, name=user.title()))


def _deliveries(teams: Teams) -> list[Delivery]:
    with teams.rt.factory() as session:
        return list(session.scalars(select(Delivery).where(Delivery.person_id.is_not(None)).order_by(Delivery.id)))


def test_a_learner_without_the_app_is_reported_and_waits_then_gets_it_after_installing(teams: Teams) -> None:
    _enrol(teams, "UZOE", install=False)
    teams.clock.set(MONDAY)  # the first lesson is due
    teams.rt.step()
    (first, *_) = _deliveries(teams)
    assert first.state == "pending" and "has not installed the Blendwise app" in (first.last_error or "")
    assert teams.driver.adapter.not_installed() == [(teams.driver.workspace, "UZOE")]
    assert teams.driver.inbox("UZOE") == []

    teams.driver.add_user("UZOE", "Zoe", "Europe/London")  # the admin's setup policy installs the app
    assert teams.driver.adapter.not_installed() == []
    teams.clock.advance(timedelta(hours=2))
    teams.rt.step()
    assert _deliveries(teams)[0].state == "sent"
    assert len(teams.driver.inbox("UZOE")) >= 1


def test_a_429_reschedules_the_delivery_after_retry_after_and_sends_it_once(teams: Teams) -> None:
    _enrol(teams, "UANA", install=True)
    teams.clock.set(MONDAY)
    teams.driver.fake.rate_limit_next(1, retry_after=7)
    teams.rt.step()
    (first, *_) = _deliveries(teams)
    assert first.state == "pending" and "429" in (first.last_error or "")
    assert first.due_at == teams.clock.now() + timedelta(seconds=7)
    assert teams.driver.inbox("UANA") == []
    teams.clock.advance(timedelta(seconds=8))
    teams.rt.step()
    assert _deliveries(teams)[0].state == "sent"
    markers = [m.ref.card["body"][0]["id"] for m in teams.driver.inbox("UANA")]
    assert markers and len(markers) == len(set(markers)), "each part of each delivery arrived once"
    assert [c.status for c in teams.driver.fake.calls if c.status == 429] == [429]
