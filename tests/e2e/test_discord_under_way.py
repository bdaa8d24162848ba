"""A live session already under way when the bot first sees it, on Discord.

Discord refuses a Scheduled Event whose start is in the past (HTTP 400, code 50035), and so does the fake. The
adapter gives a session under way an event starting a few seconds from now, so it is mirrored (one POST, however
many ticks follow) and voice attendance still counts from the session's real start; a refusal the platform gives
anyway is recorded on the session row once and never retried. The event's description is rendered like the
invite, never raw template text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.adapters.discord.adapter import UNDER_WAY_LEAD
from bot.app import Runtime
from bot.clock import VirtualClock
from bot.events import PresenceObserved
from bot.storage.db import transaction
from bot.storage.models import Attendance, LiveSessionRow
from tests.conftest import COHORT_START
from tests.contract.discord_driver import DiscordDriver
from tests.contract.drivers import wait_until
from tests.e2e.test_discord_e2e import PROGRAM, world  # noqa: F401  (the fixture)

World = tuple[Runtime, VirtualClock, DiscordDriver]
START = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # the feedback workshop of a cohort starting COHORT_START


def _cohort(rt: Runtime, driver: DiscordDriver, learners: list[str]) -> int:
    """A cohort enrolled before the workshop, whose bot was not running until the workshop was under way."""
    with transaction(rt.factory) as session:
        lead = rt.engine.person(session, "discord", driver.workspace, driver.uid("ULEAD"), name="Lena Lead")
        cohort = rt.engine.create_cohort(
            session,
            name="discord-late-bot",
            program_id=PROGRAM,
            platform="discord",
            workspace=driver.workspace,
            start=COHORT_START,
            channel=driver.channel,
            leads=[lead],
        )
        for key in learners:
            driver.add_user(key, key.title(), "Europe/London")
            person = rt.engine.person(session, "discord", driver.workspace, driver.uid(key), name=key.title())
            rt.engine.enroll(session, cohort, person)
        return cohort.id


def _posts(driver: DiscordDriver) -> list:
    return driver.fake.calls_to("POST", rf"/guilds/{driver.world.guild_id}/scheduled-events")


def test_a_session_under_way_is_mirrored_once_and_counts_voice_from_its_start(world: World) -> None:  # noqa: F811
    rt, clock, driver = world
    cohort_id = _cohort(rt, driver, ["L1"])
    clock.set(START + timedelta(minutes=20))
    first_seen = clock.now()
    for _ in range(30):  # half an hour at a one-minute tick
        rt.step()
        clock.advance(timedelta(minutes=1))

    (post,) = _posts(driver)
    assert post.status == 200
    assert datetime.fromisoformat(post.json["scheduled_start_time"]) == first_seen + UNDER_WAY_LEAD
    with rt.factory() as session:
        live = session.scalars(select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort_id)).one()
        assert live.platform_ref in {str(i) for i in driver.fake.scheduled_events}
        assert live.mirror_refused is None
        live_id = live.id
    # The description is the authored one, rendered with the invite's variables (the cohort's zone).
    description = post.json["description"]
    assert "{{" not in description and "{%" not in description
    assert "Mon 9 Mar, 14:00 GMT" in description and "https://meet.example.com/feedback-fundamentals" in description

    # Voice attendance works for the mirrored session: L1 joins now, leaves 11 minutes later.
    uid = driver.uid("L1")
    fake, adapter = driver.fake, driver.adapter
    fake.voice_state(int(uid), driver.world.voice_channel_id)
    wait_until(lambda: adapter.presence.is_in(driver.workspace, uid), what="L1 in voice")
    clock.advance(timedelta(minutes=11))
    fake.voice_state(int(uid), None)
    assert driver.observer is not None
    driver.observer.wait_for(
        lambda e: isinstance(e, PresenceObserved) and e.actor.user_id == uid, what="L1's voice attendance"
    )
    with rt.factory() as session:
        attendance = session.scalar(select(Attendance).where(Attendance.session_id == live_id))
    assert attendance is not None and attendance.source == "voice" and attendance.minutes == 11.0


def test_a_refusal_is_recorded_once_and_not_retried(world: World) -> None:  # noqa: F811
    rt, clock, driver = world
    cohort_id = _cohort(rt, driver, ["L1"])
    clock.set(START + timedelta(minutes=20))
    # Discord's clock runs an hour ahead of ours: even the adapter's margin is "the past" to it.
    driver.fake.now = lambda: clock.now() + timedelta(hours=1)
    for _ in range(40):
        rt.step()
        clock.advance(timedelta(seconds=30))

    (post,) = _posts(driver)
    assert post.status == 400
    with rt.factory() as session:
        live = session.scalars(select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort_id)).one()
    assert live.platform_ref == "-"
    assert live.mirror_refused is not None and "50035" in live.mirror_refused


def test_the_fake_refuses_a_start_in_the_past_like_discord(world: World) -> None:  # noqa: F811
    _, clock, driver = world
    fake = driver.fake
    body = {
        "name": "Too late",
        "privacy_level": 2,
        "entity_type": 3,
        "entity_metadata": {"location": "https://meet.example.com/x"},
        "scheduled_start_time": (clock.now() - timedelta(minutes=1)).isoformat(),
        "scheduled_end_time": (clock.now() + timedelta(hours=1)).isoformat(),
    }
    request = urllib.request.Request(
        f"{fake.api_url}/guilds/{fake.world.guild_id}/scheduled-events",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bot {fake.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["code"] == 50035
