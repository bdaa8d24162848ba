"""The LLM client against a fake OpenAI-compatible server, through the real ``openai`` package."""

from __future__ import annotations

import copy
import json

import pytest

from bot.config import LLMSettings
from bot.live.llm import LLMClient, LLMRejected, LLMUnavailable, RecapDraft
from tests.fakes.openai_api import VALID_RECAP, Reply, fake_openai


def client(base_url: str, waits: list[float], **kwargs) -> LLMClient:
    settings = LLMSettings(base_url=base_url, model="local-model", timeout_seconds=kwargs.pop("timeout", 5))
    made = LLMClient.from_settings(settings, sleep=waits.append, **kwargs)
    assert made is not None
    return made


def test_no_endpoint_and_no_key_means_offline():
    assert LLMClient.from_settings(LLMSettings()) is None


def test_valid_answer_is_validated_against_the_quiz_schema():
    waits: list[float] = []
    with fake_openai() as fake:
        fake.script(Reply(content="Here you go:\n```json\n" + json.dumps(VALID_RECAP) + "\n```"))
        recap = client(fake.base_url, waits).recap("Kickoff", "Rui Costa: Welcome everyone.")
    assert isinstance(recap, RecapDraft)
    assert [q.id for q in recap.questions] == ["success", "whose-meeting", "busy-week"]
    assert recap.questions[0].options[1].correct
    body = fake.requests[0]["body"]
    assert body["model"] == "local-model"
    assert body["response_format"]["type"] == "json_schema"
    assert fake.requests[0]["path"].endswith("/chat/completions")
    assert waits == []


def test_invalid_output_is_sent_back_then_accepted():
    bad = copy.deepcopy(VALID_RECAP)
    bad["questions"][0]["options"][1]["correct"] = False  # no correct option: the Question model refuses it
    with fake_openai() as fake:
        fake.script(Reply(content="not json at all"), fake.json_reply(bad), fake.json_reply(VALID_RECAP))
        recap = client(fake.base_url, []).recap("Kickoff", "text")
    assert len(recap.questions) == 3
    assert len(fake.requests) == 3
    retry_prompt = fake.requests[2]["body"]["messages"][-1]["content"]
    assert "has no correct option" in retry_prompt


def test_output_that_stays_invalid_is_rejected():
    two_questions = copy.deepcopy(VALID_RECAP)
    two_questions["questions"] = two_questions["questions"][:2]
    with fake_openai() as fake:
        fake.script(*[fake.json_reply(two_questions)] * 3)
        with pytest.raises(LLMRejected, match="after 3 attempts"):
            client(fake.base_url, []).recap("Kickoff", "text")
    assert len(fake.requests) == 3


def test_multiple_choice_recap_questions_are_refused():
    multi = copy.deepcopy(VALID_RECAP)
    multi["questions"][0]["multiple"] = True
    with fake_openai() as fake:
        fake.script(*[fake.json_reply(multi)] * 3)
        with pytest.raises(LLMRejected, match="single choice"):
            client(fake.base_url, []).recap("Kickoff", "text")


def test_429_is_retried_after_the_requested_wait():
    waits: list[float] = []
    with fake_openai() as fake:
        fake.script(Reply(status=429, headers={"Retry-After": "7"}), fake.json_reply(VALID_RECAP))
        recap = client(fake.base_url, waits).recap("Kickoff", "text")
    assert recap.summary.startswith("The kickoff")
    assert waits == [7.0]


def test_persistent_429_gives_up_after_bounded_attempts():
    waits: list[float] = []
    with fake_openai() as fake:
        fake.script(*[Reply(status=429)] * 3)
        with pytest.raises(LLMUnavailable, match="429"):
            client(fake.base_url, waits, transport_attempts=3).recap("Kickoff", "text")
    assert len(fake.requests) == 3
    assert waits == [2.0, 4.0]  # exponential backoff between attempts, none after the last


def test_timeout_is_retried_then_succeeds():
    waits: list[float] = []
    with fake_openai() as fake:
        fake.script(Reply(stall=True), fake.json_reply(VALID_RECAP))
        recap = client(fake.base_url, waits, timeout=0.3).recap("Kickoff", "text")
    assert len(recap.key_points) == 3
    assert waits == [2.0]


def test_timeouts_every_time_raise_unavailable():
    with fake_openai() as fake:
        fake.script(Reply(stall=True), Reply(stall=True))
        with pytest.raises(LLMUnavailable, match="timed out 2 times"):
            client(fake.base_url, [], timeout=0.3, transport_attempts=2).recap("Kickoff", "text")


def test_bad_key_is_not_retried():
    with fake_openai() as fake:
        fake.script(Reply(status=401), fake.json_reply(VALID_RECAP))
        with pytest.raises(LLMUnavailable, match="401"):
            client(fake.base_url, []).recap("Kickoff", "text")
    assert len(fake.requests) == 1


def test_draft_quiz_passes_the_content_checker(tmp_path):
    import yaml

    from bot.live.cli import check_quiz_yaml, quiz_yaml

    draft = {"intro": "Four questions on delegation.", "questions": VALID_RECAP["questions"]}
    with fake_openai() as fake:
        fake.script(fake.json_reply(draft))
        quiz = client(fake.base_url, []).quiz("Delegating outcomes", "Delegate outcomes, not tasks.", 3)
    lesson = tmp_path / "delegation.md"
    text = quiz_yaml(lesson, "Delegating outcomes", quiz, "local-model")
    assert text.startswith("# DRAFT quiz for delegation.md")
    assert check_quiz_yaml(text) == []
    step = yaml.safe_load(text)[0]
    assert step["kind"] == "quiz" and step["id"] == "delegation-quiz" and len(step["questions"]) == 3
    broken = text.replace("correct: true", "correct: false")
    assert any("no correct option" in p for p in check_quiz_yaml(broken))
