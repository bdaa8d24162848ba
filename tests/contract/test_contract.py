"""The adapter contract: one blended journey, run unchanged on every adapter.

Each learner reacts to what the platform shows them (lesson cards, quiz buttons, session invites, check-in
prompts, reflection forms, cohort threads) using that platform's wire format, while the real runtime ticks a
virtual clock. At the end the unified report must say the same thing on every platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.reporting import build_report
from bot.storage.db import transaction
from bot.storage.models import Delivery, LearningEvent
from tests.conftest import COHORT_START, make_settings
from tests.contract.drivers import ConsoleDriver, Driver, Msg, SlackDriver

PROGRAM = "feedback-fundamentals"
LEARNERS = [("UANA", "Ana Silva", "Europe/London"), ("UBEN", "Ben Osei", "America/New_York")]
REFLECTION = (
    "I used the situation, behaviour and impact structure with a colleague this week and it kept the "
    "conversation on facts. Next time I will ask how they saw it before offering my own view, and I will "
    "write the impact sentence down beforehand so it comes out clearly and kindly."
)


def _drivers() -> list[Any]:
    return [
        pytest.param(ConsoleDriver, id="console"),
        pytest.param(SlackDriver, id="slack", marks=pytest.mark.slack),
        pytest.param("discord", id="discord", marks=pytest.mark.discord),
        pytest.param("teams", id="teams", marks=pytest.mark.teams),
    ]


@pytest.fixture(params=_drivers())
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    factory = request.param
    if factory == "discord":
        try:
            from tests.contract.discord_driver import DiscordDriver
        except ImportError as exc:  # pragma: no cover - only while the Discord driver is absent
            pytest.skip(f"Discord contract driver unavailable: {exc}")
        factory = DiscordDriver
    if factory == "teams":
        from tests.contract.teams_driver import TeamsDriver

        factory = TeamsDriver
    d = factory()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def runtime(driver: Driver, db_url: str) -> Iterator[tuple[Runtime, VirtualClock]]:
    clock = VirtualClock(COHORT_START_UTC)
    settings = make_settings(db_url, admins=[f"{driver.platform}:{driver.uid('UADMIN')}"])
    rt = build(settings, clock=clock, adapters={driver.platform: driver.adapter})
    driver.start(rt.dispatcher)
    yield rt, clock
    rt.db.dispose()


COHORT_START_UTC = datetime(2026, 2, 27, 12, 0, tzinfo=UTC)  # the Friday before the Monday start


class Learner:
    """Reacts to each new message the way an engaged learner would, through the driver only."""

    def __init__(self, driver: Driver, user_id: str) -> None:
        self.driver = driver
        self.user_id = user_id
        self.seen = 0
        self.replied: set[str] = set()

    def act(self) -> None:
        inbox = self.driver.inbox(self.user_id)
        for index in range(self.seen, len(inbox)):
            msg = self.driver.inbox(self.user_id)[index]
            self.react(index, msg)
        self.seen = len(inbox)

    def react(self, index: int, msg: Msg) -> None:
        d = self.driver
        if (b := msg.button("lesson.done")) is not None:
            d.press(self.user_id, msg, b)
        elif msg.button("quiz.answer") is not None:
            self.take_quiz(index)
        elif (b := msg.button("rsvp.yes")) is not None or (
            (b := msg.button("session.checkin")) is not None and "Check in" in msg.title
        ):
            d.press(self.user_id, msg, b)
        elif (b := msg.button("reflection.open")) is not None:
            d.press(self.user_id, msg, b)
            d.submit_modal(self.user_id, REFLECTION)
        elif (b := msg.button("poll.step")) is not None:
            d.press(self.user_id, msg, b)
        elif "discussion" in msg.text.lower() and "reply in the thread" in msg.text.lower():
            for post in d.channel_posts():
                if "Discussion" in post.title or "Discussion" in post.text:
                    key = post.title + post.text
                    if key not in self.replied:
                        d.reply_in_thread(self.user_id, post, "My one commitment: ask before I advise.")
                        self.replied.add(key)

    def take_quiz(self, index: int) -> None:
        """Answer every question correctly, reading the card as it is updated in place after each press."""
        for _ in range(40):
            msg = self.driver.inbox(self.user_id)[index]
            answers = [b for b in msg.buttons if b.action == "quiz.answer"]
            toggles = [b for b in msg.buttons if b.action == "quiz.toggle"]
            if answers:
                right = self.correct_options(answers[0].value)
                self.driver.press(self.user_id, msg, answers[right[0]])
            elif toggles:
                for option in self.correct_options(toggles[0].value):
                    msg = self.driver.inbox(self.user_id)[index]
                    toggle = next(
                        b for b in msg.buttons if b.action == "quiz.toggle" and b.value.endswith(f".{option}")
                    )
                    self.driver.press(self.user_id, msg, toggle)
                msg = self.driver.inbox(self.user_id)[index]
                submit = msg.button("quiz.submit")
                assert submit is not None
                self.driver.press(self.user_id, msg, submit)
            else:
                return

    @staticmethod
    def correct_options(value: str) -> list[int]:
        from bot.journeys.library import Library
        from tests.conftest import CONTENT

        step = next(s for s in Library.from_dir(CONTENT).program(PROGRAM).steps if s.kind == "quiz")
        qi = int(value.split(".")[2])
        return [i for i, o in enumerate(step.questions[qi].options) if o.correct]  # type: ignore[union-attr]


def setup_cohort(
    driver: Driver,
    rt: Runtime,
    spec: list[tuple[str, str, str]] | None = None,
    manager: str | None = None,
    join_urls: dict[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """The cohort every contract test uses: a lead, the learners in ``spec`` and optionally their manager (and
    ``join_urls``, session step id -> the cohort's meeting link)."""
    spec = LEARNERS if spec is None else spec
    # People meet the platform before the transaction: installing an app for someone (Teams) writes to the database
    # through the adapter's endpoint, which must not wait on this test's own open transaction.
    if manager is not None:
        driver.add_user(manager, "Morgan Manager", "Europe/London")
    driver.add_user("ULEAD", "Lee Lead", "Europe/London")
    for user_id, name, tz in spec:
        driver.add_user(user_id, name, tz)
    with transaction(rt.factory) as session:
        boss = None
        if manager is not None:
            boss = rt.engine.person(
                session, driver.platform, driver.workspace, driver.uid(manager), name="Morgan Manager"
            )
        lead = rt.engine.person(
            session, driver.platform, driver.workspace, driver.uid("ULEAD"), name="Lee Lead"
        )
        cohort = rt.engine.create_cohort(
            session,
            name="contract",
            program_id=PROGRAM,
            platform=driver.platform,
            workspace=driver.workspace,
            start=COHORT_START,
            channel=driver.channel,
            leads=[lead],
            join_urls=join_urls,
        )
        for user_id, name, tz in spec:
            person = rt.engine.person(
                session, driver.platform, driver.workspace, driver.uid(user_id), name=name, tz=tz
            )
            if boss is not None:
                person.manager_id = boss.id
            rt.engine.enroll(session, cohort, person)
    return spec


def run_journey(
    driver: Driver,
    rt: Runtime,
    clock: VirtualClock,
    days: int = 16,
    learners_spec: list[tuple[str, str, str]] | None = None,
    manager: str | None = None,
) -> list[Learner]:
    spec = setup_cohort(driver, rt, learners_spec, manager)
    learners = [Learner(driver, u) for u, _, _ in spec]
    end = clock.now() + timedelta(days=days)
    while clock.now() < end:
        if clock.now().minute < 20:
            rt.plan_digests()  # what the hourly cron job does
        rt.step()
        for learner in learners:
            learner.act()
        clock.advance(timedelta(minutes=20))
    rt.step()
    return learners


def test_blended_journey_completes_on_every_adapter(
    driver: Driver, runtime: tuple[Runtime, VirtualClock]
) -> None:
    rt, clock = runtime
    run_journey(driver, rt, clock)
    with rt.factory() as session:
        report = build_report(session, rt.engine)
        failed = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "failed"))
        verbs = dict(
            session.execute(select(LearningEvent.verb, func.count()).group_by(LearningEvent.verb)).all()
        )
    assert failed == 0
    rows = {r.user_id: r for r in report.learners}
    for user_id, _, _ in LEARNERS:
        row = rows[driver.uid(user_id)]
        assert row.status == "done", row
        # 8 authored steps and the 3 polls of the end-of-program evaluation.
        assert row.steps_completed == row.steps_total == 11
        assert row.sessions_attended == 1 and row.sessions_missed == 0
        assert row.quiz_average == 100.0
        assert row.replies >= 1
    # One fact, one event: 2 learners x (11 steps + program) completed; 1 session attended each.
    assert verbs["completed"] == 2 * 12
    assert verbs["attended"] == 2
    assert verbs["passed"] == 2
    assert report.cohorts[0].completion_rate == 100.0
    assert report.cohorts[0].attendance_rate == 100.0


def test_learner_text_cannot_mention_everyone(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    rt, _clock = runtime
    setup_cohort(driver, rt, spec=[])
    reply = driver.command("ULEAD", "announce contract Hello <!channel> @everyone @here <@U123> {{ 7*7 }}")
    assert "queued" in reply.lower()
    rt.step()
    texts = "\n".join(driver.raw_channel_texts())
    assert "{{ 7*7 }}" in texts or "{{ 7\\*7 }}" in texts, "learner text is never evaluated as a template"
    assert "49" not in texts
    if driver.platform == "slack":
        assert "<!channel>" not in texts and "<@U123>" not in texts
    if driver.platform == "discord":
        assert "@everyone" not in texts.replace("@\u200beveryone", "")


def test_refusals_are_polite_and_ephemeral(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    _rt, _ = runtime
    driver.add_user("UANA", "Ana Silva", "Europe/London")
    text = driver.command("UANA", "frobnicate")
    assert "don't know" in text and "help" in text
    text = driver.command("UANA", "cohort create x feedback-fundamentals 2026-03-02")
    assert "admin" in text.lower()
    assert "Traceback" not in text


def test_live_poll_counts_update_in_place(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    """A lead's channel poll: votes (and a changed vote) update the same channel message in place; hidden results
    appear only when the lead closes the poll."""
    rt, _ = runtime
    lead = "ULEAD"
    setup_cohort(driver, rt)
    reply = driver.command(
        lead, 'poll contract "Which habit first?" "Asking" "Listening" --hide-results-until-close'
    )
    poll_id = int(re.search(r"poll close (\d+)", reply).group(1))  # type: ignore[union-attr]
    rt.step()

    def card() -> Msg:
        return next(p for p in driver.channel_posts() if "Which habit first?" in p.title + p.text)

    ana, ben = (k for k, _, _ in LEARNERS)
    driver.press(ana, card(), next(b for b in card().buttons if b.value.endswith(".0")))
    driver.press(ben, card(), next(b for b in card().buttons if b.value.endswith(".0")))
    driver.press(ben, card(), next(b for b in card().buttons if b.value.endswith(".1")))  # changes her vote
    text = card().text
    assert "2 people voted" in text
    assert "hidden" in text.lower() and "(50%)" not in text
    closed = driver.command(lead, f"poll close {poll_id}")
    assert "closed" in closed.lower()
    text = card().text
    assert text.count("1 (50%)") == 2, text
    assert not card().buttons, "a closed poll has no buttons left"


def test_weekly_recaps_stay_in_one_thread(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    """The first weekly recap is the cohort's one top-level recap post; later weeks reply in its thread."""
    rt, clock = runtime
    setup_cohort(driver, rt)
    for week in (1, 2):
        clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC) + timedelta(days=7 * week))
        assert rt.plan_digests() == 1
        assert rt.plan_digests() == 0, "one recap per cohort per week"
        rt.step()
    top_level = [p for p in driver.channel_posts() if "Week in review" in p.title + p.text]
    everywhere = [t for t in driver.raw_channel_texts() if "Week in review" in t]
    assert len(top_level) == 1
    assert len(everywhere) == 2
    with rt.factory() as session:
        states = session.scalars(select(Delivery.state).where(Delivery.purpose == "cohort_recap")).all()
    assert states == ["sent", "sent"]


def test_every_core_subcommand_is_reachable_on_every_adapter(
    driver: Driver, runtime: tuple[Runtime, VirtualClock]
) -> None:
    """Each ``/learn`` subcommand the core and its features registered exists on every platform: declared where the
    platform declares commands up front (Discord, from the core's registry), and answered by the core, never with
    "I don't know"."""
    rt, _ = runtime
    setup_cohort(driver, rt)
    names = [s.name for s in rt.dispatcher.subcommands()]
    assert {"help", "cohort", "poll", "recording", "recap", "search"} <= set(names)
    declared = driver.declared_subcommands()
    if declared is not None:
        assert declared == names
    for name in names:
        text = driver.command("UADMIN", name)
        assert "I don't know" not in text, (name, text)
        assert "Traceback" not in text


def test_recap_works_on_every_adapter(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    """``/learn recap`` (a live-feature subcommand, once missing on Discord) reaches the live feature everywhere."""
    rt, _ = runtime
    setup_cohort(driver, rt)
    shared = driver.command("ULEAD", "recording feedback-workshop https://recordings.example.com/fw contract")
    assert "I don't know" not in shared
    review = driver.command("ULEAD", "recap review feedback-workshop contract")
    assert "has a recording but no transcript" in review, review
    released = driver.command("ULEAD", "recap release feedback-workshop contract")
    # The session is next week: the feature itself answers, on every platform, that it is too early to release.
    assert "has not finished yet; release its recap after the session" in released, released


# ------------------------------------------------------------------------------ moving and cancelling a session
SESSION = "feedback-workshop"  # Monday 9 March 2026, 14:00-15:30 London (GMT = UTC); invites go out 2 March
INVITES_OUT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def _invites(driver: Driver, user: str) -> list[Msg]:
    return [m for m in driver.inbox(user) if "Live workshop" in m.title and "Moved" not in m.title]


def _count(driver: Driver, user: str, title: str) -> int:
    return sum(1 for m in driver.inbox(user) if m.title.startswith(title))


def _event(data: bytes) -> tuple[Any, Any]:
    from icalendar import Calendar

    cal = Calendar.from_ical(data)
    (event,) = cal.walk("VEVENT")
    return cal, event


def test_moving_a_session_updates_invites_in_place_and_replans(
    driver: Driver, runtime: tuple[Runtime, VirtualClock]
) -> None:
    """``/learn session move``: the invite message is edited (same ref, no second invite), a new .ics keeps the UID
    with a higher SEQUENCE (RFC 5546 REQUEST), the RSVP stays, reminders and check-in follow the new time only,
    and a Discord Scheduled Event is PATCHed to it."""
    rt, clock = runtime
    setup_cohort(driver, rt)
    ana, ben = "UANA", "UBEN"
    clock.set(INVITES_OUT)
    rt.step()
    (invite,) = _invites(driver, ana)
    (first_ics,) = driver.calendar_files(ana)
    yes = invite.button("rsvp.yes")
    assert yes is not None
    driver.press(ana, invite, yes)
    _, first = _event(first_ics)

    reply = driver.command("ULEAD", f"session move contract {SESSION} 2026-03-12 15:00")
    assert "now starts Thu 12 Mar 2026, 15:00 GMT" in reply, reply
    rt.step()

    invites = _invites(driver, ana)
    assert [m.ref for m in invites] == [invite.ref], "the same message, edited in place"
    assert "Thu 12 Mar, 15:00 GMT" in invites[0].text and "Moved to a new time" in invites[0].text
    assert invites[0].button("rsvp.yes") is not None
    cal, moved = _event(driver.calendar_files(ana)[-1])
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(moved["UID"]) == str(first["UID"]) and int(moved["SEQUENCE"]) > int(first["SEQUENCE"])
    assert moved.decoded("DTSTART") == datetime(2026, 3, 12, 15, 0, tzinfo=UTC)
    assert moved["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED", "the RSVP stays"
    if driver.platform == "discord":
        patches = driver.fake.calls_to("PATCH", r"/guilds/\d+/scheduled-events/\d+")  # type: ignore[attr-defined]
        assert patches and patches[-1].json["scheduled_start_time"].startswith("2026-03-12T15:00:00")

    for when in (datetime(2026, 3, 8, 14, 0), datetime(2026, 3, 9, 13, 50), datetime(2026, 3, 9, 15, 31)):
        clock.set(when.replace(tzinfo=UTC))  # the old 1-day reminder, the old check-in, the old end
        rt.step()
    assert _count(driver, ben, "Coming up") == 0 and _count(driver, ben, "Check in") == 0
    clock.set(datetime(2026, 3, 11, 15, 0, tzinfo=UTC))
    rt.step()
    assert _count(driver, ben, "Coming up") == 1
    clock.set(datetime(2026, 3, 12, 14, 50, tzinfo=UTC))
    rt.step()
    assert _count(driver, ben, "Check in") == 1
    checkin = next(m for m in driver.inbox(ben) if m.title.startswith("Check in"))
    button = checkin.button("session.checkin")
    assert button is not None
    driver.press(ben, checkin, button)
    with rt.factory() as session:
        attended = session.scalars(select(LearningEvent).where(LearningEvent.verb == "attended")).all()
    assert len(attended) == 1, "check-in is open at the new time"


@pytest.mark.timeout(600)  # two weeks of a journey, like the blended journey above
def test_cancelling_a_session_drops_it_everywhere(driver: Driver, runtime: tuple[Runtime, VirtualClock]) -> None:
    """``/learn session cancel``: the invite is edited to say so (no RSVP buttons), the .ics is a METHOD:CANCEL
    with STATUS:CANCELLED and a higher SEQUENCE (RFC 5546 §3.2.5), the Discord event is cancelled, no reminder or
    check-in follows, and the program completes without it."""
    rt, clock = runtime
    setup_cohort(driver, rt)
    learners = [Learner(driver, u) for u, _, _ in LEARNERS]
    clock.set(INVITES_OUT)
    rt.step()
    (invite,) = _invites(driver, "UANA")
    (first_ics,) = driver.calendar_files("UANA")
    reply = driver.command("ULEAD", f"session cancel contract {SESSION}")
    assert "is cancelled" in reply, reply
    rt.step()
    (card,) = [m for m in driver.inbox("UANA") if m.ref == invite.ref]
    assert card.title.startswith("Cancelled") and card.button("rsvp.yes") is None
    assert "This session has been cancelled" in card.text
    assert sum(1 for m in driver.inbox("UANA") if "Live workshop" in m.title) == 2, "the card and one notice"
    cal, cancelled = _event(driver.calendar_files("UANA")[-1])
    _, first = _event(first_ics)
    assert str(cal["METHOD"]) == "CANCEL" and str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["UID"]) == str(first["UID"]) and int(cancelled["SEQUENCE"]) > int(first["SEQUENCE"])
    if driver.platform == "discord":
        patches = driver.fake.calls_to("PATCH", r"/guilds/\d+/scheduled-events/\d+")  # type: ignore[attr-defined]
        assert patches and patches[-1].json.get("status") == 4, "Discord's CANCELED"

    end = clock.now() + timedelta(days=14)
    while clock.now() < end:
        rt.step()
        for learner in learners:
            learner.act()
        clock.advance(timedelta(hours=1))
    for user, _, _ in LEARNERS:
        assert _count(driver, user, "Coming up") == 0 and _count(driver, user, "Check in") == 0
    with rt.factory() as session:
        report = build_report(session, rt.engine)
    for row in report.learners:
        assert row.status == "done", row
        assert row.sessions_attended == 0 and row.sessions_missed == 0 and row.sessions_total == 0
