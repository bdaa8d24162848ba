"""Shared fixtures: a real database (SQLite always, PostgreSQL when BLENDWISE_TEST_DATABASE_URL is set), a virtual
clock, the console adapter and a fully built runtime. Nothing of ours is mocked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.adapters.console import ConsoleAdapter
from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.config import Settings
from bot.storage.db import make_engine, transaction
from bot.storage.models import Cohort, Person

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"
PG_URL = os.environ.get("BLENDWISE_TEST_DATABASE_URL")
#: Monday 2 March 2026, 07:00 UTC: a working week ahead, and DST changes later in March (US 8th, EU 29th).
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
COHORT_START = date(2026, 3, 2)


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that takes this runs on SQLite and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if not PG_URL:
        pytest.skip("BLENDWISE_TEST_DATABASE_URL is not set (PostgreSQL cases run in CI)")
    _reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def make_settings(db_url: str, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database_url": db_url,
        "content_dir": str(CONTENT),
        "timezone": "Europe/London",
        "admins": ["console:admin"],
    }
    data.update(extra)
    return Settings.model_validate(data)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def console() -> ConsoleAdapter:
    return ConsoleAdapter()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def rt(settings: Settings, clock: VirtualClock, console: ConsoleAdapter) -> Iterator[Runtime]:
    runtime = build(settings, clock=clock, adapters={"console": console})
    console.start(runtime.dispatcher)
    yield runtime
    runtime.db.dispose()


def make_cohort(
    rt: Runtime,
    program_id: str,
    learners: list[tuple[str, str]],
    *,
    name: str = "c1",
    start: date = COHORT_START,
    channel: str | None = "cohort-1",
    lead: str | None = "lead",
    manager: str | None = None,
) -> Cohort:
    """Create a console cohort and enrol ``learners`` given as (user_id, tz)."""
    with transaction(rt.factory) as session:
        leads = [rt.engine.person(session, "console", "console", lead, name="Lee Lead")] if lead else []
        boss: Person | None = None
        if manager:
            boss = rt.engine.person(session, "console", "console", manager, name="Morgan Manager")
        cohort = rt.engine.create_cohort(
            session,
            name=name,
            program_id=program_id,
            platform="console",
            workspace="console",
            start=start,
            channel=channel,
            leads=leads,
        )
        for user_id, tz in learners:
            person = rt.engine.person(session, "console", "console", user_id, name=user_id.title(), tz=tz)
            if boss is not None:
                person.manager_id = boss.id
            rt.engine.enroll(session, cohort, person)
        return cohort
