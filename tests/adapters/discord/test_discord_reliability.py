"""Failures and restarts: 429s, errors mapped for the outbox, RESUME, buttons surviving a restart, and secrets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.errors import AdapterError
from bot.events import ButtonPressed, InboundEvent, ModalSubmitted, Response
from bot.messages import Button, Message, Modal
from bot.ports import Recipient
from tests.adapters.discord.conftest import RecordingHandler
from tests.fakes.discord_server import FakeDiscord

pytestmark = [pytest.mark.discord, pytest.mark.timeout(60)]

MESSAGES = r"/channels/\d+/messages"
ROOT = Path(__file__).resolve().parents[3]


def learner(fake: FakeDiscord) -> Recipient:
    return Recipient("discord", str(fake.world.guild_id), str(fake.world.learner_ids[0]))


def test_a_short_rate_limit_is_waited_out_by_discord_py(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    fake.wait_for_session()
    fake.rate_limit("POST", MESSAGES, times=2, retry_after=0.05)
    ref = adapter.send_direct(learner(fake), Message(text="Hello"))
    calls = fake.calls_to("POST", MESSAGES)
    assert [c.status for c in calls] == [429, 429, 200]
    assert ref.ts == fake.messages_in(int(ref.channel))[-1]["id"]


def test_a_long_rate_limit_is_a_retryable_error_with_retry_after(
    adapter: DiscordAdapter, fake: FakeDiscord
) -> None:
    fake.rate_limit("POST", MESSAGES, times=1, retry_after=120)
    with pytest.raises(AdapterError) as err:
        adapter.send_direct(learner(fake), Message(text="Hello"))
    assert err.value.retryable is True
    assert err.value.retry_after == 120
    assert len(fake.calls_to("POST", MESSAGES)) == 1  # not slept through: the outbox backs off instead


def test_a_global_rate_limit_is_also_waited_out(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    fake.rate_limit("POST", MESSAGES, times=1, retry_after=0.05, is_global=True)
    adapter.send_direct(learner(fake), Message(text="Hello"))
    assert [c.status for c in fake.calls_to("POST", MESSAGES)] == [429, 200]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(403, 50007, False), (404, 10003, False), (400, 50035, False), (503, 0, True)],
)
def test_http_errors_map_to_adapter_errors(
    adapter: DiscordAdapter, fake: FakeDiscord, status: int, code: int, retryable: bool
) -> None:
    fake.fail_next("POST", MESSAGES, status=status, code=code, message="refused")
    with pytest.raises(AdapterError) as err:
        adapter.send_direct(learner(fake), Message(text="Hello"))
    assert err.value.retryable is retryable
    assert f"HTTP {status}" in str(err.value)


def test_bad_ids_and_unknown_cohorts_are_not_retryable(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    with pytest.raises(AdapterError, match="not a Discord id") as err:
        adapter.send_direct(Recipient("discord", "g", "U123ABC"), Message(text="x"))
    assert err.value.retryable is False
    with pytest.raises(AdapterError, match="cohort 'cohort-z'"):
        adapter.send_channel(str(fake.world.guild_id), "cohort-z", Message(text="x"))


def test_calls_before_start_are_retryable_errors(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    with pytest.raises(AdapterError, match="not connected") as err:
        make_adapter().send_direct(learner(fake), Message(text="x"))
    assert err.value.retryable is True


def test_a_bad_token_fails_start_without_showing_it(
    make_adapter: Callable[..., DiscordAdapter], caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(token="wrong-token-0c1d")
    with pytest.raises(AdapterError, match="refused the bot token") as err:
        adapter.start(RecordingHandler())
    assert err.value.retryable is False
    assert "wrong-token-0c1d" not in str(err.value) and "wrong-token-0c1d" not in caplog.text


def test_the_token_is_never_logged(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make_adapter()
    adapter.start(RecordingHandler())
    ref = adapter.send_direct(learner(fake), Message(text="x", buttons=[Button("Go", "go", "1")]))
    fake.wait_for_ack(fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:go:1"))
    adapter.stop()
    assert caplog.records
    assert fake.token not in caplog.text


def test_reconnect_resumes_on_the_resume_gateway_url(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    session = fake.wait_for_session()
    fake.force_reconnect()
    fake.wait_until(lambda: session.resumed == 1 and session.ws is not None, what="a RESUME")
    assert len(fake.sessions) == 1  # resumed, not re-identified
    assert session.ws is not None
    ref = adapter.send_direct(learner(fake), Message(text="x", buttons=[Button("Go", "go", "1")]))
    fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:go:1")
    handler.wait_for(ButtonPressed)


def test_resume_went_to_the_url_from_ready(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    session = fake.wait_for_session()
    assert session.identify["token"] == fake.token
    fake.force_reconnect()
    fake.wait_until(lambda: session.resumed == 1, what="a RESUME")
    assert adapter.client.ws is not None
    assert str(adapter.client.ws.gateway) == fake.resume_gateway_url


def test_buttons_and_forms_from_before_a_restart_still_work(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    def opens_form(event: InboundEvent) -> Response:
        return Response(modal=Modal("Reflection", "One thing you learned", "reflect", "9"))

    before = make_adapter()
    before.start(RecordingHandler(opens_form))
    ref = before.send_direct(learner(fake), Message(text="Quiz", buttons=[Button("B", "answer", "q7:b")]))
    reflect = before.send_direct(learner(fake), Message(text="Reflect", buttons=[Button("Go", "open", "9")]))
    opened = fake.press_button(fake.world.learner_ids[0], int(reflect.ts), "bw:open:9")
    assert fake.wait_for_ack(opened)["type"] == 9
    before.stop()

    handler = RecordingHandler()
    after = make_adapter()  # a new process: a new client that never saw those messages
    after.start(handler)
    pressed = fake.press_button(fake.world.learner_ids[0], int(ref.ts), "bw:answer:q7:b")
    fake.wait_for_ack(pressed)
    (event,) = handler.wait_for(ButtonPressed)
    assert (event.action, event.value, event.message) == ("answer", "q7:b", ref)

    submitted = fake.submit_modal(fake.world.learner_ids[0], opened, "Listen first")
    fake.wait_for_ack(submitted)
    (form,) = handler.wait_for(ModalSubmitted)
    assert (form.action, form.value, form.text) == ("reflect", "9", "Listen first")


def test_profile_reads_the_member(adapter: DiscordAdapter, fake: FakeDiscord) -> None:
    w = fake.world
    profile = adapter.profile(str(w.guild_id), str(w.lead_id))
    assert profile is not None and profile.name == "Lena Lead" and profile.tz is None
    assert adapter.profile(str(w.guild_id), str(w.outsider_id)) is None
    assert fake.calls_to("GET", rf"/guilds/{w.guild_id}/members/{w.lead_id}")


def test_stop_is_idempotent_and_start_again_works(
    make_adapter: Callable[..., DiscordAdapter], fake: FakeDiscord
) -> None:
    adapter = make_adapter()
    adapter.start(RecordingHandler())
    adapter.stop()
    adapter.stop()
    adapter.start(RecordingHandler())
    assert adapter.send_direct(learner(fake), Message(text="back")).platform == "discord"


def test_the_fake_server_runs_as_a_script() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.discord_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        api = proc.stdout.readline().strip()
        gateway = proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)
    assert api.startswith("DISCORD_API_URL=http://127.0.0.1:") and api.endswith("/api/v10")
    assert gateway.startswith("DISCORD_GATEWAY_URL=ws://127.0.0.1:")


def _http(method: str, url: str, body: dict[str, object] | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_gateway_discovery_points_back_at_the_fake(fake: FakeDiscord) -> None:
    request = urllib.request.Request(
        fake.api_url + "/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read())["url"] == fake.gateway_url
    assert _http("GET", fake.api_url + "/gateway") == {"url": fake.gateway_url}


def test_the_control_api_drives_a_button_press(
    adapter: DiscordAdapter, fake: FakeDiscord, handler: RecordingHandler
) -> None:
    """What ``blendwise run`` against the scripted fake relies on: press a delivered button from outside."""
    ref = adapter.send_direct(learner(fake), Message(text="Lesson", buttons=[Button("Done", "done", "5")]))
    world = _http("GET", fake.base_url + "/_fake/world")
    assert isinstance(world, dict)
    body = {"user_id": world["learner_ids"][0], "message_id": ref.ts, "custom_id": "bw:done:5"}  # type: ignore[index]
    pressed = _http("POST", fake.base_url + "/_fake/press", body)
    (event,) = handler.wait_for(ButtonPressed)
    assert event.dedupe_key == f"discord:interaction:{pressed['id']}"  # type: ignore[index]
    fake.wait_for_ack(int(pressed["id"]))  # type: ignore[index]
    calls = _http("GET", fake.base_url + "/_fake/calls")
    assert any(c["path"].startswith("/interactions/") for c in calls)  # type: ignore[union-attr,index]
