"""A roster in the README's format reaches the people Slack and Discord send (issue 11, point 1).

The admin's side runs the real ``blendwise`` CLI as a subprocess (``people import`` with the documented columns and
no ``workspace`` column, ``cohort create`` without ``--workspace``, ``cohort enroll`` without ``--create``), pointed
at the fake platform, so the workspace is resolved the way a real install resolves it: Slack's ``auth.test`` for the
bot token's team, the one configured Discord guild. The learner's and manager's side is then played in each
platform's wire format (signed Slack requests, Discord gateway interactions) against the real runtime: the roster's
names, zones and manager must apply, buttons must belong to the learner, and the manager must get the digest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.storage.models import LearningEvent, Person, StepProgress
from tests.conftest import CONTENT, ROOT, make_settings
from tests.contract.drivers import Msg
from tests.fakes import slack_signing

pytestmark = [pytest.mark.slow]

LEARNER_TZ = "Asia/Kolkata"  # the roster's zone; the platform profile says Europe/London
MANAGER_TZ = "America/New_York"
# The admin's CLI runs on the real clock, so the cohort starts on a Monday at least a week from today (no late
# joiner) and the virtual clock begins on the Friday before it.
START = date.today() + timedelta(days=7 + (7 - date.today().weekday()) % 7)
FRIDAY_NOON = datetime.combine(START - timedelta(days=3), time(12, 0), tzinfo=UTC)


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=UTC)


def _driver(platform: str) -> Any:
    if platform == "slack":
        from tests.contract.drivers import SlackDriver

        return SlackDriver()
    from tests.contract.discord_driver import DiscordDriver

    return DiscordDriver()


@pytest.fixture(
    params=[
        pytest.param("slack", marks=pytest.mark.slack),
        pytest.param("discord", marks=pytest.mark.discord),
    ]
)
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    d = _driver(request.param)
    try:
        yield d
    finally:
        d.stop()


def admin_cli(driver: Any, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``blendwise`` as an admin runs it, configured for the driver's fake platform through app.yaml and env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDWISE_", "SLACK_", "DISCORD_"))}
    env["PYTHONPATH"] = str(ROOT)
    if driver.platform == "slack":
        env.update(
            SLACK_BOT_TOKEN=driver.fake.token,
            SLACK_SIGNING_SECRET=slack_signing.SIGNING_SECRET,
            SLACK_API_URL=driver.fake.api_url,
        )
    else:
        env.update(DISCORD_TOKEN=driver.fake.token)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(workdir / "app.yaml"), *args],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_roster_people_are_the_people_the_platform_sends(driver: Any, tmp_path: Path) -> None:
    platform = driver.platform
    ana, mia = driver.uid("UANA"), driver.uid("UMIA")
    # What the platform itself says about them: another zone, and no manager.
    driver.add_user("UANA", "Ana Silva", "Europe/London")
    driver.add_user("UMIA", "Mia Manager", "Europe/London")
    db_url = f"sqlite:///{tmp_path / 'roster.db'}"
    discord = f"discord:\n  guild_ids: ['{driver.workspace}']\n" if platform == "discord" else ""
    (tmp_path / "app.yaml").write_text(
        f"database_url: {db_url}\ncontent_dir: {CONTENT}\ntimezone: Europe/London\nplatforms: [{platform}]\n"
        + discord,
        encoding="utf-8",
    )
    (tmp_path / "roster.csv").write_text(
        textwrap.dedent(
            f"""\
            platform,user_id,name,email,tz,manager
            {platform},{mia},Mia Manager,mia@example.com,{MANAGER_TZ},
            {platform},{ana},Ana Silva,ana@example.com,{LEARNER_TZ},{mia}
            """
        ),
        encoding="utf-8",
    )
    imported = admin_cli(driver, tmp_path, "people", "import", "roster.csv")
    assert imported.stdout.strip() == "Imported 2 people from roster.csv (2 new, 0 updated)."
    admin_cli(
        driver, tmp_path, "cohort", "create", "pilot", "--program", "feedback-fundamentals", "--start", START.isoformat(),
        "--channel", driver.channel,
    )
    admin_cli(driver, tmp_path, "cohort", "enroll", "pilot", ana)  # known from the roster: no --create needed

    clock = VirtualClock(FRIDAY_NOON)
    rt = build(make_settings(db_url, platforms=[platform]), clock=clock, adapters={platform: driver.adapter})
    driver.start(rt.dispatcher)
    try:
        check_journey(driver, rt, clock, ana, mia)
    finally:
        rt.db.dispose()


def check_journey(driver: Any, rt: Runtime, clock: VirtualClock, ana: str, mia: str) -> None:
    with rt.factory() as session:
        people = {p.user_id: p for p in session.scalars(select(Person))}
    assert set(people) == {ana, mia}
    assert {p.workspace for p in people.values()} == {driver.workspace}, "stored under the platform's workspace"
    assert (people[ana].name, people[ana].tz, people[ana].manager_id) == ("Ana Silva", LEARNER_TZ, people[mia].id)

    # The first lesson lands at 09:00 in the roster's zone (03:30 UTC), not the profile's (09:00 UTC).
    first: Msg | None = None
    while first is None:
        clock.advance(timedelta(minutes=10))
        rt.step()
        first = next((m for m in driver.inbox("UANA") if m.button("lesson.done")), None)
        assert clock.now() < at(START, 12), "the first lesson never came"
    local = clock.now().astimezone(ZoneInfo(LEARNER_TZ))
    assert (local.date(), local.hour) == (START, 9), clock.now()

    # Button ownership: the manager cannot complete Ana's lesson; Ana can, once.
    done_button = first.button("lesson.done")
    assert done_button is not None
    driver.press("UMIA", first, done_button)
    assert completed(rt) == 0
    driver.press("UANA", first, done_button)
    assert completed(rt) == 1

    # Ana is enrolled as far as /learn is concerned, and the lesson greets her by her roster name.
    progress = driver.command("UANA", "progress")
    assert "Feedback Fundamentals" in progress and "not enrolled" not in progress, progress
    greeting = driver.inbox("UANA")[0].text
    assert "Hi Ana," in greeting and f"Hi {ana}" not in greeting, greeting

    # The manager sees Ana in /learn team and in the weekly digest (Monday 09:00 in the manager's zone).
    team = driver.command("UMIA", "team")
    assert "Ana Silva" in team and "nobody reports to you" not in team, team
    clock.set(at(START + timedelta(days=7), 12))
    while not digests_to(driver, "UMIA"):
        assert clock.now() < at(START + timedelta(days=7), 16), "no digest for the manager"
        rt.plan_digests()
        rt.step()
        clock.advance(timedelta(minutes=30))
    digest = digests_to(driver, "UMIA")[-1]
    assert "Ana Silva" in digest.text, digest.text
    with rt.factory() as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 2, "events created no second Ana or Mia"


def completed(rt: Runtime) -> int:
    with rt.factory() as session:
        done = session.scalar(
            select(func.count()).select_from(StepProgress).where(StepProgress.state == "done")
        )
        events = session.scalar(
            select(func.count()).select_from(LearningEvent).where(LearningEvent.verb == "completed")
        )
    assert done == events
    return int(done or 0)


def digests_to(driver: Any, key: str) -> list[Msg]:
    return [m for m in driver.inbox(key) if "Ana Silva" in m.text and "team" in (m.title + m.text).lower()]
