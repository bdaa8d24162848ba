"""A released recap stays the one learners and search see until a lead releases a newer one.

The lead releases the kickoff's recap, then attaches a second transcript (a corrected export, say). That makes a new
draft, reviewed like the first (a review message to the lead; the reply says learners keep the released recap),
while bo's catch-up card, the search results and an opened search result still show the released text. Once the
lead releases the new draft, learners and search see it. Run with the fake OpenAI-compatible server through the
real ``openai`` client, and without an LLM (the offline summary).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import build
from bot.events import Actor, ButtonPressed
from bot.live import service
from bot.live.models import LiveCatchup
from bot.storage.models import LiveSessionRow
from tests.conftest import make_cohort, make_settings
from tests.e2e.test_catchup import lead_command as lead
from tests.fakes.openai_api import VALID_RECAP, fake_openai

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "live" / "samples" / "kickoff.vtt"

SECOND = b"""WEBVTT

00:00:01.000 --> 00:00:09.000
<v Rui Costa>Welcome back. Today the flamingo exercise shows how delegation grows a team's own judgement.

00:00:10.000 --> 00:00:19.000
<v Rui Costa>In the flamingo exercise each manager hands one recurring decision to a team member for a month.

00:00:20.000 --> 00:00:29.000
<v Rui Costa>The flamingo exercise works because the team member owns the outcome, not just the task.

00:00:30.000 --> 00:00:39.000
<v Rui Costa>Review the flamingo decisions together every Friday, and resist taking the decision back.
"""

NEW_RECAP = {
    **VALID_RECAP,
    "summary": "The flamingo exercise: hand one recurring decision to a team member for a month, and review it "
    "together every Friday without taking it back.",
    "key_points": [
        "The team member owns the flamingo decision.",
        "Review it together every Friday.",
        "Do not take the decision back.",
    ],
}


def search(console, user, terms):
    return console.command(user, f"search {terms}").ephemeral


@pytest.mark.parametrize("with_llm", [True, False], ids=["llm", "offline"])
def test_a_new_transcript_for_a_released_recap_is_a_draft_until_released(db_url, clock, console, with_llm):
    with fake_openai() as fake:
        extra = {"llm": {"base_url": fake.base_url, "model": "local-recap"}} if with_llm else {}
        rt = build(make_settings(db_url, **extra), clock=clock, adapters={"console": console})
        console.start(rt.dispatcher)
        try:
            _journey(rt, clock, console, fake if with_llm else None)
        finally:
            rt.db.dispose()


def _journey(rt, clock, console, fake):
    make_cohort(rt, "new-manager-onboarding", [("ana", "America/New_York"), ("bo", "America/New_York")])
    with rt.factory() as session:
        kickoff = session.scalar(select(LiveSessionRow).where(LiveSessionRow.step_id == "kickoff"))
    clock.set(kickoff.end_at + timedelta(hours=1))
    rt.step()  # nobody checked in: ana and bo missed it

    if fake is not None:
        fake.script(fake.json_reply(VALID_RECAP))
    lead(rt, "recording kickoff https://rec.example.com/kickoff c1", (("kickoff.vtt", SAMPLE.read_bytes()),))
    assert "2 catch-up lesson(s)" in lead(rt, "recap release kickoff c1")
    clock.advance(timedelta(hours=1))
    rt.drain()
    live = service(rt)
    with rt.factory() as session:
        row = session.get(LiveSessionRow, kickoff.id)
        released_summary = row.recap["summary"]
    assert "flamingo" not in released_summary.lower()
    first_word = "one-on-ones" if fake is not None else _a_word_of(released_summary)
    assert search(console, "bo", first_word).buttons
    assert not search(console, "bo", "flamingo").buttons
    ready_before = _ready(console)

    # A second transcript for the released recap: a new draft for the lead, nothing new for learners.
    if fake is not None:
        fake.script(fake.json_reply(NEW_RECAP))
    text = lead(rt, "recording kickoff https://rec.example.com/kickoff c1", (("kickoff-2.vtt", SECOND),))
    assert "Learners keep the released recap until you release the new one" in text
    rt.drain()
    assert len(_ready(console)) == len(ready_before) + 1, "the lead gets the new draft to review"
    review = lead(rt, "recap review kickoff c1")
    assert "learners still see the released one" in review and "flamingo" in review.lower()
    with rt.factory() as session:
        row = session.get(LiveSessionRow, kickoff.id)
        assert row.recap_state == "draft" and row.summary == released_summary
        catchup = session.scalar(select(LiveCatchup).where(LiveCatchup.session_id == kickoff.id))
        card = live.recaps.card(session, catchup)
    assert "flamingo" not in card.body.lower() and released_summary[:40] in card.body
    assert not search(console, "bo", "flamingo").buttons  # neither the new summary nor the new transcript
    hit = search(console, "bo", first_word)
    opened = rt.dispatcher.handle(ButtonPressed(Actor("console", "console", "bo"), "search.open", hit.buttons[0].value))
    assert "flamingo" not in opened.ephemeral.body.lower()

    # Released: learners and search now see the new version.
    lead(rt, "recap release kickoff c1")
    with rt.factory() as session:
        catchup = session.scalar(select(LiveCatchup).where(LiveCatchup.session_id == kickoff.id))
        card = live.recaps.card(session, catchup)
    assert "flamingo" in card.body.lower()
    found = search(console, "bo", "flamingo")
    assert found.buttons and "flamingo" in found.body.lower()
    if fake is not None:
        assert "hand one recurring decision to a team member for a month" in card.body
        assert len(fake.requests) == 2  # one valid answer per draft, no retry


def _ready(console):
    return [s for s in console.messages_to("lead") if s.message.title.startswith("Recap draft ready")]


def _a_word_of(summary: str) -> str:
    return max((w.strip(".,;:!?'\"") for w in summary.split()), key=len)
