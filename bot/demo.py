"""``blendwise demo``: a whole cohort through a shipped program, on the real engine, in seconds.

Nothing here is a shortcut: the demo builds the real runtime (SQLite, tick, outbox, sender, dispatcher) with the
console adapter and a :class:`~bot.clock.VirtualClock`. Simulated learners read what the console adapter delivers
and act through the dispatcher exactly as a person pressing buttons in Slack would. The clock jumps from one due
moment to the next (agenda, outbox, a learner's next action), so weeks pass in a few seconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from bot.adapters.console import ConsoleAdapter, Sent
from bot.app import Runtime, build
from bot.clock import VirtualClock
from bot.config import Settings
from bot.errors import BlendwiseError
from bot.journeys.compose import Composer
from bot.journeys.render import SAMPLE_LEARNERS, SAMPLE_START
from bot.messages import Button, Message
from bot.nudges.digests import next_weekly_moment
from bot.states import DeliveryState
from bot.storage.db import transaction
from bot.storage.models import AgendaItem, Delivery, StepProgress

WORKSPACE = "console"
CHANNEL = "cohort-demo"

NAMES = [
    ("Amara Okafor", "Europe/London"),
    ("Ben Carter", "America/New_York"),
    ("Chen Wei", "Asia/Singapore"),
    ("Dana Levi", "Europe/Berlin"),
    ("Elif Demir", "Europe/Istanbul"),
    ("Felipe Rocha", "America/Sao_Paulo"),
    ("Grace Kim", "America/Los_Angeles"),
    ("Hiro Tanaka", "Asia/Tokyo"),
    ("Isla Murphy", "Europe/Dublin"),
    ("Jonas Berg", "Europe/Stockholm"),
    ("Kavya Nair", "Asia/Kolkata"),
    ("Liam Walsh", "Europe/London"),
    ("Maya Cohen", "America/Chicago"),
    ("Noah Schmidt", "Europe/Berlin"),
    ("Olivia Brown", "Australia/Sydney"),
    ("Priya Shah", "Europe/London"),
    ("Quinn Taylor", "America/Denver"),
    ("Rosa Martinez", "Europe/Madrid"),
    ("Sam Lee", "America/Toronto"),
    ("Tara Singh", "Asia/Dubai"),
]


REFLECTIONS = [
    "I tried the structure from this week in a one-to-one on Tuesday and the conversation stayed on facts rather "
    "than feelings about facts. It still felt awkward to start, so next time I will write the first sentence down "
    "beforehand. The hard part for me remains following up a week later; a recurring reminder in my calendar should "
    "help, and I would like to hear how others in the cohort keep that habit going.",
    "Asking one more question before offering advice changed the whole conversation with a colleague who was stuck. "
    "She found her own answer and owned it. What I still find hard is staying quiet when I think I know the answer "
    "already. Support that would help: a peer who notices when I jump in too quickly and tells me afterwards, kindly "
    "but honestly, so I can adjust before it becomes my default style again.",
    "I noticed that I rush to fix things for my team because it feels faster in the moment. This week I paused, asked "
    "what they had tried and agreed a check-in time instead. It took longer on the day but saved me two follow-up "
    "meetings. The habit I still struggle with is protecting time for one-to-ones when deadlines bunch up; I will "
    "block them first and move other work around them instead of the other way round.",
]


@dataclass(frozen=True)
class Persona:
    name: str
    act: float  # chance of acting on a step card or reminder
    delay_hours: tuple[float, float]
    correct: float  # chance of a right answer
    rsvp_yes: float
    attend: float  # chance of attending after saying yes/maybe
    reply: float  # chance of replying in a cohort thread


PERSONAS = [
    Persona("keen", 0.97, (0.2, 5), 0.88, 0.92, 0.95, 0.85),
    Persona("steady", 0.9, (1, 20), 0.78, 0.8, 0.88, 0.6),
    Persona("busy", 0.72, (4, 40), 0.72, 0.6, 0.7, 0.35),
    Persona("drifting", 0.4, (10, 70), 0.6, 0.45, 0.5, 0.15),
]


@dataclass(order=True)
class Action:
    at: datetime
    seq: int
    run: Callable[[], None] = field(compare=False)


#: How often the demo runs the feature planners (reinforcement micro-quizzes, late joiners) when nothing in the
#: agenda or the outbox is due. A deployment runs them on every tick; their work is due in days and is delivered in
#: the learner's working window, so in virtual time an hour apart plans the same things.
PLANNER_CADENCE = timedelta(hours=1)


class Simulation:
    def __init__(self, rt: Runtime, console: ConsoleAdapter, clock: VirtualClock, rng: random.Random) -> None:
        self.rt = rt
        self.console = console
        self.clock = clock
        self.rng = rng
        self.queue: list[Action] = []
        self.seq = itertools.count()
        self.personas: dict[str, Persona] = {}
        self.attending: dict[tuple[str, str], bool] = {}
        self.last_tick = clock.now()
        self.work_due = clock.now()
        console.listeners.append(self.on_message)

    def later(self, hours: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.queue, Action(self.clock.now() + timedelta(hours=hours), next(self.seq), run))

    def delay(self, persona: Persona) -> float:
        low, high = persona.delay_hours
        return low + (high - low) * self.rng.random() ** 2

    # ------------------------------------------------------------------ learners reacting to messages
    def on_message(self, sent: Sent) -> None:
        user = sent.user_id
        if user is None or user not in self.personas:
            return
        persona = self.personas[user]
        actions = {b.action for b in sent.message.buttons}
        kind = sent.message.kind
        if "session.checkin" in actions and sent.message.title.startswith("Check in"):
            if self.attending.get((user, sent.message.title.removeprefix("Check in: ")), False):
                self.later(self.rng.uniform(0.05, 0.3), lambda: self.press(user, sent, "session.checkin"))
            return
        if self.rng.random() > persona.act:
            return
        wait = self.delay(persona)
        if "lesson.done" in actions:
            self.later(wait, lambda: self.press(user, sent, "lesson.done"))
        elif "quiz.answer" in actions or "quiz.toggle" in actions:
            self.later(wait, lambda: self.take_quiz(user, sent, persona))
        elif "rsvp.yes" in actions:
            self.later(wait, lambda: self.rsvp(user, sent, persona))
        elif "reflection.open" in actions:
            self.later(wait, lambda: self.reflect(user, sent))
        elif "poll.step" in actions:
            self.later(wait, lambda: self.vote(user, sent))
        elif "reinforce.answer" in actions:
            self.later(wait, lambda: self.reinforce(user, sent, persona))
        elif "enrollment.resume" in actions and self.rng.random() < 0.5:
            self.later(wait, lambda: self.press(user, sent, "enrollment.resume"))
        elif kind == "prompt" and self.rng.random() < persona.reply:
            self.later(wait, lambda: self.reply(user, sent))

    def press(self, user: str, sent: Sent, action: str) -> None:
        for button in sent.message.buttons:
            if button.action == action:
                self.console.press(user, sent, button)
                return

    def take_quiz(self, user: str, sent: Sent, persona: Persona) -> None:
        for _ in range(60):
            buttons = sent.message.buttons
            answers = [b for b in buttons if b.action == "quiz.answer"]
            toggles = [b for b in buttons if b.action == "quiz.toggle"]
            retry = [b for b in buttons if b.action == "quiz.retry"]
            if answers:
                pick = self._pick(answers, sent, persona)
                self.console.press(user, sent, pick)
            elif toggles:
                submit = next(b for b in buttons if b.action == "quiz.submit")
                # Choose-all-that-apply: exactly the right options with the persona's probability, like a single
                # choice; otherwise a guess. (Always guessing failed keen learners' quizzes at random.)
                right = set(self._correct(toggles)) if self.rng.random() < persona.correct else None
                for i, b in enumerate(toggles):
                    if (i in right) if right is not None else (self.rng.random() < 0.5 or i == 0):
                        self.console.press(user, sent, b)
                self.console.press(user, sent, submit)
            elif retry and self.rng.random() < persona.act:
                self.console.press(user, sent, retry[0])
            else:
                return

    def _correct(self, answers: list[Button]) -> list[int]:
        """The right options of the question these buttons answer (the demo peeks at the program to know it)."""
        pid, _attempt, qi, _ = (int(x) for x in answers[0].value.split("."))
        with self.rt.factory() as session:
            from bot.storage.models import Enrollment, StepProgress

            sp = session.get(StepProgress, pid)
            assert sp is not None
            enrollment = session.get(Enrollment, sp.enrollment_id)
            assert enrollment is not None
            step = self.rt.library.step(enrollment.program_id, sp.step_id)
        return [i for i, o in enumerate(step.questions[qi].options) if o.correct]  # type: ignore[union-attr]

    def _pick(self, answers: list[Button], sent: Sent, persona: Persona) -> Button:
        """Pick the right answer with the persona's probability."""
        correct = self._correct(answers)
        if self.rng.random() < persona.correct:
            return answers[correct[0]]
        wrong = [b for i, b in enumerate(answers) if i not in correct]
        return self.rng.choice(wrong or answers)

    def reinforce(self, user: str, sent: Sent, persona: Persona) -> None:
        """A spaced-repetition micro-quiz: right with the persona's probability, a little better than first time."""
        from bot.reinforcement.models import ReinforcementCard

        options = [b for b in sent.message.buttons if b.action == "reinforce.answer"]
        if not options:
            return
        card_id = int(options[0].value.split(".")[0])
        with self.rt.factory() as session:
            card = session.get(ReinforcementCard, card_id)
            if card is None:
                return
            step = self.rt.library.step(card.program_id, card.step_id)
        question = next(q for q in step.questions if q.id == card.question_id)  # type: ignore[union-attr]
        right = [i for i, o in enumerate(question.options) if o.correct]
        if self.rng.random() < min(persona.correct + 0.1, 0.98):
            pick = options[right[0]]
        else:
            pick = self.rng.choice([b for i, b in enumerate(options) if i not in right] or options)
        self.console.press(user, sent, pick)

    def rsvp(self, user: str, sent: Sent, persona: Persona) -> None:
        roll = self.rng.random()
        answer = "rsvp.yes" if roll < persona.rsvp_yes else ("rsvp.maybe" if roll < persona.rsvp_yes + 0.08 else "rsvp.no")
        title = sent.message.title.removeprefix("Live session: ")
        self.attending[(user, title)] = answer != "rsvp.no" and self.rng.random() < persona.attend
        self.press(user, sent, answer)

    def reflect(self, user: str, sent: Sent) -> None:
        self.press(user, sent, "reflection.open")
        if user in self.console.modals:
            self.console.submit_modal(
                user,
                self.rng.choice(REFLECTIONS),
            )

    def vote(self, user: str, sent: Sent) -> None:
        options = [b for b in sent.message.buttons if b.action == "poll.step"]
        self.console.press(user, sent, self.rng.choice(options))

    def reply(self, user: str, sent: Sent) -> None:
        title = sent.message.title.removeprefix("Reminder: ")
        posts = [p for p in self.console.channel_posts(CHANNEL) if p.thread is None and title in p.message.title]
        if posts:
            self.console.reply_in_thread(
                user,
                posts[-1],
                self.rng.choice(
                    [
                        "For me the hardest part is the first sentence. Having a structure helps.",
                        "We tried this in our stand-up: shorter, more specific, and nobody got defensive.",
                        "Honest answer: I avoid it when I'm tired. Planning it in the calendar helps.",
                        "I liked the point about asking before telling. Going to try it this week.",
                    ]
                ),
            )

    # ------------------------------------------------------------------ the clock
    def next_moment(self, until: datetime) -> datetime:
        now = self.clock.now()
        candidates = [until]
        if self.next_digest is not None:
            candidates.append(self.next_digest)
        pending = select(func.min(Delivery.due_at)).where(Delivery.state == DeliveryState.PENDING)
        with self.rt.factory() as session:  # one round trip: this runs at every stop
            agenda, outbox = session.execute(
                select(select(func.min(AgendaItem.fire_at)).scalar_subquery(), pending.scalar_subquery())
            ).one()
        due = [t for t in (agenda, outbox) if t is not None]
        candidates.extend(due)
        if self.queue:
            candidates.append(self.queue[0].at)
        moment = max(min(candidates), now + timedelta(minutes=1))
        # The tick and the drain are due at that moment if the agenda or the outbox has something due by then, or
        # the feature planners' cadence has come round; otherwise the stop is only a learner's action.
        self.work_due = min([*due, self.last_tick + PLANNER_CADENCE])
        return moment

    def run_until(self, until: datetime, progress: Callable[[float], None] | None = None) -> None:
        begin = self.clock.now()
        self.next_digest: datetime | None = begin
        self.work_due = begin
        span = max((until - begin).total_seconds(), 1)
        while self.clock.now() < until:
            if progress is not None:
                progress(min((self.clock.now() - begin).total_seconds() / span, 1.0))
            if self.clock.now() >= self.work_due:
                # About half the stops are a learner's action and nothing else: a tick and a drain there would find
                # nothing due (the action's consequences are due a minute later, at the next stop).
                self.last_tick = self.clock.now()
                self.rt.tick()
                self.rt.drain()
            if self.next_digest is not None and self.clock.now() >= self.next_digest:
                # What the hourly cron does, at the moments it has something to plan (each manager's and cohort's
                # local digest time); the clock stops there rather than at every hour around Monday.
                self.rt.plan_digests()
                self.rt.drain()
                with self.rt.factory() as session:
                    self.next_digest = next_weekly_moment(session, self.rt.engine, self.clock.now())
            while self.queue and self.queue[0].at <= self.clock.now():
                heapq.heappop(self.queue).run()
            self.clock.set(self.next_moment(until))


def _refuse_real_data(path: Path) -> None:
    """The demo recreates its database file; never let that be a file holding real learners."""
    if not path.exists():
        return
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "people" not in tables:
                return
            real = conn.execute("SELECT count(*) FROM people WHERE platform != 'console'").fetchone()[0]
            cohorts = conn.execute("SELECT count(*) FROM cohorts WHERE name NOT LIKE '%-demo'").fetchone()[0]
    except sqlite3.DatabaseError:
        raise BlendwiseError(f"{path} is not a Blendwise demo database; pass --database-url sqlite:///demo.db") from None
    if real or cohorts:
        raise BlendwiseError(
            f"{path} holds real cohorts or people, and the demo would replace it; "
            "run the demo elsewhere with --database-url sqlite:///demo.db"
        )


@dataclass
class DemoResult:
    runtime: Runtime
    console: ConsoleAdapter
    cohort_name: str
    learners: list[str]
    manager_ids: list[str]
    days: int


def run_demo(
    *,
    program_id: str,
    learners: int,
    seed: int,
    database_url: str,
    content_dir: Path,
    start: date = date(2026, 3, 2),
    out: TextIO | None = None,
    progress: Callable[[float], None] | None = None,
    days: int | None = None,
) -> DemoResult:
    """Run the simulated cohort; ``days`` cuts the run short (a quick smoke run), else the program's length."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////:memory"):
        path = Path(database_url.removeprefix("sqlite:///"))
        _refuse_real_data(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    elif not database_url.startswith("sqlite"):
        raise BlendwiseError("the demo runs on SQLite only; pass --database-url sqlite:///demo.db")
    rng = random.Random(seed)
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "content_dir": content_dir,
            "admins": ["console:admin"],
            "timezone": "Europe/London",
        }
    )
    clock = VirtualClock(datetime.combine(start - timedelta(days=3), datetime.min.time(), tzinfo=UTC))
    console = ConsoleAdapter(out=None)
    rt = build(settings, clock=clock, adapters={"console": console})
    console.start(rt.dispatcher)
    sim = Simulation(rt, console, clock, rng)
    program = rt.library.program(program_id)
    cohort_name = f"{program_id}-demo"
    learner_ids: list[str] = []
    with transaction(rt.factory) as session:
        managers = [
            rt.engine.person(session, "console", WORKSPACE, "mgr-nadia", name="Nadia Haddad", tz="Europe/London"),
            rt.engine.person(session, "console", WORKSPACE, "mgr-oscar", name="Oscar Lindqvist", tz="America/New_York"),
        ]
        lead = rt.engine.person(session, "console", WORKSPACE, "lead-rui", name="Rui Costa", tz="Europe/Lisbon")
        cohort = rt.engine.create_cohort(
            session,
            name=cohort_name,
            program_id=program_id,
            platform="console",
            workspace=WORKSPACE,
            start=start,
            channel=CHANNEL,
            leads=[lead],
        )
        for i in range(learners):
            name, tz = NAMES[i % len(NAMES)]
            if i >= len(NAMES):
                name = f"{name} {i // len(NAMES) + 1}"
            user_id = "u-" + name.lower().replace(" ", "-")
            person = rt.engine.person(session, "console", WORKSPACE, user_id, name=name, tz=tz)
            person.manager_id = managers[i % 2].id
            rt.engine.enroll(session, cohort, person)
            learner_ids.append(user_id)
            sim.personas[user_id] = PERSONAS[min(int(rng.random() * 4.2), 3) if i else 0]
    # Features add their scenario steps (the live feature: a missed first session becomes a catch-up lesson).
    for _owner, hook in rt.registry.demo_hooks if rt.registry is not None else ():
        hook(sim, cohort_name, lead.user_id)
    length = program.length_days or max(
        (s.unlock.day for s in program.steps), default=14
    ) + 7
    if days is not None:
        length = max(days - 4, 0)
    sim.run_until(datetime.combine(start + timedelta(days=length + 4), datetime.min.time(), tzinfo=UTC), progress)
    return DemoResult(rt, console, cohort_name, learner_ids, [m.user_id for m in managers], length + 4)


# ------------------------------------------------------------------------------------------------------------
# ``blendwise content preview``: a step as a learner will receive it, before any cohort exists. Nothing is
# imitated: a throw-away runtime (temporary SQLite, the console adapter, a virtual clock) enrols one sample learner
# in a cohort starting on a Monday, and the real Composer builds the step's messages, the call the outbox makes at
# delivery. A chat platform's payload is then the platform's own renderer's, reached through the platform registry.

PREVIEW_WORKSPACE = "preview"


@dataclass(frozen=True)
class StepPreview:
    """The messages one step becomes, in delivery order."""

    step_id: str
    kind: str
    messages: list[Message]


def preview_steps(content_dir: Path, program_id: str, step_id: str | None = None) -> list[StepPreview]:
    """Compose every step of ``program_id`` (or only ``step_id``) for the first sample learner.

    Raises:
        ContentError: the content does not pass the check.
        BlendwiseError: no such program or step.
    """
    with tempfile.TemporaryDirectory(prefix="blendwise-preview-") as scratch:
        settings = Settings.model_validate(
            {
                "database_url": f"sqlite:///{Path(scratch) / 'preview.db'}",
                "content_dir": content_dir,
                "timezone": "Europe/London",
            }
        )
        clock = VirtualClock(datetime.combine(SAMPLE_START - timedelta(days=1), datetime.min.time(), tzinfo=UTC))
        rt = build(settings, clock=clock, adapters={"console": ConsoleAdapter(out=None)})
        if program_id not in rt.library:
            raise BlendwiseError(f"no program '{program_id}' in {content_dir} (programs: {', '.join(rt.library.ids())})")
        program = rt.library.program(program_id)
        steps = [s for s in program.steps if step_id in (None, s.id)]
        if not steps:
            known = ", ".join(s.id for s in program.steps)
            raise BlendwiseError(f"--step: program '{program_id}' has no step '{step_id}' (steps: {known})")
        _label, name, _first, tz = SAMPLE_LEARNERS[0]
        composer = Composer(rt.engine)
        with transaction(rt.factory) as session:
            person = rt.engine.person(session, "console", PREVIEW_WORKSPACE, "u-sample", name=name, tz=tz)
            cohort = rt.engine.create_cohort(
                session, name="preview", program_id=program_id, platform="console", workspace=PREVIEW_WORKSPACE,
                start=SAMPLE_START, channel="cohort-preview",
            )  # fmt: skip
            enrollment = rt.engine.enroll(session, cohort, person)
            rows = {
                sp.step_id: sp
                for sp in session.scalars(select(StepProgress).where(StepProgress.enrollment_id == enrollment.id))
            }
            return [StepPreview(s.id, s.kind, composer.step_card(session, rows[s.id])) for s in steps if s.id in rows]
