"""A cohort of five learners through a shipped program entirely in (fake) Slack: lessons, quizzes, RSVPs,
check-ins, thread replies and a manager digest, every learner action a real signed request to the bolt endpoint,
then the unified report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build
from bot.clock import VirtualClock
from bot.reporting import build_report
from tests.conftest import make_settings
from tests.contract.drivers import SlackDriver
from tests.contract.test_contract import COHORT_START_UTC, run_journey

pytestmark = [pytest.mark.slack, pytest.mark.slow]

FIVE = [
    ("UANA", "Ana Silva", "Europe/London"),
    ("UBEN", "Ben Osei", "America/New_York"),
    ("UCHI", "Chidi Okeke", "Africa/Lagos"),
    ("UDEV", "Dev Patel", "Asia/Kolkata"),
    ("UEVA", "Eva Lind", "Europe/Stockholm"),
]


@pytest.fixture
def slack() -> Iterator[SlackDriver]:
    driver = SlackDriver()
    try:
        yield driver
    finally:
        driver.stop()


def test_five_learners_through_feedback_fundamentals_in_slack(slack: SlackDriver, tmp_path: Path) -> None:
    clock = VirtualClock(COHORT_START_UTC)
    rt = build(
        make_settings(f"sqlite:///{tmp_path / 'e2e.db'}"), clock=clock, adapters={"slack": slack.adapter}
    )
    slack.start(rt.dispatcher)
    try:
        run_journey(slack, rt, clock, days=17, learners_spec=FIVE, manager="UMGR")
        with rt.factory() as session:
            report = build_report(session, rt.engine)
    finally:
        rt.db.dispose()

    rows = {r.user_id: r for r in report.learners}
    assert set(rows) == {u for u, _, _ in FIVE}
    for user_id, _, _ in FIVE:
        row = rows[user_id]
        assert (row.status, row.steps_completed, row.steps_total) == ("done", 11, 11), row  # eight steps and the three evaluation polls
        assert (row.sessions_attended, row.sessions_missed, row.quiz_average) == (1, 0, 100.0), row
        assert row.replies == 2 and row.manager == "Morgan Manager"
    cohort = report.cohorts[0]
    assert (cohort.learners, cohort.completed, cohort.completion_rate, cohort.attendance_rate) == (
        5,
        5,
        100.0,
        100.0,
    )
    assert cohort.sessions[0]["rsvp_yes"] == 5

    # Everything went through Slack's Web API: DMs with fallback text and metadata, an .ics upload per learner,
    # quiz cards updated in place, the prompts in the cohort channel.
    posts = slack.fake.ok_calls("chat.postMessage")
    dms = [c for c in posts if c.params.get("channel", "").startswith("D")]
    assert dms and all(c.params.get("text") for c in dms)
    assert all("blendwise_delivery" in str(c.params.get("metadata")) for c in dms)
    assert len([u for u in slack.fake.uploads() if str(u.get("filename", "")).endswith(".ics")]) == 5
    assert len(slack.fake.ok_calls("chat.update")) >= 5 * 4  # every quiz answer, RSVP and Done edits its card
    assert [m for m in slack.fake.messages_in(slack.channel) if not m.get("thread_ts")]

    # The manager's weekly digest: a DM listing only their reports.
    digest = [m for m in slack.fake.messages_to("UMGR") if "team" in (m.get("text") or "").lower()]
    assert digest, "the manager received a digest DM"
    text = str(digest[-1].get("blocks"))
    assert all(name in text for _, name, _ in FIVE)
    # Its team-progress chart is drawn only because Slack uploads it: a real PNG reaches the manager's DM.
    charts = [u for u in slack.fake.uploads() if u.get("filename") == "team-progress.png"]
    assert charts and all(u["content"].startswith(b"\x89PNG\r\n\x1a\n") for u in charts)
    assert {u["channel"] for u in charts} == {slack.fake.dm_channel("UMGR")}
