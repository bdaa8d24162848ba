"""Build real signed Slack requests, in the payload shapes Slack documents, and post them.

Slack signs every request with ``v0=HMAC-SHA256(signing_secret, "v0:{timestamp}:{raw body}")`` in
``X-Slack-Signature`` and sends the timestamp in ``X-Slack-Request-Timestamp``. Events arrive as JSON
(``event_callback`` envelopes); interactivity (block_actions, view_submission) as a form with one ``payload`` field
holding JSON; slash commands as a plain form.

From a shell, to exercise a running ``blendwise run`` (HTTP mode)::

    python -m tests.fakes.slack_signing action --url http://127.0.0.1:3000/slack/events \\
        --secret "$SLACK_SIGNING_SECRET" --user U123 --action-id bw:lesson.done:42 --replay 2
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
#: Where replies go when a test does not pass a response_url: a closed local port, so nothing ever leaves the host.
NOWHERE = "http://127.0.0.1:9/response-url-not-set"
TEAM_ID = "T0BLENDWS"
APP_ID = "A0BLENDWS"

#: Ids (trigger ids, message ts) count from a per-process random start: Slack never repeats a trigger id, and the
#: bot treats a repeated one as a retry, so two runs of this module's command line must not reuse each other's ids.
_ids = itertools.count(1 + secrets.randbelow(10**6) * 1000)


def _next(prefix: str) -> str:
    return f"{prefix}{next(_ids):08d}"


@dataclass(frozen=True)
class SignedRequest:
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: str
    elapsed: float


def signature(secret: str, timestamp: int | str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def sign(secret: str, body: str, content_type: str, *, timestamp: int | None = None) -> SignedRequest:
    ts = int(time.time()) if timestamp is None else timestamp
    return SignedRequest(
        body=body,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(secret, ts, body),
        },
    )


# --------------------------------------------------------------------------------------------------------------
# Payloads


def event_callback(
    event: dict[str, Any], *, team_id: str = TEAM_ID, event_id: str | None = None
) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _next("Ev"),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": "U0BLENDBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": _next("4-eyJldCI6Im1lc3NhZ2Ui"),
    }


def message_event(
    *,
    user: str,
    channel: str,
    text: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    ts = ts or f"{int(time.time())}.{next(_ids):06d}"
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": channel_type,
        "team": TEAM_ID,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def app_home_opened_event(*, user: str, channel: str = "D0HOME0001", tab: str = "home") -> dict[str, Any]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }


def block_actions_payload(
    *,
    user_id: str,
    action_id: str,
    value: str | None = None,
    team_id: str = TEAM_ID,
    channel_id: str = "D0LEARNER1",
    message_ts: str = "1700000000.000100",
    response_url: str = NOWHERE,
    trigger_id: str | None = None,
    action_ts: str | None = None,
    container_type: str = "message",
    is_ephemeral: bool = False,
    user_name: str = "learner",
) -> dict[str, Any]:
    """A ``block_actions`` payload for one button click on a message (or a Home view with container_type="view")."""
    action: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "block_id": "b1",
        "text": {"type": "plain_text", "text": "Button", "emoji": True},
        "action_ts": action_ts or f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id or f"{next(_ids)}.{next(_ids)}.0123456789abcdef",
        "team": {"id": team_id, "domain": "blendwise-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if container_type == "view":
        payload["container"] = {"type": "view", "view_id": "V0HOME0001"}
        payload["view"] = {"id": "V0HOME0001", "type": "home", "team_id": team_id}
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        payload["channel"] = {"id": channel_id, "name": "directmessage"}
        payload["message"] = {"type": "message", "ts": message_ts, "bot_id": "B0BLENDBOT", "text": "..."}
        payload["response_url"] = response_url
    return payload


def view_submission_payload(
    *,
    user_id: str,
    private_metadata: str,
    text: str,
    team_id: str = TEAM_ID,
    view_id: str | None = None,
    callback_id: str = "bw_modal",
    block_id: str = "bw_input",
    input_action_id: str = "bw_text",
) -> dict[str, Any]:
    view_id = view_id or _next("V")
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "blendwise-test"},
        "user": {"id": user_id, "username": "learner", "name": "learner", "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{next(_ids)}.{next(_ids)}.fedcba9876543210",
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "hash": "1700000000.abcdef12",
            "state": {"values": {block_id: {input_action_id: {"type": "plain_text_input", "value": text}}}},
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def slash_command_form(
    *,
    user_id: str,
    text: str,
    command: str = "/learn",
    team_id: str = TEAM_ID,
    channel_id: str = "C0COHORT01",
    response_url: str = NOWHERE,
    trigger_id: str | None = None,
    user_name: str = "learner",
) -> dict[str, str]:
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": "blendwise-test",
        "channel_id": channel_id,
        "channel_name": "cohort",
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or f"{next(_ids)}.{next(_ids)}.0a1b2c3d4e5f",
    }


# --------------------------------------------------------------------------------------------------------------
# Signed requests


def event_request(secret: str, envelope: dict[str, Any], *, timestamp: int | None = None) -> SignedRequest:
    return sign(secret, json.dumps(envelope), "application/json", timestamp=timestamp)


def interaction_request(
    secret: str, payload: dict[str, Any], *, timestamp: int | None = None
) -> SignedRequest:
    body = urlencode({"payload": json.dumps(payload)})
    return sign(secret, body, "application/x-www-form-urlencoded", timestamp=timestamp)


def command_request(secret: str, form: dict[str, str], *, timestamp: int | None = None) -> SignedRequest:
    return sign(secret, urlencode(form), "application/x-www-form-urlencoded", timestamp=timestamp)


def post(
    url: str, request: SignedRequest, *, headers: dict[str, str] | None = None, timeout: float = 10
) -> HttpResult:
    """POST a (signed) request and return status, body and how long the server took to answer."""
    all_headers = {**request.headers, **(headers or {})}
    req = urllib.request.Request(url, data=request.body.encode(), headers=all_headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read().decode(), time.monotonic() - started)
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, err.read().decode(), time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send signed Slack requests to a Blendwise endpoint.")
    sub = parser.add_subparsers(dest="kind", required=True)
    action = sub.add_parser("action", help="a block_actions button click")
    action.add_argument("--action-id", required=True, help="e.g. bw:lesson.done:42")
    action.add_argument("--value", default=None)
    action.add_argument("--channel", default="D0LEARNER1")
    action.add_argument("--message-ts", default="1700000000.000100")
    action.add_argument("--response-url", default=NOWHERE)
    command = sub.add_parser("command", help="a /learn slash command")
    command.add_argument("--text", default="help")
    command.add_argument("--response-url", default=NOWHERE)
    for p in (action, command):
        p.add_argument("--url", required=True, help="the /slack/events URL")
        p.add_argument("--secret", required=True, help="the signing secret")
        p.add_argument("--user", required=True, help="the Slack user id clicking")
        p.add_argument("--team", default=TEAM_ID)
        p.add_argument("--replay", type=int, default=1, help="send the identical request this many times")
    args = parser.parse_args(argv)
    if args.kind == "action":
        value = args.value if args.value is not None else args.action_id.split(":", 2)[-1]
        payload = block_actions_payload(
            user_id=args.user,
            action_id=args.action_id,
            value=value,
            team_id=args.team,
            channel_id=args.channel,
            message_ts=args.message_ts,
            response_url=args.response_url,
        )
        signed = interaction_request(args.secret, payload)
    else:
        form = slash_command_form(
            user_id=args.user, text=args.text, team_id=args.team, response_url=args.response_url
        )
        signed = command_request(args.secret, form)
    for attempt in range(args.replay):
        extra = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"} if attempt else {}
        result = post(args.url, signed, headers=extra)
        print(
            f"attempt {attempt + 1}: HTTP {result.status} in {result.elapsed * 1000:.0f} ms {result.body[:200]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
