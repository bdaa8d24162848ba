"""Live polls: voting, changing a vote, multi-choice, hidden results, closing, and anonymous secrecy."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from bot.events import ButtonPressed
from bot.reporting import build_report
from bot.storage.models import Base, LearningEvent, Person, Poll, PollVote
from tests.conftest import make_cohort

LEARNERS = [("ana", "Europe/London"), ("bo", "Europe/London"), ("cy", "Europe/London")]


def create(rt, console, flags: str = "") -> tuple[int, object]:
    make_cohort(rt, "new-manager-onboarding", LEARNERS)
    response = console.command(
        "lead", f'poll c1 "Which day suits the next session?" "Monday" "Tuesday" "Friday" {flags}'
    )
    assert "is on its way" in response.ephemeral.body
    rt.drain()
    post = console.channel_posts("cohort-1")[-1]
    assert post.message.kind == "poll"
    with rt.factory() as session:
        poll_id = session.scalars(select(Poll.id)).one()
    return poll_id, post


def press(console, user, post, label):
    button = next(b for b in post.message.buttons if b.label == label)
    return console.press(user, post, button)


def test_vote_change_and_results_update_in_place(rt, console):
    poll_id, post = create(rt, console)
    assert [b.label for b in post.message.buttons] == ["Monday", "Tuesday", "Friday"]
    press(console, "ana", post, "Tuesday")
    response = press(console, "bo", post, "Tuesday")
    assert "Your vote: Tuesday" in response.ephemeral.body
    assert "██████████ 2 (100%)" in post.message.body
    press(console, "bo", post, "Friday")  # bo changes their mind: still one vote each
    assert "█████░░░░░ 1 (50%)" in post.message.body
    assert "2 people voted" in post.message.body
    assert len(post.history) == 3  # the channel message was edited in place, not re-posted
    with rt.factory() as session:
        assert sorted(session.scalars(select(PollVote.option))) == [1, 2]
        poll = session.get(Poll, poll_id)
        assert poll.message_ref == post.ref.encode()
    # The (non-anonymous) vote is recorded for participation, with the choice.
    with rt.factory() as session:
        voted = session.scalars(select(LearningEvent).where(LearningEvent.verb == "voted")).all()
        assert [e.result["response"] for e in voted] == ["1", "1", "2"]


def test_multi_choice_toggles(rt, console):
    _, post = create(rt, console, "--multi")
    press(console, "ana", post, "Monday")
    response = press(console, "ana", post, "Friday")
    assert "Your choices: Monday, Friday" in response.ephemeral.body
    response = press(console, "ana", post, "Monday")
    assert "Your choices: Friday" in response.ephemeral.body
    assert "1 person voted" in post.message.body


def test_hidden_results_until_the_lead_closes(rt, console):
    poll_id, post = create(rt, console, "--hide-results-until-close")
    press(console, "ana", post, "Monday")
    press(console, "bo", post, "Monday")
    assert "hidden until the lead closes" in post.message.body
    assert "█" not in post.message.body and "2 people voted" in post.message.body
    # Only a lead may close; a learner is refused.
    refused = console.command("ana", f"poll close {poll_id}")
    assert "Only a lead" in refused.ephemeral.body
    closed = console.command("lead", f"poll close {poll_id}")
    assert "██████████ 2 (100%)" in closed.ephemeral.body
    # Closing edits the channel message (through the adapter) to reveal the results, without buttons.
    assert "██████████ 2 (100%)" in post.message.body
    assert post.message.buttons == []
    late = press_value(rt, "cy", f"{poll_id}.0")
    assert "closed" in late.ephemeral.body


def press_value(rt, user, value):
    from bot.events import Actor

    return rt.dispatcher.handle(ButtonPressed(Actor("console", "console", user), "poll.vote", value))


def test_only_cohort_members_vote(rt, console):
    poll_id, _post = create(rt, console)
    outsider = press_value(rt, "stranger", f"{poll_id}.0")
    assert "for the members of cohort 'c1'" in outsider.ephemeral.body
    bad = press_value(rt, "ana", f"{poll_id}.9")
    assert "not part of the poll" in bad.ephemeral.body


def test_anonymous_votes_name_nobody(rt, console, caplog):
    caplog.set_level(logging.DEBUG)
    poll_id, post = create(rt, console, "--anonymous")
    press(console, "ana", post, "Friday")
    press(console, "bo", post, "Monday")
    press(console, "bo", post, "Friday")
    assert "█████████" in post.message.body and "Anonymous" in post.message.context
    with rt.factory() as session:
        people = {p.user_id: p for p in session.scalars(select(Person))}
        ids = {str(p.id) for p in people.values()}
        votes = session.scalars(select(PollVote)).all()
        assert len(votes) == 2
        for vote in votes:
            assert vote.voter not in ids and len(vote.voter) == 64  # a salted hash, never a person id
        # The learning record says that ana voted, never what.
        voted = session.scalars(select(LearningEvent).where(LearningEvent.verb == "voted")).all()
        assert voted and all(e.result is None for e in voted)
        # No table holds a row linking a voter's id to this poll's choices.
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                data = json.dumps({k: str(v) for k, v in row.items()})
                if table.name == "poll_votes":
                    assert not any(f'"{i}"' in data for i in ids if f'"voter": "{i}"' in data)
                if table.name == "learning_events" and row["verb"] == "voted":
                    assert row["result"] is None
        report = build_report(session, rt.engine).to_json()
        assert "Friday" not in report and "voted" not in report
    # The lead's results and the poll list show counts only.
    for args in (f"poll results {poll_id}", "poll list c1"):
        body = console.command("lead", args).ephemeral.body
        assert "Ana" not in body and "Bo" not in body and "ana" not in body
    assert not [r for r in caplog.records if "Friday" in r.getMessage() or "Monday" in r.getMessage()]
    # Closing reveals counts, still nobody's choice.
    console.command("lead", f"poll close {poll_id}")
    assert "Ana" not in post.message.body


POLL_PROGRAM = """
id: poll-prog
title: Poll program
steps:
  - id: pick
    title: Pick a topic
    kind: poll
    unlock: {day: 0, at: "09:00"}
    question: Which topic first?
    options: [Pricing, Discovery, Closing]
"""


def test_program_poll_step_shows_live_results_and_allows_a_change(db_url, tmp_path, clock, console):
    from datetime import timedelta

    from tests.unit.helpers import build_runtime

    rt = build_runtime(db_url, tmp_path, clock, console, {"poll-prog": POLL_PROGRAM})
    try:
        make_cohort(rt, "poll-prog", LEARNERS)
        clock.advance(timedelta(hours=4))  # 11:00 London
        rt.step()
        found = console.last_with_button("ana", "poll.step")
        assert found, [(s.message.title, s.message.buttons) for s in console.sent]
        sent, button = found
        response = console.press("ana", sent, button)
        assert "Your vote: Pricing" in response.ephemeral.body
        assert "██████████ 1 (100%)" in sent.message.body
        other = next(b for b in sent.message.buttons if b.label == "Closing")
        console.press("ana", sent, other)  # the card keeps its options, so the vote can change
        assert "**Closing**\n██████████ 1 (100%)" in sent.message.body
        with rt.factory() as session:
            assert len(session.scalars(select(PollVote)).all()) == 1
    finally:
        rt.db.dispose()
