"""One minimum-minutes rule for every automatic attendance source (issue 12's loose end).

The session step says ``checkin: {min_minutes: 5}`` while the platform defaults (``discord.voice_min_minutes``,
``teams.meeting_min_minutes``) stay at 10. A learner in the voice channel or the Teams meeting for 7 minutes is
between the two thresholds: the step's rule records them, as ``session attendance import`` would; one who stays 3
minutes is not recorded. The runtime mirrors the session itself, so the minimum travels core -> adapter as it does
in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.events import PresenceObserved
from bot.storage.db import transaction
from bot.storage.models import Attendance, Enrollment, LiveSessionRow, Person
from tests.conftest import make_settings
from tests.contract.discord_driver import DiscordDriver
from tests.contract.drivers import wait_until
from tests.contract.teams_driver import TeamsDriver
from tests.e2e.test_teams_e2e import JOIN_URL, meeting_event
from tests.unit.helpers import write_programs

PROGRAM = """
id: live
title: Live
tz: Europe/London
defaults:
  reminders: {enabled: false}
steps:
  - id: workshop
    title: Workshop
    kind: session
    start: {day: 1, at: "14:00"}
    duration: 1h
    join_url: %s
    session_reminders: []
    checkin: {min_minutes: 5}
"""
COHORT_START = date(2026, 3, 2)
SESSION_START = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # day 1, 14:00 London (GMT)
#: Minutes each learner spends in the session: between the step's 5 and the platform's 10, and below both.
STAYS = {"L1": 7, "L2": 3}


def _cohort(rt: Runtime, platform: str, workspace: str, uid: dict[str, str]) -> None:
    with transaction(rt.factory) as session:
        cohort = rt.engine.create_cohort(
            session, name="minimum", program_id="live", platform=platform, workspace=workspace,
            start=COHORT_START, channel=None, leads=[],
        )  # fmt: skip
        for key in STAYS:
            person = rt.engine.person(session, platform, workspace, uid[key], name=key)
            rt.engine.enroll(session, cohort, person)


def _attended(rt: Runtime) -> dict[str, float | None]:
    with rt.factory() as session:
        rows = session.execute(
            select(Person.user_id, Attendance.minutes)
            .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(Attendance.attended_at.is_not(None))
        ).all()
    return {user: minutes for user, minutes in rows}


@pytest.mark.discord
def test_discord_voice_holds_learners_to_the_steps_minimum(db_url: str, tmp_path: Path) -> None:
    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    driver = DiscordDriver(clock=clock, voice_min_minutes=10)
    driver.adapter.presence_interval = 3600  # reported on leaving, at the virtual minute the test sets
    voice = driver.world.voice_channel_id
    driver.adapter.voice_channel = str(voice)
    content = write_programs(tmp_path, {"live": PROGRAM % "https://meet.example.org/w"})
    settings = make_settings(db_url, content_dir=str(content), discord={**driver.settings, "voice_channel": str(voice)})
    rt = build(settings, clock=clock, adapters={"discord": driver.adapter})
    try:
        driver.start(rt.dispatcher)
        uid = {key: driver.uid(key) for key in STAYS}
        _cohort(rt, "discord", driver.workspace, uid)
        assert rt.mirror_sessions() == 1  # a VOICE Scheduled Event, tracked with the step's minimum

        def move(key: str, channel: int | None, minute: int) -> None:
            clock.set(SESSION_START + timedelta(minutes=minute))
            driver.fake.voice_state(int(uid[key]), channel)
            wait_until(lambda: driver.adapter.presence.is_in(driver.workspace, uid[key]) == (channel is not None),
                       what=f"{key} moving")  # fmt: skip

        for key in STAYS:
            move(key, voice, 0)
        for key, minutes in sorted(STAYS.items(), key=lambda kv: kv[1]):
            move(key, None, minutes)
        assert driver.observer is not None
        driver.observer.wait_for(lambda e: isinstance(e, PresenceObserved), what="L1's voice attendance")
        clock.set(SESSION_START + timedelta(minutes=30))
        assert driver.adapter.check_presence() == []  # L2's 3 minutes never count
        assert _attended(rt) == {uid["L1"]: 7.0}
    finally:
        driver.stop()
        rt.db.dispose()


@pytest.fixture
def teams_world(db_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, VirtualClock, TeamsDriver]]:
    """A runtime over the program above on the fake Teams, its session mirrored (tracked by the meeting's thread)."""
    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    teams = TeamsDriver()  # teams.meeting_min_minutes: the default 10
    content = write_programs(tmp_path, {"live": PROGRAM % JOIN_URL})
    rt = build(make_settings(db_url, content_dir=str(content)), clock=clock, adapters={"teams": teams.adapter})
    try:
        teams.start(rt.dispatcher)
        for key in STAYS:
            teams.add_user(key, key, "Europe/London")
        _cohort(rt, "teams", teams.workspace, {key: teams.uid(key) for key in STAYS})
        assert rt.mirror_sessions() == 1  # tracked by the meeting's thread id, with the step's minimum
        yield rt, clock, teams
    finally:
        teams.stop()
        rt.db.dispose()


def _meet(teams: TeamsDriver, clock: VirtualClock, start: datetime) -> None:
    """Everyone joins at ``start``; each leaves after their minutes in :data:`STAYS`."""
    clock.set(start)
    for key in STAYS:
        meeting_event(teams, "Join", key)
    for key, minutes in sorted(STAYS.items(), key=lambda kv: kv[1]):
        clock.set(start + timedelta(minutes=minutes))
        meeting_event(teams, "Leave", key)


@pytest.mark.teams
def test_teams_meeting_events_hold_learners_to_the_steps_minimum(
    teams_world: tuple[Runtime, VirtualClock, TeamsDriver],
) -> None:
    rt, clock, teams = teams_world
    assert teams.adapter.meetings.min_minutes == 10
    _meet(teams, clock, SESSION_START)
    assert _attended(rt) == {"L1": 7.0}


@pytest.mark.teams
def test_a_moved_teams_meeting_counts_in_its_new_window_at_once(
    teams_world: tuple[Runtime, VirtualClock, TeamsDriver],
) -> None:
    """The runtime passes a move to the adapter on its next tick, so the meeting's window moves before the hourly
    refresh would move it."""
    rt, clock, teams = teams_world
    moved = SESSION_START + timedelta(days=1)
    with transaction(rt.factory) as session:
        live = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "workshop"))
        assert live is not None
        rt.engine.move_session(session, live, moved)
    assert rt.sync_session_changes() == 1
    _meet(teams, clock, moved)
    assert _attended(rt) == {"L1": 7.0}


@pytest.mark.teams
def test_a_cancelled_teams_meeting_no_longer_counts(teams_world: tuple[Runtime, VirtualClock, TeamsDriver]) -> None:
    """Cancelled: the adapter stops counting, and the hourly refresh does not track the session again."""
    rt, clock, teams = teams_world
    with transaction(rt.factory) as session:
        live = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "workshop"))
        assert live is not None
        rt.engine.cancel_session(session, live)
    assert rt.sync_session_changes() == 1
    rt.refresh_sessions()
    _meet(teams, clock, SESSION_START)
    assert _attended(rt) == {}
