"""Live polls in the cohort channel, and the results view shared with program ``poll`` steps.

A poll is one channel message with a button per option. A vote goes through :func:`cast_vote` (one vote per
person, changeable; several with ``multi``) and the voter's button press replaces the channel message with the new
counts, so everyone sees the results move in place. ``hide_results`` shows only how many people voted until the
lead closes the poll; closing edits the message once more through the adapter to reveal the counts.

Program ``poll`` steps use the same tables and the same :func:`cast_vote` through :func:`step_vote`; all poll
logic lives in this module.

Anonymous polls: :func:`voter_key` stores a salted hash instead of a person id, so a vote row names nobody, and the
``voted`` learning event records that someone took part, never what they chose. Nothing here logs a vote or lists
voters, for any poll: the only read path is :func:`counts`, which aggregates.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from bot import replies
from bot.errors import InvalidInput, NotFound, PermissionDenied
from bot.journeys import progress
from bot.journeys.context import Context, hold, lock, step_context
from bot.journeys.model import PollStep
from bot.live.purposes import LIVE_POLL
from bot.markup import inert_line
from bot.messages import Button, Message, MessageRef
from bot.nudges.purposes import DueRow
from bot.states import DeliveryState, Verb
from bot.storage.events import object_id, record, record_for
from bot.storage.models import Cohort, Delivery, Enrollment, Person, Poll, PollVote, StepProgress

if TYPE_CHECKING:
    from bot.live.service import Live

log = logging.getLogger(__name__)

BAR_WIDTH = 10
MAX_OPTIONS = 10


def bar(count: int, total: int, width: int = BAR_WIDTH) -> str:
    """``████░░░░░░ 4 (40%)``: the share of ``total``, drawn in text so every platform shows it."""
    share = count / total if total else 0.0
    filled = round(share * width)
    return f"{'█' * filled}{'░' * (width - filled)} {count} ({round(share * 100)}%)"


# Built once: every vote runs them (a press on a step poll runs all four).
_PER_OPTION = (
    select(PollVote.option, func.count()).where(PollVote.poll_id == bindparam("poll_id")).group_by(PollVote.option)
)
_VOTERS = select(func.count(func.distinct(PollVote.voter))).where(PollVote.poll_id == bindparam("poll_id"))
_STEP_POLL = select(Poll).where(Poll.cohort_id == bindparam("cohort_id"), Poll.step_id == bindparam("step_id"))
_MY_VOTES = select(PollVote).where(PollVote.poll_id == bindparam("poll_id"), PollVote.voter == bindparam("voter"))


def counts(session: Session, poll: Poll) -> tuple[list[int], int]:
    """Votes per option and the number of distinct voters: aggregates only, never who chose what."""
    per_option = [0] * len(poll.options["labels"])
    for option, n in session.execute(_PER_OPTION, {"poll_id": poll.id}):
        if 0 <= option < len(per_option):
            per_option[option] = n
    voters = session.scalar(_VOTERS, {"poll_id": poll.id})
    return per_option, int(voters or 0)


def poll_for_step(session: Session, cohort_id: int, step: PollStep, now: datetime) -> Poll:
    """The cohort's one poll row for a program poll step, created on the first vote."""
    poll = session.scalar(_STEP_POLL, {"cohort_id": cohort_id, "step_id": step.id})
    if poll is None:
        poll = Poll(
            cohort_id=cohort_id,
            step_id=step.id,
            question=step.question,
            options={"labels": list(step.options)},
            anonymous=step.anonymous,
            multi=step.multi,
            hide_results=False,
            salt=secrets.token_hex(16),
            created_at=now,
        )
        session.add(poll)
        session.flush()
    return poll


def voter_key(poll: Poll, person: Person) -> str:
    """Who voted, as stored: a salted hash for an anonymous poll, so a vote row names nobody."""
    if poll.anonymous:
        return hashlib.sha256(f"{poll.salt}:{person.id}".encode()).hexdigest()
    return str(person.id)


def cast_vote(session: Session, poll: Poll, person: Person, option: int) -> list[int]:
    """Cast or change a vote; returns the person's options after the change. One vote per person unless multi."""
    labels = poll.options["labels"]
    if not 0 <= option < len(labels):
        raise InvalidInput("That option is not part of the poll.")
    if poll.closed_at is not None:
        raise InvalidInput("This poll is closed.")
    # Two presses by one voter at once must not both see "no vote yet" and leave two votes behind.
    lock(session, Poll, poll.id)
    key = voter_key(poll, person)
    mine = session.scalars(_MY_VOTES, {"poll_id": poll.id, "voter": key}).all()
    chosen = {v.option for v in mine}
    if poll.multi:
        if option in chosen:
            for v in mine:
                if v.option == option:
                    session.delete(v)
            chosen.discard(option)
        else:
            session.add(PollVote(poll_id=poll.id, voter=key, option=option))
            chosen.add(option)
    elif chosen != {option}:
        for v in mine:
            session.delete(v)
        session.add(PollVote(poll_id=poll.id, voter=key, option=option))
        chosen = {option}
    session.flush()
    return sorted(chosen)


def step_vote(ctx: Context, session: Session, sp: StepProgress, option: int, person: Person) -> Poll:
    """A vote on a program poll step: the vote, its ``voted`` fact, and completion of the step."""
    hold(session, sp)
    enrollment, program, step = step_context(ctx, session, sp)
    if not isinstance(step, PollStep):
        raise InvalidInput(replies.NOT_A_POLL)
    now = ctx.clock.now()
    poll = poll_for_step(session, enrollment.cohort_id, step, now)
    cast_vote(session, poll, person, option)
    record_for(
        session,
        enrollment,
        ts=now,
        verb="voted",
        object_type="step",
        object_id=object_id(program.id, step.id),
        # An anonymous poll's record says that someone voted, never what.
        result=None if poll.anonymous else {"response": str(option)},
        # An evaluation question carries its Kirkpatrick level, so reports can group reaction and intent.
        context={"extensions": {"kirkpatrick-level": step.level}} if step.level else None,
    )
    progress.complete(ctx, session, sp, source="poll")
    return poll


def results_visible(poll: Poll) -> bool:
    return not poll.hide_results or poll.closed_at is not None


def body(session: Session, poll: Poll) -> str:
    labels: list[str] = poll.options["labels"]
    per_option, voters = counts(session, poll)
    total = sum(per_option)
    lines: list[str] = []
    if results_visible(poll):
        for label, n in zip(labels, per_option, strict=True):
            lines.append(f"**{inert_line(label)}**\n{bar(n, total)}")
    else:
        lines += [f"- {inert_line(label)}" for label in labels]
        lines.append("_Results are hidden until the lead closes the poll._")
    lines.append(
        f"{voters} {'person' if voters == 1 else 'people'} voted" + (" · closed" if poll.closed_at else "")
    )
    return "\n".join(lines)


def context(poll: Poll) -> str:
    parts = []
    if poll.anonymous:
        parts.append("Anonymous: nobody, not even the lead, can see who voted what")
    parts.append(
        "Choose all that apply; tap again to remove"
        if poll.multi
        else "One vote each; tap another option to change it"
    )
    if poll.closed_at is not None:
        parts = ["Poll closed" + (" · anonymous" if poll.anonymous else "")]
    return " · ".join(parts)


def message(
    session: Session, poll: Poll, *, value_prefix: str | None = None, action: str = "poll.vote"
) -> Message:
    """The poll card. Channel polls use ``poll.vote`` with ``<poll id>.<option>``; step polls use
    ``poll.step`` buttons with ``<progress id>.<option>`` (``value_prefix``)."""
    labels: list[str] = poll.options["labels"]
    prefix = value_prefix if value_prefix is not None else str(poll.id)
    buttons = (
        [Button(label[:75], action, f"{prefix}.{i}") for i, label in enumerate(labels)]
        if poll.closed_at is None
        else []
    )
    title = f"📊 {poll.question}"
    return Message(
        text=f"Poll: {inert_line(poll.question)}",
        title=title[:150],
        body=body(session, poll),
        buttons=buttons,
        context=context(poll) + f" · poll {poll.id}",
        kind="poll",
    )


def parse_flags(args: list[str]) -> tuple[list[str], dict[str, bool]]:
    flags = {"anonymous": False, "hide": False, "multi": False}
    names = {
        "--anonymous": "anonymous",
        "--anon": "anonymous",
        "--hide-results-until-close": "hide",
        "--hide-results": "hide",
        "--multi": "multi",
    }
    rest = []
    for arg in args:
        if arg.startswith("--"):
            if arg not in names:
                raise InvalidInput(
                    f"Unknown option '{arg}'. Use --anonymous, --hide-results-until-close or --multi."
                )
            flags[names[arg]] = True
        else:
            rest.append(arg)
    return rest, flags


class Polls:
    def __init__(self, live: Live) -> None:
        self.live = live
        self.engine = live.engine

    def create(
        self,
        session: Session,
        cohort: Cohort,
        author: Person,
        question: str,
        labels: list[str],
        *,
        anonymous: bool = False,
        multi: bool = False,
        hide_results: bool = False,
    ) -> Poll:
        question = question.strip()
        labels = [label.strip() for label in labels if label.strip()]
        if not question:
            raise InvalidInput(
                'A poll needs a question: /learn poll <cohort> "Question?" "Option A" "Option B"'
            )
        if len(labels) < 2 or len(labels) > MAX_OPTIONS:
            raise InvalidInput(f"A poll needs between 2 and {MAX_OPTIONS} options; put each one in quotes.")
        if len({label.lower() for label in labels}) != len(labels):
            raise InvalidInput("Two options are the same; make each option different.")
        if len(question) > 300 or any(len(label) > 75 for label in labels):
            raise InvalidInput("Keep the question under 300 characters and each option under 75.")
        if not cohort.channel:
            raise InvalidInput(f"Cohort '{cohort.name}' has no channel yet; an admin can set one.")
        poll = Poll(
            cohort_id=cohort.id,
            question=question,
            options={"labels": labels},
            anonymous=anonymous,
            multi=multi,
            hide_results=hide_results,
            salt=secrets.token_hex(16),
            created_by=author.id,
            created_at=self.live.clock.now(),
        )
        session.add(poll)
        session.flush()
        self.engine.queue_channel_post(session, cohort, LIVE_POLL, {"poll_id": poll.id, "kind": "poll"}, key=(poll.id,))
        return poll

    def get(self, session: Session, poll_id: str | int) -> Poll:
        try:
            pid = int(str(poll_id).lstrip("#"))
        except ValueError:
            raise InvalidInput(
                f"'{poll_id}' is not a poll id; `/learn poll list <cohort>` shows them."
            ) from None
        poll = session.get(Poll, pid)
        if poll is None:
            raise NotFound("poll", pid)
        return poll

    def message_ref(self, session: Session, poll: Poll) -> MessageRef | None:
        """Where the poll's channel message lives. The sender records it on the delivery row; it is copied onto
        the poll the first time it is needed (a vote or the close)."""
        if poll.message_ref is None:
            ref = session.scalar(
                select(Delivery.message_ref).where(
                    Delivery.key == LIVE_POLL.key(poll.id), Delivery.state == DeliveryState.SENT
                )
            )
            if ref:
                poll.message_ref = ref
        return MessageRef.decode(poll.message_ref) if poll.message_ref else None

    def may_vote(
        self, session: Session, poll: Poll, person: Person, roles: tuple[str, ...] = ()
    ) -> Enrollment | None:
        cohort = session.get(Cohort, poll.cohort_id)
        assert cohort is not None
        if person.workspace != cohort.workspace:
            raise PermissionDenied("That poll belongs to another workspace.")
        enrollment = session.scalar(
            select(Enrollment).where(Enrollment.cohort_id == cohort.id, Enrollment.person_id == person.id)
        )
        if enrollment is None and not self.engine.is_lead(session, person, cohort, roles):
            raise PermissionDenied(f"This poll is for the members of cohort '{cohort.name}'.")
        return enrollment

    def vote(
        self, session: Session, poll: Poll, person: Person, option: int, roles: tuple[str, ...] = ()
    ) -> list[int]:
        enrollment = self.may_vote(session, poll, person, roles)
        chosen = cast_vote(session, poll, person, option)
        program_id = enrollment.program_id if enrollment else None
        record(
            session,
            ts=self.live.clock.now(),
            person_id=person.id,
            verb=Verb.VOTED,
            object_type="step" if poll.step_id else "poll",
            object_id=object_id(program_id, poll.step_id)
            if poll.step_id and program_id
            else f"cohort/{poll.cohort_id}/poll/{poll.id}",
            enrollment_id=enrollment.id if enrollment else None,
            cohort_id=poll.cohort_id,
            # An anonymous poll's record says that someone voted, never what.
            result=None if poll.anonymous else {"response": "[,]".join(str(c) for c in chosen)},
        )
        if enrollment is not None:
            enrollment.last_activity_at = self.live.clock.now()
            enrollment.nudges_ignored = 0
        return chosen

    def close(self, session: Session, poll: Poll) -> None:
        """Close the poll and, once the transaction is committed, edit its channel message to show the results."""
        if poll.closed_at is not None:
            raise InvalidInput(f"Poll {poll.id} is already closed.")
        poll.closed_at = self.live.clock.now()
        ref = self.message_ref(session, poll)
        if poll.step_id is not None:
            return  # a program step poll lives in each learner's DM; its card shows results on the next vote
        poll_id = poll.id
        self.live.after_commit(session, lambda: self._publish_results(poll_id, ref))

    def _publish_results(self, poll_id: int, ref: MessageRef | None) -> None:
        """Edit the channel message in place; if that is impossible, post the results as a new message."""
        from bot.storage.db import transaction

        with self.live.factory() as session:
            poll = session.get(Poll, poll_id)
            cohort = session.get(Cohort, poll.cohort_id) if poll else None
            if poll is None or cohort is None:
                return
            card = message(session, poll)
        adapter = self.live.adapters.get(cohort.platform)
        if ref is not None and adapter is not None:
            try:
                adapter.update(ref, card)
                return
            except Exception:
                log.exception("could not update poll %s in place; posting the results instead", poll_id)
        with transaction(self.live.factory) as session:
            cohort = session.get(Cohort, cohort.id)
            assert cohort is not None
            # The key makes this idempotent: a second close plans nothing.
            self.engine.queue_channel_post(
                session, cohort, LIVE_POLL, {"poll_id": poll_id, "kind": "poll"}, key=(poll_id, "results")
            )

    def summary_line(self, session: Session, poll: Poll) -> str:
        _per_option, voters = counts(session, poll)
        state = "closed" if poll.closed_at else "open"
        flags = [
            f
            for f, on in (
                ("anonymous", poll.anonymous),
                ("multi", poll.multi),
                ("hidden results", poll.hide_results),
            )
            if on
        ]
        extra = f" ({', '.join(flags)})" if flags else ""
        return f"- #{poll.id} {inert_line(poll.question)} · {voters} voted · {state}{extra}"

    def results_text(self, session: Session, poll: Poll) -> str:
        per_option, voters = counts(session, poll)
        total = sum(per_option)
        lines = [
            f"**{inert_line(label)}** {bar(n, total)}"
            for label, n in zip(poll.options["labels"], per_option, strict=True)
        ]
        lines.append(f"{voters} {'person' if voters == 1 else 'people'} voted.")
        return "\n".join(lines)

    # ------------------------------------------------------------------ rendering for the sender
    def render_post(self, session: Session, d: DueRow) -> Message | None:
        poll = session.get(Poll, (d.payload or {}).get("poll_id"))
        if poll is None:
            return None
        return message(session, poll)
