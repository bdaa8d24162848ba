"""Every ``choice`` statement of a demo run tells an LRS what the choices were and which one is correct."""

from __future__ import annotations

from pathlib import Path

from bot.config import LRSSettings
from bot.demo import run_demo
from bot.records.xapi import export_statements, validate_statement

CONTENT = Path(__file__).resolve().parents[2] / "content"


def test_every_choice_statement_of_a_demo_run_lists_choices_and_the_correct_pattern(tmp_path):
    result = run_demo(
        program_id="new-manager-onboarding",
        learners=6,
        seed=7,
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        content_dir=CONTENT,
    )
    rt = result.runtime
    with rt.factory() as session:
        statements = list(export_statements(session, rt.library, LRSSettings()))
    rt.db.dispose()
    questions = [s for s in statements if s["object"]["id"].split("/")[-2] == "question"]
    assert len(questions) > 20, "the demo must answer quiz questions, or this test proves nothing"
    for st in questions:
        definition = st["object"]["definition"]
        assert definition["interactionType"] == "choice"
        ids = [c["id"] for c in definition["choices"]]
        assert ids == [str(i) for i in range(len(ids))] and len(ids) >= 2
        assert all(c["description"]["en-US"] for c in definition["choices"])
        (pattern,) = definition["correctResponsesPattern"]
        assert set(pattern.split("[,]")) <= set(ids)
        # The response is decodable: every index it names is a listed choice, and success agrees with the pattern.
        response = st["result"]["response"]
        assert set(response.split("[,]")) <= set(ids)
        assert st["result"]["success"] == (response == pattern)
        assert validate_statement(st) == []


def test_the_validator_refuses_a_choice_without_choices():
    st = {
        "id": "6f1f0c52-8d4e-5b7a-9a51-3c2f0e4b9d17",
        "actor": {"objectType": "Agent", "account": {"homePage": "https://x.example", "name": "u"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
        "object": {
            "objectType": "Activity",
            "id": "https://x.example/q",
            "definition": {"interactionType": "choice"},
        },
        "timestamp": "2026-03-09T13:55:00.000Z",
    }
    problems = validate_statement(st)
    assert "a choice interaction must list its choices" in problems
    assert any("correctResponsesPattern" in p for p in problems)
