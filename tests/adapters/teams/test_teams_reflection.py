"""A reflection on Teams is written inside its own card: the button is an ``Action.ShowCard`` that reveals the input
with no round trip to the bot, and its submit is one ``adaptiveCard/action`` invoke that records the reflection and
turns the card into the acknowledgement."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.adapters.teams.cards import INPUT_ID, MODAL_VERB
from bot.ports import Recipient
from bot.states import StepState
from bot.storage.models import Enrollment, Person, StepProgress
from tests.adapters.teams.conftest import Teams
from tests.contract.test_contract import LEARNERS, REFLECTION, setup_cohort

pytestmark = pytest.mark.teams


def _progress(teams: Teams, user: str, step: str) -> StepProgress:
    with teams.rt.factory() as session:
        sp = session.scalar(
            select(StepProgress).join(Enrollment, Enrollment.id == StepProgress.enrollment_id)
            .join(Person, Person.id == Enrollment.person_id)
            .where(Person.user_id == user, StepProgress.step_id == step)
        )
        assert sp is not None
        session.expunge(sp)
        return sp


def test_a_reflection_is_written_in_its_card_and_submitted_once(teams: Teams) -> None:
    d, rt = teams.driver, teams.rt
    setup_cohort(d, rt)
    sp = _progress(teams, "UANA", "workshop-reflection")
    with rt.factory() as session:
        (card,) = rt.dispatcher.composer.step_card(session, session.merge(sp))
    d.adapter.send_direct(Recipient("teams", d.workspace, "UANA", LEARNERS[0][1]), card)

    (msg,) = d.inbox("UANA")
    button = msg.button("reflection.open")
    assert button is not None and button.raw["type"] == "Action.ShowCard"
    inline = button.raw["card"]
    assert [e["id"] for e in inline["body"] if e["type"] == "Input.Text"] == [INPUT_ID]
    (submit,) = inline["actions"]
    assert submit["verb"] == MODAL_VERB and submit["data"] == {"bw": "reflection.submit", "v": str(sp.id)}

    d.press("UANA", msg, button)  # revealed by the client: the card is unchanged and the bot hears nothing
    assert d.fake.find(msg.ref.id).history == []  # type: ignore[union-attr]
    d.submit_modal("UANA", REFLECTION)
    assert _progress(teams, "UANA", "workshop-reflection").state == StepState.DONE
    (answered,) = d.inbox("UANA")[:1]
    assert "Thanks for your reflection" in answered.text, "the card became the acknowledgement"
