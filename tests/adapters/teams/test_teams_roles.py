"""Roles come from config: ``teams.admins`` / ``teams.leads`` list Entra object ids or UPNs, mapped to the core's
roles on the actor; everyone else is a learner, refused politely in private."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.app import build
from bot.clock import VirtualClock
from tests.conftest import make_settings
from tests.contract.teams_driver import TeamsDriver
from tests.contract.test_contract import COHORT_START_UTC

pytestmark = pytest.mark.teams


@pytest.fixture
def driver(db_url: str) -> Iterator[TeamsDriver]:
    driver = TeamsDriver(admins=["UBOSS", "Lee.Lead@contoso.example"])
    rt = build(make_settings(db_url), clock=VirtualClock(COHORT_START_UTC), adapters={"teams": driver.adapter})
    driver.start(rt.dispatcher)
    try:
        yield driver
    finally:
        driver.stop()
        rt.db.dispose()


def test_an_admin_by_object_id_may_create_a_cohort_and_a_learner_may_not(driver: TeamsDriver) -> None:
    for user in ("UBOSS", "UANA"):
        driver.add_user(user, user.title(), "Europe/London")
    refused = driver.command("UANA", "cohort create pilot feedback-fundamentals 2026-03-02")
    assert "admin" in refused.lower() and "Traceback" not in refused
    created = driver.command("UBOSS", "cohort create pilot feedback-fundamentals 2026-03-02 Europe/London")
    assert "pilot" in created and "admin" not in created.lower(), created


def test_an_admin_by_upn_is_recognised_once_teams_named_their_upn(driver: TeamsDriver) -> None:
    driver.fake.add_member("ULEE", "Lee Lead", upn="lee.lead@contoso.example")
    driver.send(driver.fake.activity("installationUpdate", "ULEE", action="add"))
    assert driver.adapter.profile(driver.workspace, "ULEE") is not None  # what the core asks on first contact
    created = driver.command("ULEE", "cohort create pilot feedback-fundamentals 2026-03-02")
    assert "admin" not in created.lower(), created
