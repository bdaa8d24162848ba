"""Property-based fuzzing of Discord interactions on the wire: malformed INTERACTION_CREATE dispatches.

Each generated payload starts from a genuine interaction (a button press on a message the bot sent, a modal
submission, a ``/learn`` slash command) and gets one to three mutations: a field replaced by any JSON value (wrong
types, non-numeric or huge snowflakes, NUL and lone-surrogate strings, nested junk), a field deleted, or a button
pointed at ids no database column holds. The fake gateway sends each one to the real discord.py client of an
adapter wired to the real dispatcher on SQLite. Nothing may log a traceback, the gateway session must survive (no
reconnect), and a genuine interaction afterwards must still be answered.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.discord import DiscordAdapter
from bot.app import Runtime, build
from bot.messages import Button, Message
from bot.ports import Recipient
from tests.conftest import make_settings
from tests.fakes.discord_server import FakeDiscord

pytestmark = pytest.mark.discord

#: Payloads per kind per example; the test asserts the total (1,050 by default, the acceptance asks 1,000+).
EXAMPLES = int(os.environ.get("BW_FUZZ_EXAMPLES", "350"))
KINDS = ("button", "modal", "command")

ODD_STRINGS = st.sampled_from(
    [
        "",
        "\x00",
        "12\x0034",
        "\ud800",
        "abc",
        "-1",
        "9" * 25,
        "1" * 5000,
        "bw:done:99999999999999999999999",
        "bw:quiz.answer:1.2.3.99999999999999999999",
        "bw:" + "x" * 300,
        "<@&1> @everyone [click me](https://evil.example/x)",
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    ODD_STRINGS,
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
BUTTON_VALUES = st.one_of(
    st.sampled_from(["99999999999999999999", "1.99999999999999999999", "-1", "1.2.3.4.5", "١٢٣"]),
    st.text(max_size=30),
    st.integers(min_value=0, max_value=2**70).map(str),
)
OUR_ACTIONS = st.sampled_from(["lesson.done", "quiz.answer", "rsvp.yes", "reflection.open", "poll.vote"])


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


@st.composite
def malformed(draw: st.DrawFn, genuine: dict[str, Any], kind: str) -> dict[str, Any]:
    payload = copy.deepcopy(genuine)
    if kind == "button" and draw(st.booleans()):
        payload["data"]["custom_id"] = f"bw:{draw(OUR_ACTIONS)}:{draw(BUTTON_VALUES)}"[:100]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(payload)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    # A fresh interaction id, so the dedupe of a replay never hides what the mutation did.
    payload["id"] = payload.get("id") if draw(st.booleans()) else str(draw(st.integers(10**17, 10**18)))
    return payload


@pytest.fixture
def served(fake: FakeDiscord, make_adapter, clock, tmp_path: Path) -> Iterator[tuple[Runtime, DiscordAdapter]]:
    # One handler thread: concurrent first contact by one new user is a race (issue 11, point 2, with its own
    # tests); this module is about malformed payloads.
    adapter = make_adapter(handler_threads=1)
    rt = build(make_settings(f"sqlite:///{tmp_path / 'fuzz.db'}"), clock=clock, adapters={"discord": adapter})
    adapter.start(rt.dispatcher)
    try:
        yield rt, adapter
    finally:
        adapter.stop()
        rt.db.dispose()


def genuine_payloads(fake: FakeDiscord, adapter: DiscordAdapter) -> dict[str, dict[str, Any]]:
    """One real interaction payload of each kind, built by the fake exactly as it would send them."""
    learner = fake.world.learner_ids[0]
    ref = adapter.send_direct(
        Recipient("discord", str(fake.world.guild_id), str(learner)),
        Message(text="Lesson", title="Lesson", body="Read this.", buttons=[Button("Done", "lesson.done", "1")]),
    )
    message = fake.messages[int(ref.ts)]
    press = fake._interaction_payload(
        3, learner, None, int(message["channel_id"]), {"custom_id": "bw:lesson.done:1", "component_type": 2}
    ).payload
    press["message"] = dict(message)
    modal_data = {
        "custom_id": "bw:reflection.submit:1",
        "components": [{"type": 1, "components": [{"type": 4, "custom_id": "bw_text", "value": "My thoughts"}]}],
    }
    modal = fake._interaction_payload(5, learner, fake.world.guild_id, fake.world.text_channel_id, modal_data).payload
    registered = next(c for c in fake.commands.get(fake.world.guild_id, []) if c["name"] == "learn")
    command_data = {
        "id": registered["id"],
        "name": "learn",
        "type": 1,
        "options": [{"name": "progress", "type": 1, "options": []}],
        "guild_id": registered.get("guild_id", str(fake.world.guild_id)),
    }
    command = fake._interaction_payload(
        2, learner, fake.world.guild_id, fake.world.text_channel_id, command_data
    ).payload
    return {"button": press, "modal": modal, "command": command}


def test_malformed_interactions_never_log_a_traceback_or_drop_the_gateway(served, fake, caplog):
    _rt, adapter = served
    caplog.set_level(logging.INFO)
    genuine = genuine_payloads(fake, adapter)
    session = fake.wait_for_session()
    sent: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.tuples(*(malformed(genuine[kind], kind) for kind in KINDS)))
    def one_of_each_kind(payloads: tuple[dict[str, Any], ...]) -> None:
        for payload in payloads:
            json.dumps(payload)  # what the gateway can carry
            fake.dispatch_raw("INTERACTION_CREATE", payload)
            sent.append(1)

    one_of_each_kind()
    # Still serving on the same gateway session: a genuine command is answered after all of that.
    interaction = fake.invoke_command(fake.world.learner_ids[1], "learn", "progress")
    ack = fake.wait_for_ack(interaction, timeout=60)
    assert ack["type"] in (4, 5)
    assert len(sent) >= len(KINDS) * EXAMPLES
    assert fake.connected_sessions() == [session] and len(fake.sessions) == 1
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], tracebacks[0].getMessage()


def test_a_button_press_that_names_no_channel_logs_no_traceback(served, fake, caplog):
    """Found by the fuzz test above: a press whose payload names no channel left discord.py's message without one,
    and reading the message's reference raised inside discord.py's callback (a logged traceback)."""
    _rt, adapter = served
    caplog.set_level(logging.INFO)
    payload = copy.deepcopy(genuine_payloads(fake, adapter)["button"])
    for key in ("channel_id", "channel"):
        payload.pop(key, None)
    payload["id"] = str(10**17 + 7)
    fake.dispatch_raw("INTERACTION_CREATE", payload)
    # One handler thread: a genuine command answered afterwards means the press was handled first.
    interaction = fake.invoke_command(fake.world.learner_ids[1], "learn", "progress")
    assert fake.wait_for_ack(interaction, timeout=60)["type"] in (4, 5)
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], tracebacks[0].getMessage()
