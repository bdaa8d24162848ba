"""End to end on Discord: a cohort of five learners through Feedback Fundamentals over the fake gateway.

The real runtime ticks a virtual clock; the real DiscordAdapter talks to the fake Discord. Learners read their DMs,
press buttons (component interactions), submit the reflection form (a modal), reply in the prompt threads the bot
opened, and take part in the live workshop the Discord way: "Interested" on its Guild Scheduled Event, and time
spent in the session's voice channel. The unified report must then say exactly what happened to each of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.events import PresenceObserved, RsvpChanged
from bot.journeys.library import Library
from bot.journeys.model import QuizStep
from bot.reporting import build_report
from bot.storage.db import transaction
from bot.storage.models import Attendance, Enrollment, LiveSessionRow, Person
from tests.conftest import COHORT_START, CONTENT, make_settings
from tests.contract.discord_driver import DiscordDriver
from tests.contract.drivers import Msg, wait_until

pytestmark = [pytest.mark.discord, pytest.mark.slow, pytest.mark.timeout(300)]

PROGRAM = "feedback-fundamentals"
CLOCK_START = datetime(2026, 2, 27, 12, 0, tzinfo=UTC)  # the Friday before the Monday start
STEP = timedelta(minutes=20)
#: Symbolic learner -> display name. Each maps to a member of the fake guild.
LEARNERS = {"L1": "Ana Silva", "L2": "Ben Osei", "L3": "Chen Wei", "L4": "Dara Byrne", "L5": "Eli Haddad"}
REFLECTION = (
    "In the practice rounds I noticed that I rushed the impact sentence as the giver and got defensive as the "
    "receiver when the feedback was vague. Next time I will write the impact down beforehand and, when I am on "
    "the receiving end, ask for one concrete example before I answer anything at all."
)


class Learner:
    """Reacts to what Discord shows one learner: lesson cards, quizzes, the reflection form, prompt threads.

    RSVPs and attendance are not reactions: the test drives them explicitly (Interested, voice, Check in).
    """

    def __init__(self, driver: DiscordDriver, key: str, answers: dict[int, list[int]]) -> None:
        self.driver = driver
        self.key = key
        self.answers = answers
        self.seen = 0
        self.threads: set[str] = set()

    def act(self) -> None:
        inbox = self.driver.inbox(self.key)
        for index in range(self.seen, len(inbox)):
            self.react(index, self.driver.inbox(self.key)[index])
        self.seen = len(inbox)
        for post in self.driver.channel_messages():
            # Discussion prompts only: the weekly recap also opens a thread, but these learners leave it alone.
            if (
                post.get("thread")
                and post["id"] not in self.threads
                and "Discussion" in str(post.get("embeds"))
            ):
                self.driver.reply_in_thread(self.key, self.driver.message(post), "Asking before advising.")
                self.threads.add(post["id"])

    def react(self, index: int, msg: Msg) -> None:
        if (b := msg.button("lesson.done")) is not None:
            self.driver.press(self.key, msg, b)
        elif msg.button("quiz.answer") is not None or msg.button("quiz.toggle") is not None:
            self.take_quiz(index)
        elif (b := msg.button("reflection.open")) is not None:
            self.driver.press(self.key, msg, b)
            self.driver.submit_modal(self.key, REFLECTION)
        elif (b := msg.button("poll.step")) is not None:  # the end-of-program evaluation
            self.driver.press(self.key, msg, b)

    def take_quiz(self, index: int) -> None:
        """Answer every question correctly, reading the card as it is edited in place after each press."""
        for _ in range(40):
            msg = self.driver.inbox(self.key)[index]
            answers = [b for b in msg.buttons if b.action == "quiz.answer"]
            toggles = [b for b in msg.buttons if b.action == "quiz.toggle"]
            if answers:
                question = int(answers[0].value.split(".")[2])
                right = next(b for b in answers if int(b.value.split(".")[3]) == self.answers[question][0])
                self.driver.press(self.key, msg, right)
            elif toggles:
                question = int(toggles[0].value.split(".")[2])
                for option in self.answers[question]:
                    msg = self.driver.inbox(self.key)[index]
                    toggle = next(
                        b for b in msg.buttons if b.action == "quiz.toggle" and b.value.endswith(f".{option}")
                    )
                    self.driver.press(self.key, msg, toggle)
                msg = self.driver.inbox(self.key)[index]
                submit = msg.button("quiz.submit")
                assert submit is not None
                self.driver.press(self.key, msg, submit)
            else:
                return
        raise AssertionError(f"{self.key} could not finish the quiz")


@pytest.fixture
def world(db_url: str) -> Iterator[tuple[Runtime, VirtualClock, DiscordDriver]]:
    clock = VirtualClock(CLOCK_START)
    driver = DiscordDriver(clock=clock, voice_min_minutes=10)
    # Presence is checked when people leave and when the test asks; the background check (real seconds) would
    # report at whatever virtual minute it happens to land on.
    driver.adapter.presence_interval = 3600
    try:
        voice = str(driver.world.voice_channel_id)
        # The driver builds the adapter by hand, and the voice channel is the Discord adapter's own setting now.
        driver.adapter.voice_channel = voice
        settings = make_settings(
            db_url,
            admins=[f"discord:{driver.uid('UADMIN')}"],
            discord={**driver.settings, "voice_channel": voice},
        )
        rt = build(settings, clock=clock, adapters={"discord": driver.adapter})
        driver.start(rt.dispatcher)
        try:
            yield rt, clock, driver
        finally:
            rt.db.dispose()
    finally:
        driver.stop()


def correct_answers() -> dict[int, list[int]]:
    step = next(s for s in Library.from_dir(CONTENT).program(PROGRAM).steps if isinstance(s, QuizStep))
    return {n: [i for i, o in enumerate(q.options) if o.correct] for n, q in enumerate(step.questions)}


def test_cohort_of_five_on_discord(world: tuple[Runtime, VirtualClock, DiscordDriver]) -> None:
    rt, clock, driver = world
    fake, adapter, w = driver.fake, driver.adapter, driver.world
    assert driver.observer is not None
    observer = driver.observer
    uid = {key: driver.uid(key) for key in LEARNERS}

    with transaction(rt.factory) as session:
        lead = rt.engine.person(session, "discord", driver.workspace, driver.uid("ULEAD"), name="Lena Lead")
        manager = rt.engine.person(
            session,
            "discord",
            driver.workspace,
            driver.uid("UMGR"),
            name="Morgan Manager",
            tz="Europe/London",
        )
        cohort = rt.engine.create_cohort(
            session,
            name="discord-spring",
            program_id=PROGRAM,
            platform="discord",
            workspace=driver.workspace,
            start=COHORT_START,
            channel=driver.channel,
            leads=[lead],
        )
        for key, name in LEARNERS.items():
            driver.add_user(key, name, "Europe/London")
            person = rt.engine.person(
                session, "discord", driver.workspace, uid[key], name=name, tz="Europe/London"
            )
            person.manager_id = manager.id
            rt.engine.enroll(session, cohort, person)
        cohort_id = cohort.id

    answers = correct_answers()
    learners = {key: Learner(driver, key, answers) for key in LEARNERS}

    def run_until(until: datetime) -> None:
        while clock.now() < until:
            rt.step()
            rt.plan_digests()
            for learner in learners.values():
                learner.act()
            clock.advance(min(STEP, until - clock.now()))
        rt.step()
        for learner in learners.values():
            learner.act()

    # Friday: the first tick mirrors the workshop as a VOICE Scheduled Event in the configured voice channel.
    run_until(CLOCK_START + STEP)
    with rt.factory() as session:
        live = session.scalars(select(LiveSessionRow).where(LiveSessionRow.cohort_id == cohort_id)).one()
        event_id, start, end = (
            live.platform_ref,
            live.start_at.replace(tzinfo=UTC),
            live.end_at.replace(tzinfo=UTC),
        )
    assert start == datetime(2026, 3, 9, 14, 0, tzinfo=UTC) and end == start + timedelta(minutes=90)
    created = fake.calls_to("POST", rf"/guilds/{w.guild_id}/scheduled-events")
    assert len(created) == 1
    body = created[0].json
    assert body["entity_type"] == 2  # VOICE
    assert int(body["channel_id"]) == w.voice_channel_id
    assert body["name"] == "Live workshop - feedback in practice"
    assert datetime.fromisoformat(body["scheduled_start_time"]) == start
    assert [str(i) for i in fake.scheduled_events] == [event_id]

    # Three learners mark the event "Interested": GUILD_SCHEDULED_EVENT_USER_ADD becomes an RSVP yes.
    interested = ["L1", "L2", "L4"]
    for key in interested:
        fake.event_interest(int(event_id), int(uid[key]))
        observer.wait_for(
            lambda e, u=uid[key]: isinstance(e, RsvpChanged) and e.actor.user_id == u,
            what=f"{key}'s Interested",
        )
    with rt.factory() as session:
        rsvps = {
            p.user_id: a.rsvp
            for a, p in session.execute(
                select(Attendance, Person)
                .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
                .join(Person, Person.id == Enrollment.person_id)
            )
        }
    assert {u: r for u, r in rsvps.items() if r is not None} == {uid[k]: "yes" for k in interested}

    # Pre-work week, up to the start of the workshop.
    run_until(start)

    def voice(key: str, channel: int | None) -> None:
        fake.voice_state(int(uid[key]), channel)
        wait_until(
            lambda: adapter.presence.is_in(driver.workspace, uid[key]) == (channel is not None),
            what=f"{key}'s voice state {channel}",
        )

    def attended(key: str) -> None:
        observer.wait_for(
            lambda e: isinstance(e, PresenceObserved) and e.actor.user_id == uid[key],
            what=f"{key}'s voice attendance",
        )

    vc = w.voice_channel_id
    for key in ("L1", "L2", "L4"):
        voice(key, vc)
    # L3 uses the Check in button of the check-in DM instead.
    checkin = next(m for m in driver.inbox("L3") if "Check in" in m.title and m.button("session.checkin"))
    driver.press("L3", checkin, checkin.button("session.checkin"))  # type: ignore[arg-type]

    run_until(start + timedelta(minutes=3))
    voice("L4", None)  # 3 minutes: not enough
    run_until(start + timedelta(minutes=5))
    voice("L2", None)  # 5 minutes so far
    run_until(start + timedelta(minutes=20))
    voice("L2", vc)
    voice("L1", None)  # 20 minutes
    attended("L1")
    run_until(start + timedelta(minutes=26))
    voice("L2", None)  # 5 + 6 = 11 minutes, reported when the second stint closes
    attended("L2")
    run_until(start + timedelta(minutes=30))
    voice("L5", vc)  # joins late
    run_until(start + timedelta(minutes=45))
    reported = adapter.check_presence()  # the periodic check: L5 is still in the channel, for 15 minutes now
    assert [(e.actor.user_id, e.minutes) for e in reported] == [(uid["L5"], 15.0)]
    run_until(start + timedelta(minutes=60))
    voice("L5", None)

    # The rest of the program: reflection, the second prompt, and the end of week two.
    run_until(datetime(2026, 3, 17, 12, 0, tzinfo=UTC))

    with rt.factory() as session:
        report = build_report(session, rt.engine)
        rows_att = {
            p.user_id: (a.rsvp, a.source, a.minutes, a.attended_at is not None)
            for a, p in session.execute(
                select(Attendance, Person)
                .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
                .join(Person, Person.id == Enrollment.person_id)
            )
        }
    assert rows_att == {
        uid["L1"]: ("yes", "voice", 20.0, True),
        uid["L2"]: ("yes", "voice", 11.0, True),
        uid["L3"]: (None, "checkin", None, True),
        uid["L4"]: ("yes", None, None, False),
        uid["L5"]: (None, "voice", 15.0, True),
    }
    rows = {r.user_id: r for r in report.learners}
    expected = {
        # 8 authored steps and the 3 polls of the end-of-program evaluation.
        "L1": ("done", 11, 1, 0),
        "L2": ("done", 11, 1, 0),
        "L3": ("done", 11, 1, 0),
        "L4": ("behind", 10, 0, 1),
        "L5": ("done", 11, 1, 0),
    }
    for key, (status, steps, attended_n, missed) in expected.items():
        row = rows[uid[key]]
        got = (row.status, row.steps_completed, row.sessions_attended, row.sessions_missed)
        assert got == (status, steps, attended_n, missed), (key, row)
        assert row.steps_total == 11 and row.quiz_average == 100.0 and row.replies == 2, (key, row)
    assert report.cohorts[0].completion_rate == 80.0

    # The manager gets the weekly digest by DM, on Monday at 9:00 in the manager's zone: the current week's on the
    # first Friday (a digest missed earlier in its week catches up), then on each of the three Mondays.
    digests = [m for m in driver.inbox("UMGR") if m.title == "Your team's learning this week"]
    assert len(digests) == 4
    assert all(name in digests[-1].text for name in LEARNERS.values())
    # Each digest's team-progress chart is drawn only because Discord uploads it: a real PNG, once per digest.
    charts = [f for c in fake.calls for f in c.files if f.filename == "team-progress.png"]
    assert len(charts) == 4 and all(f.content.startswith(b"\x89PNG\r\n\x1a\n") for f in charts)
