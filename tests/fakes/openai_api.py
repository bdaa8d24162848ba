"""A fake OpenAI-compatible chat-completions server on localhost, for the real ``openai`` client.

Each request pops the next scripted reply: a JSON body (wrapped as a chat completion), an HTTP status with
headers (429 with Retry-After), or a stall that outlasts the client's timeout (held on an event, never a sleep
that slows the suite: the server thread is released when the test ends). Request bodies are recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = None  # the assistant message content
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False  # never answer (until the server stops): the client times out


@dataclass
class FakeOpenAI:
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    release: threading.Event = field(default_factory=threading.Event)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def json_reply(self, data: Any) -> Reply:
        return Reply(content=json.dumps(data))


def _completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_770_000_000,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("authorization")})
            reply = fake.replies.pop(0) if fake.replies else Reply(status=500)
            if reply.stall:
                fake.release.wait(10)
                return
            if reply.status != 200:
                payload = json.dumps(
                    {"error": {"message": f"fake error {reply.status}", "type": "fake"}}
                ).encode()
            else:
                payload = json.dumps(_completion(reply.content or "", body.get("model", "fake"))).encode()
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()


#: A recap that satisfies :class:`bot.live.llm.RecapDraft` (what a good model returns for the kickoff sample).
VALID_RECAP: dict[str, Any] = {
    "summary": (
        "The kickoff introduced the cohort and the program's central idea: a manager's success is measured by "
        "what the team achieves, not by their own output. It explained how the three weeks work and closed with "
        "advice on first one-on-ones, which belong to the team member and should be rescheduled, not cancelled."
    ),
    "key_points": [
        "Your success now comes from your team's results.",
        "Every problem you solve for the team is one they do not learn to solve.",
        "One-on-ones are the team member's meeting: their topics come first.",
    ],
    "questions": [
        {
            "id": "success",
            "text": "Where does a new manager's success mostly come from?",
            "options": [
                {"text": "Their own output", "feedback": "Not any more."},
                {"text": "The team's results", "correct": True, "feedback": "Yes."},
                {"text": "Formal authority", "feedback": "It gets little done."},
            ],
            "explanation": "The identity shift is from 'I deliver' to 'we deliver'.",
        },
        {
            "id": "whose-meeting",
            "text": "Whose meeting is a one-on-one?",
            "options": [
                {"text": "The manager's", "feedback": "Status can go elsewhere."},
                {"text": "The team member's", "correct": True, "feedback": "Right."},
            ],
            "explanation": "Their topics come first; yours follow.",
        },
        {
            "id": "busy-week",
            "text": "A busy week: what do you do with a one-on-one?",
            "options": [
                {"text": "Cancel it", "feedback": "Cancelling says they come last."},
                {"text": "Move it to another day", "correct": True, "feedback": "Yes, keep the habit."},
            ],
            "explanation": "Consistency matters more than length.",
        },
    ],
}
