"""The LLM client: OpenAI-compatible chat completions with validated, structured answers.

Everything goes through the ``openai`` package's chat-completions API at ``llm.base_url``, so OpenAI, Azure-style
gateways and local model servers (llama.cpp, vLLM, Ollama, LM Studio) all work. The model is asked for JSON that
matches a pydantic schema (``response_format`` ``json_schema``, and the schema in the prompt for servers that
ignore it). Its answer is validated against the same models the content loader uses (:class:`Question`,
:class:`Option`), so a recap quiz is held to the rules of an authored quiz.

Failure handling is bounded on purpose:

* transport problems (timeouts, connection errors, HTTP 429 and 5xx) are retried with exponential backoff,
  honouring ``Retry-After``, at most ``transport_attempts`` times, then :class:`LLMUnavailable`;
* an answer that is not valid JSON or does not match the schema is sent back to the model with the validation
  errors, at most ``attempts`` times, then :class:`LLMRejected`. Nothing unvalidated is ever stored.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.config import LLMSettings
from bot.errors import BlendwiseError
from bot.journeys.model import Question

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


class LLMUnavailable(BlendwiseError):
    """The LLM server could not be reached or kept refusing (timeouts, 429, 5xx, bad key)."""


class LLMRejected(BlendwiseError):
    """The model kept answering with output that does not match the schema; nothing was stored."""


class LLMNotConfigured(BlendwiseError):
    """No LLM is configured (``llm.base_url`` / ``OPENAI_API_KEY``)."""


# ------------------------------------------------------------------------------------------------ schemas
class ExplainedQuestion(Question):
    """A generated question: an authored :class:`Question` that must also explain its answer."""

    explanation: str = Field(min_length=10, max_length=1000)


class RecapQuestion(ExplainedQuestion):
    """Recap questions are single choice: one tap per question in a catch-up lesson."""

    @field_validator("multiple")
    @classmethod
    def _single(cls, value: bool) -> bool:
        if value:
            raise ValueError("recap questions must be single choice (multiple: false)")
        return value


def _unique_ids(questions: list[Any]) -> None:
    ids = [q.id for q in questions]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"question ids must be unique; repeated: {', '.join(dupes)}")


class RecapDraft(BaseModel):
    """What the model returns for a session: the shape stored in ``sessions.recap``."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=40, max_length=3000)
    key_points: list[str] = Field(min_length=3, max_length=7)
    questions: list[RecapQuestion] = Field(min_length=3, max_length=5)

    @field_validator("key_points")
    @classmethod
    def _points(cls, value: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > 400 for p in value):
            raise ValueError("each key point must be a non-empty sentence under 400 characters")
        return [p.strip() for p in value]

    @model_validator(mode="after")
    def _ids(self) -> RecapDraft:
        _unique_ids(self.questions)
        return self


class QuizDraft(BaseModel):
    """What the model returns for ``content draft-quiz``."""

    model_config = ConfigDict(extra="forbid")

    intro: str = Field(default="", max_length=400)
    questions: list[ExplainedQuestion] = Field(min_length=3, max_length=5)

    @model_validator(mode="after")
    def _ids(self) -> QuizDraft:
        _unique_ids(self.questions)
        return self


# ------------------------------------------------------------------------------------------------ prompts
RECAP_SYSTEM = """You write recaps of live training sessions for learners who missed them.
Use only what the transcript says. Write plainly, in the second person where it helps, without hype.
Reply with one JSON object and nothing else, matching this JSON schema:
{schema}
Rules: "summary" is one paragraph of 60-150 words. "key_points" are 3-5 short sentences.
"questions" are 3-5 single-choice questions on the session's ideas (not on who said what); each has 3-4 options,
exactly one with "correct": true, a short "feedback" per option and an "explanation" of the right answer.
Question ids are lowercase words joined by hyphens, e.g. "whose-meeting"."""

QUIZ_SYSTEM = """You help learning designers draft quiz questions for a micro-lesson. The designer reviews every
question before it is published. Test understanding and application, not recall of wording.
Reply with one JSON object and nothing else, matching this JSON schema:
{schema}
Rules: 3-5 questions; 3-4 options each; mark correct options with "correct": true (single choice unless
"multiple": true); give every option a one-sentence "feedback" and every question an "explanation".
Question ids are lowercase words joined by hyphens."""


def _schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), separators=(",", ":"))


def _extract_json(raw: str) -> Any:
    """Models wrap JSON in code fences or add a sentence around it; take the outermost object."""
    text = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise ValueError("the answer holds no JSON object")
        text = text[start : end + 1]
    return json.loads(text)


def _problems(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:6]:
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
        return "; ".join(parts)
    return str(exc)


# ------------------------------------------------------------------------------------------------ client
class LLMClient:
    """A small wrapper over ``openai.OpenAI`` that returns validated pydantic objects.

    Args:
        base_url: the OpenAI-compatible endpoint, e.g. ``http://localhost:11434/v1``; ``None`` means OpenAI.
        model: the model name the server knows.
        api_key: the key; local servers usually accept any value.
        timeout: seconds per HTTP request.
        attempts: how many answers to ask for before rejecting invalid output.
        transport_attempts: how many times to try one request through timeouts, 429 and 5xx.
        backoff: the first wait in seconds; doubles each time, capped at ``max_backoff``.
        sleep: how to wait (injected so tests never sleep).
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float = 60,
        attempts: int = 3,
        transport_attempts: int = 4,
        backoff: float = 2.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai

        self._openai = openai
        self.model = model
        self.attempts = attempts
        self.transport_attempts = transport_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        # The client's own retries are off: ours are bounded, logged and honour Retry-After the same way for
        # every server.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
        )

    @classmethod
    def from_settings(cls, llm: LLMSettings, **kwargs: Any) -> LLMClient | None:
        """A client when an endpoint or key is configured, else ``None`` (the offline fallbacks apply)."""
        key = llm.api_key.get_secret_value() if llm.api_key else None
        if not llm.base_url and not key:
            return None
        try:
            import openai  # noqa: F401
        except ImportError:
            log.warning("llm is configured but the 'openai' package is missing: pip install 'blendwise[ai]'")
            return None
        return cls(base_url=llm.base_url, model=llm.model, api_key=key, timeout=llm.timeout_seconds, **kwargs)

    # -------------------------------------------------------------------------------------------- public
    def structured(self, model_cls: type[T], *, system: str, user: str, name: str) -> T:
        """Ask for JSON matching ``model_cls``; validate; send problems back; give up after ``attempts``."""
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system.replace("{schema}", _schema_text(model_cls))},
            {"role": "user", "content": user},
        ]
        problem = ""
        for attempt in range(1, self.attempts + 1):
            raw = self._chat(messages, model_cls, name)
            try:
                return model_cls.model_validate(_extract_json(raw))
            except (ValueError, ValidationError) as exc:
                problem = _problems(exc)
                log.warning("LLM answer %d/%d for %s was invalid: %s", attempt, self.attempts, name, problem)
                messages += [
                    {"role": "assistant", "content": raw[:8000]},
                    {
                        "role": "user",
                        "content": f"That answer is invalid: {problem}. Reply again with the corrected JSON "
                        "object only.",
                    },
                ]
        raise LLMRejected(
            f"the model's answer did not match the {name} schema after {self.attempts} attempts ({problem})"
        )

    def recap(self, title: str, transcript: str) -> RecapDraft:
        user = f"Session title: {title}\n\nTranscript:\n{transcript[:60000]}"
        return self.structured(RecapDraft, system=RECAP_SYSTEM, user=user, name="recap")

    def quiz(self, title: str, lesson: str, questions: int = 4) -> QuizDraft:
        user = f"Lesson title: {title}\nWrite {questions} questions.\n\nLesson:\n{lesson[:30000]}"
        return self.structured(QuizDraft, system=QUIZ_SYSTEM, user=user, name="quiz")

    # -------------------------------------------------------------------------------------------- transport
    def _chat(self, messages: list[dict[str, str]], model_cls: type[BaseModel], name: str) -> str:
        openai = self._openai
        response_format: dict[str, Any] | None = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": model_cls.model_json_schema()},
        }
        for attempt in range(1, self.transport_attempts + 1):
            wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
            try:
                kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0.2}
                if response_format is not None:
                    kwargs["response_format"] = response_format
                completion = self.client.chat.completions.create(**kwargs)
                content = completion.choices[0].message.content if completion.choices else None
                return content or ""
            except openai.RateLimitError as exc:
                wait = max(wait, min(_retry_after(exc), self.max_backoff))
                reason = "HTTP 429 (rate limited)"
            except openai.APITimeoutError:
                reason = "timed out"
            except openai.APIConnectionError:
                reason = "could not connect"
            except openai.InternalServerError as exc:
                reason = f"HTTP {exc.status_code}"
            except openai.AuthenticationError:
                raise LLMUnavailable(
                    "the LLM server refused the API key (HTTP 401); check OPENAI_API_KEY"
                ) from None
            except openai.BadRequestError as exc:
                if response_format is not None and "response_format" in str(exc):
                    # Some local servers do not know json_schema; the schema is in the prompt as well.
                    log.info("LLM server does not accept response_format; asking for JSON in the prompt only")
                    response_format = None
                    continue
                raise LLMUnavailable(
                    f"the LLM server rejected the request (HTTP 400): {_short(exc)}"
                ) from None
            except openai.APIStatusError as exc:
                raise LLMUnavailable(
                    f"the LLM server answered HTTP {exc.status_code}: {_short(exc)}"
                ) from None
            if attempt == self.transport_attempts:
                raise LLMUnavailable(f"the LLM server {reason} {attempt} times; try again later")
            log.warning(
                "LLM request %s (attempt %d/%d); retrying in %.1fs",
                reason,
                attempt,
                self.transport_attempts,
                wait,
            )
            self.sleep(wait)
        raise LLMUnavailable("the LLM server could not be used")  # only reached if every attempt fell back


def _retry_after(exc: Any) -> float:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else 0.0
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
