"""A cohort of five learners through a shipped program entirely in (fake) Teams: Adaptive Cards in personal chats,
``Action.Execute`` presses (one replayed twice, recorded once, the card updated in place), a reflection form, thread
replies in the cohort channel, meeting participant events that become attendance, the manager's digest, then the
unified report. Every activity is a real HTTP request whose RS256 token the SDK validates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.reporting import build_report
from bot.storage.models import Attendance, LiveSessionRow, QuizAnswer
from tests.conftest import make_settings
from tests.contract.teams_driver import TeamsDriver
from tests.contract.test_contract import COHORT_START_UTC, Learner, setup_cohort
from tests.e2e.test_slack_e2e import FIVE  # the same five learners on every platform

pytestmark = [pytest.mark.teams, pytest.mark.slow]

#: Learners who attend in the Teams meeting instead of pressing "Check in".
IN_MEETING = ("UDEV", "UEVA")
MEETING = "19:meeting_ZmVlZGJhY2std29ya3Nob3A@thread.v2"
JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZmVlZGJhY2std29ya3Nob3A%40thread.v2/0"


class MeetingLearner(Learner):
    """Attends through the meeting: never presses the check-in button."""

    def react(self, index: int, msg: object) -> None:
        if msg.button("session.checkin") is not None and "Check in" in msg.title:  # type: ignore[attr-defined]
            return
        super().react(index, msg)  # type: ignore[arg-type]


@pytest.fixture
def teams() -> Iterator[TeamsDriver]:
    driver = TeamsDriver()
    try:
        yield driver
    finally:
        driver.stop()


def meeting_event(driver: TeamsDriver, name: str, user: str) -> None:
    member = {"user": {"id": driver.fake.member_id(user), "aadObjectId": user, "name": user},
              "meeting": {"inMeeting": name.endswith("Join"), "role": "Attendee"}}
    driver.send(driver.fake.activity("event", user, conversation=MEETING,
                                     name=f"application/vnd.microsoft.meetingParticipant{name}",
                                     value={"members": [member]}))


def replay_a_quiz_answer(driver: TeamsDriver, rt: Runtime) -> None:
    """Ana's first quiz answer arrives twice (Teams retried the invoke): one answer, one card update."""
    quiz = next(m for m in driver.inbox("UANA") if m.button("quiz.answer") is not None)
    answers = [b for b in quiz.buttons if b.action == "quiz.answer"]
    button = answers[Learner.correct_options(answers[0].value)[0]]
    before = quiz.ref.card
    with rt.factory() as session:
        recorded = session.scalar(select(func.count()).select_from(QuizAnswer)) or 0
    press = driver.fake.activity("invoke", "UANA", conversation=quiz.ref.conversation, name="adaptiveCard/action",
                                 replyToId=quiz.ref.id, value={"action": button.raw, "trigger": "manual"})
    first, second = driver.send(press), driver.send(press)
    assert first["type"] == "application/vnd.microsoft.card.adaptive" and first["value"] != before
    assert second["type"] == "application/vnd.microsoft.activity.message", "the replay changes nothing"
    driver.fake.show_card(quiz.ref.id, first["value"])
    with rt.factory() as session:
        assert session.scalar(select(func.count()).select_from(QuizAnswer)) == recorded + 1


def test_five_learners_through_feedback_fundamentals_in_teams(teams: TeamsDriver, tmp_path: Path) -> None:
    clock = VirtualClock(COHORT_START_UTC)
    rt = build(make_settings(f"sqlite:///{tmp_path / 'e2e.db'}"), clock=clock, adapters={"teams": teams.adapter})
    teams.start(rt.dispatcher)
    try:
        setup_cohort(teams, rt, FIVE, manager="UMGR")
        with rt.factory() as session, session.begin():
            session.execute(update(LiveSessionRow).values(join_url=JOIN_URL))
        learners = [(MeetingLearner if u in IN_MEETING else Learner)(teams, u) for u, _, _ in FIVE]
        with rt.factory() as session:
            start = session.scalar(select(LiveSessionRow.start_at))
        assert start is not None
        replayed = joined = left = False
        end = clock.now() + timedelta(days=17)
        while clock.now() < end:
            if clock.now().minute < 20:
                rt.plan_digests()
            rt.step()
            if not replayed and any(m.button("quiz.answer") for m in teams.inbox("UANA")):
                replay_a_quiz_answer(teams, rt)
                replayed = True
            if not joined and clock.now() >= start:
                for user in IN_MEETING:
                    meeting_event(teams, "Join", user)
                joined = True
            if joined and not left and clock.now() >= start + timedelta(minutes=40):
                for user in IN_MEETING:
                    meeting_event(teams, "Leave", user)
                left = True
            for learner in learners:
                learner.act()
            clock.advance(timedelta(minutes=20))
        rt.step()
        with rt.factory() as session:
            report = build_report(session, rt.engine)
            meeting_minutes = dict(session.execute(
                select(Attendance.source, func.count()).group_by(Attendance.source)).all())
    finally:
        rt.db.dispose()

    assert replayed and joined and left
    assert meeting_minutes == {"checkin": 3, "voice": 2}, "two attended in the meeting, three checked in"
    rows = {r.user_id: r for r in report.learners}
    assert set(rows) == {u for u, _, _ in FIVE}
    for user_id, _, _ in FIVE:
        row = rows[user_id]
        assert (row.status, row.steps_completed, row.steps_total) == ("done", 11, 11), row  # eight steps and the three evaluation polls
        assert (row.sessions_attended, row.sessions_missed, row.quiz_average) == (1, 0, 100.0), row
        assert row.replies == 2 and row.manager == "Morgan Manager"
    cohort = report.cohorts[0]
    assert (cohort.learners, cohort.completed, cohort.completion_rate, cohort.attendance_rate) == (5, 5, 100.0, 100.0)

    # Everything went through the Bot Connector: cards in personal chats, updates in place, channel threads.
    posts = [c for c in teams.fake.calls if c.method == "POST" and c.status == 201]
    personal = [c for c in posts if "/a%3Apersonal-" in c.path or "/a:personal-" in c.path]
    assert personal and all(c.body["attachments"][0]["content"]["version"] == "1.5" for c in personal)
    actions = [a for c in personal for a in c.body["attachments"][0]["content"].get("actions", [])]
    assert all(a["type"] in ("Action.Execute", "Action.OpenUrl", "Action.ShowCard") for a in actions)
    inline = [a["card"] for a in actions if a["type"] == "Action.ShowCard"]
    assert inline and all(x["type"] == "Action.Execute" for card in inline for x in card["actions"]), \
        "reflections are written in their card and submitted as a Universal Action"
    assert any(c.path == "/v3/conversations" for c in posts), "prompts open threads in the cohort channel"
    assert len(teams.calendar_files("UANA")) >= 1, "the invite links its .ics"
    assert all(p.activity.get("attachments") for p in teams.fake.in_channel(teams.channel))

    # The manager's weekly digest: a card in their personal chat listing only their reports.
    digest = [m for m in teams.inbox("UMGR") if "team" in m.text.lower()]
    assert digest, "the manager received a digest"
    assert all(name in digest[-1].text for _, name, _ in FIVE)
