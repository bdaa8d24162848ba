"""Property-based fuzzing of the Slack endpoint: malformed but correctly signed bodies of every payload kind.

Each generated body starts from a genuine payload (event_callback message and app_home_opened, block_actions,
view_submission, slash command) and gets one to three mutations: a field replaced by any JSON value (wrong types,
huge or non-finite numbers, NUL and lone-surrogate strings, nested junk), a field deleted, a field replaced by JSON
nested thousands of levels deep, or one of our own buttons pointed at ids no database column holds. Every body is
signed with the real secret and posted to the real bolt endpoint of an adapter wired to the real dispatcher on
SQLite. Nothing may answer 5xx, nothing may log a traceback, and the server must keep serving.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.slack.adapter import SlackAdapter
from bot.app import Runtime, build
from bot.clock import VirtualClock
from tests.adapters.slack.harness import SECRET, make_adapter
from tests.conftest import START, make_settings
from tests.fakes import slack_signing
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.slack

#: Payloads per kind per example; the test asserts the total, so the acceptance figure (1,000+) cannot drift.
EXAMPLES = int(os.environ.get("BW_FUZZ_EXAMPLES", "210"))
KINDS = ("message", "home", "block_actions", "view_submission", "command")
DEEP = "\ue000deep\ue000"  # replaced by deeply nested JSON text after serialisation

ODD_STRINGS = st.sampled_from(
    [
        "",
        "\x00",
        "U\x00LEARNER",
        "\ud800",
        "U\udfffX",
        "9" * 25,
        "bw:lesson.done:99999999999999999999999",
        "bw:quiz.answer:1.2.3.99999999999999999999",
        "bw:" + "x" * 300,
        "x" * 5000,
        "<!channel> [click me](https://evil.example/x)",
        "{{ 7*7 }}",
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    ODD_STRINGS,
    st.just(DEEP),
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
#: Button values that parse as ids but overflow, or that are not ids at all.
BUTTON_VALUES = st.one_of(
    st.sampled_from(["99999999999999999999", "1.99999999999999999999", "-1", "1.2.3.4.5", "\x00", "١٢٣"]),
    st.text(max_size=30),
    st.integers(min_value=0, max_value=2**70).map(str),
)
OUR_ACTIONS = st.sampled_from(
    ["lesson.done", "quiz.answer", "quiz.toggle", "rsvp.yes", "reflection.open", "poll.vote", "step.snooze"]
)


def genuine(kind: str, reply_to: str) -> dict[str, Any]:
    if kind == "message":
        event = slack_signing.message_event(
            user="UFUZZ", channel="C0COHORT", text="My reply", thread_ts="1700000000.000001"
        )
        return slack_signing.event_callback(event)
    if kind == "home":
        return slack_signing.event_callback(slack_signing.app_home_opened_event(user="UFUZZ"))
    if kind == "block_actions":
        return slack_signing.block_actions_payload(
            user_id="UFUZZ", action_id="bw:lesson.done:1", value="1", response_url=reply_to
        )
    if kind == "view_submission":
        metadata = json.dumps({"action": "reflection.submit", "value": "1"})
        return slack_signing.view_submission_payload(user_id="UFUZZ", private_metadata=metadata, text="Hi")
    return slack_signing.slash_command_form(user_id="UFUZZ", text="progress", response_url=reply_to)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a payload, so a mutation can hit any field at any depth."""
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


def mutate(payload: dict[str, Any], path: tuple[Any, ...], op: str, value: Any) -> None:
    parent: Any = payload
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "deep":
        parent[last] = DEEP
    else:
        parent[last] = value


@st.composite
def malformed(draw: st.DrawFn, kind: str, reply_to: str) -> tuple[str, str]:
    """A (body, content type) pair: a genuine payload of ``kind`` with one to three mutations."""
    payload = genuine(kind, reply_to)
    if kind == "block_actions" and draw(st.booleans()):
        # Our own button, pointed at ids that cannot exist: these pass the edge and reach the dispatcher.
        action = payload["actions"][0]
        value = draw(BUTTON_VALUES)
        action["action_id"] = f"bw:{draw(OUR_ACTIONS)}:{value}"[:255]
        action["value"] = value
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(payload)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        op = draw(st.sampled_from(["replace", "replace", "delete", "deep"]))
        mutate(payload, path, op, draw(JSON_VALUES) if op == "replace" else None)
    depth = draw(st.integers(min_value=50, max_value=5000))
    text = json.dumps(payload, allow_nan=True).replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    if kind == "command" and draw(st.booleans()):
        # A slash command is a form: every value is a string, so mutate as strings (surrogates survive quoting).
        form = {str(k): v if isinstance(v, str) else json.dumps(v, allow_nan=True) for k, v in payload.items()}
        body = "&".join(f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}" for k, v in form.items())
        return body, "application/x-www-form-urlencoded"
    if kind in ("block_actions", "view_submission"):
        return urlencode({"payload": text}), "application/x-www-form-urlencoded"
    return text, "application/json"


def post(adapter: SlackAdapter, body: str, content_type: str) -> int:
    """Sign the exact bytes (a lone surrogate goes out as its invalid UTF-8 bytes) and post them."""
    raw = body.encode("utf-8", "surrogatepass")
    timestamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    request = urllib.request.Request(f"{adapter.url}/slack/events", data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Runtime, SlackAdapter, FakeSlack]]:
    with FakeSlack() as fake:
        # One worker: post-ack work runs in request order. Concurrent first contact by one new user is a race (issue
        # 11, point 2, with its own tests); this module is about malformed payloads.
        adapter = make_adapter(fake, workers=1)
        rt = build(
            make_settings(f"sqlite:///{tmp_path / 'fuzz.db'}"), clock=VirtualClock(START), adapters={"slack": adapter}
        )
        adapter.start(rt.dispatcher)
        try:
            yield rt, adapter, fake
        finally:
            adapter.stop()
            rt.db.dispose()


def test_malformed_signed_bodies_never_get_a_5xx_or_a_traceback(served, caplog):
    _rt, adapter, fake = served
    caplog.set_level(logging.INFO)
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.tuples(*(malformed(kind, fake.response_url()) for kind in KINDS)))
    def one_of_each_kind(bodies: tuple[tuple[str, str], ...]) -> None:
        for body, content_type in bodies:
            status = post(adapter, body, content_type)
            statuses.append(status)
            assert status < 500, (status, body[:300])

    one_of_each_kind()
    adapter.wait_idle(timeout=60)
    assert len(statuses) >= len(KINDS) * EXAMPLES  # 1,050 by default
    assert max(statuses) < 500
    assert any(400 <= s < 500 for s in statuses) and any(s == 200 for s in statuses)
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], tracebacks[0].getMessage()
    # Still serving: a genuine command is acknowledged and reaches the dispatcher.
    genuine_form = slack_signing.slash_command_form(user_id="UFUZZ", text="help", response_url=fake.response_url())
    assert post(adapter, urlencode(genuine_form), "application/x-www-form-urlencoded") == 200
    with urllib.request.urlopen(f"{adapter.url}/healthz", timeout=5) as health:
        assert health.status == 200
