"""Fixtures for the Teams adapter tests: the fake Bot Connector and token issuer, the real TeamsAdapter (the SDK
validates every token) and the real runtime on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bot.app import Runtime, build
from bot.clock import VirtualClock
from tests.conftest import make_settings
from tests.contract.teams_driver import TeamsDriver
from tests.contract.test_contract import COHORT_START_UTC


@dataclass
class Teams:
    driver: TeamsDriver
    rt: Runtime
    clock: VirtualClock


@pytest.fixture
def teams(db_url: str) -> Iterator[Teams]:
    driver = TeamsDriver()
    clock = VirtualClock(COHORT_START_UTC)
    rt = build(make_settings(db_url, admins=["teams:UADMIN"]), clock=clock, adapters={"teams": driver.adapter})
    driver.start(rt.dispatcher)
    try:
        yield Teams(driver, rt, clock)
    finally:
        driver.stop()
        rt.db.dispose()
