"""The Teams driver for the contract suite: the fake Bot Connector and token issuer plus the real TeamsAdapter.

The learner side is played in Teams' wire format: every activity is POSTed to ``/api/messages`` with a bearer token
the fake issuer signed (RS256) and the real SDK validates; installs are ``installationUpdate`` activities, button
presses are ``adaptiveCard/action`` invokes (their answer is applied to the card as the Teams client does), forms
are the same invoke with the input's text, thread replies are channel ``message`` activities in the thread's
conversation (``;messageid=``) and ``/learn`` is a personal message ``learn <args>``. What a learner sees is read
back from the cards the fake connector stored.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bot.adapters.teams.adapter import TeamsAdapter
from bot.adapters.teams.auth import InboundAuth, auth_configuration
from bot.adapters.teams.cards import MODAL_VERB, ZWSP
from tests.contract.drivers import Btn, Msg
from tests.fakes.teams_connector import APP_ID, CHANNEL, ISSUER, TENANT, FakeTeams, Posted


def card_texts(card: dict[str, Any] | None) -> tuple[str, list[str]]:
    """(title, every text) of an Adaptive Card, as a reader sees them (zero-width spaces are invisible)."""
    title, texts = "", []
    for element in (card or {}).get("body", []):
        if element.get("type") == "TextBlock":
            if element.get("weight") == "Bolder" and not title:
                title = element["text"]
            texts.append(element["text"])
        elif element.get("type") == "FactSet":
            texts += [f"{f['title']}: {f['value']}" for f in element["facts"]]
        elif element.get("type") == "Input.Text":
            texts.append(element.get("label", ""))
    return title.replace(ZWSP, ""), [t.replace(ZWSP, "") for t in texts]


class TeamsDriver:
    platform = "teams"
    workspace = TENANT
    channel = CHANNEL

    def __init__(self, **teams: Any) -> None:
        self.fake = FakeTeams().start()
        self.adapter = TeamsAdapter(
            app_id=APP_ID,
            auth=InboundAuth(auth_configuration(APP_ID, issuers=[ISSUER]), self.fake.metadata_url),
            tokens=self.fake.tokens,
            service_url=self.fake.service_url,
            tenant_id=TENANT,
            port=0,
            **teams,
        )
        self.forms: dict[str, Posted] = {}

    def start(self, dispatcher: Any) -> None:
        self.adapter.bind(dispatcher.factory)
        if getattr(dispatcher, "clock", None) is not None:
            self.adapter.clock = self.adapter.meetings.clock = dispatcher.clock
        self.adapter.start(dispatcher)

    def stop(self) -> None:
        try:
            self.adapter.stop()
        finally:
            self.fake.stop()

    # ------------------------------------------------------------------ the wire
    def post(self, activity: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        """POST an activity to the bot with a signed token; (status, JSON answer or None)."""
        request = urllib.request.Request(
            f"{self.adapter.url}/api/messages",
            data=json.dumps(activity).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self.fake.token() if token is None else token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read()
                return answer.status, json.loads(body) if body else None
        except urllib.error.HTTPError as err:
            return err.code, None

    def send(self, activity: dict[str, Any]) -> Any:
        status, body = self.post(activity)
        assert status == 200, (status, activity["type"])
        return body

    # ------------------------------------------------------------------ people
    def uid(self, key: str) -> str:
        return key

    def add_user(self, user_id: str, name: str, tz: str) -> None:
        """The app is installed for the person (an admin's setup policy does this for a whole group)."""
        self.fake.add_member(user_id, name)
        self.send(self.fake.activity(
            "installationUpdate", user_id, display=name, action="add",
            entities=[{"type": "clientInfo", "locale": "en-GB", "timezone": tz}],
        ))

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _msg(posted: Posted) -> Msg:
        title, texts = card_texts(posted.card)
        buttons = []
        for action in (posted.card or {}).get("actions", []):
            data = action.get("data") or {}
            if action.get("type") == "Action.Execute" and action.get("verb") != MODAL_VERB:
                buttons.append(Btn(data["bw"], data["v"], action))
            elif action.get("type") == "Action.ShowCard" and str(action.get("id", "")).startswith("bw:"):
                _, name, value = action["id"].split(":", 2)
                buttons.append(Btn(name, value, action))
        summary = str(posted.activity.get("summary") or posted.activity.get("text") or "")
        return Msg(title, "\n".join([summary.replace(ZWSP, ""), *texts]), buttons, posted)

    def inbox(self, user_id: str) -> list[Msg]:
        return [self._msg(p) for p in self.fake.in_conversation(self.fake.personal(user_id))]

    def channel_posts(self) -> list[Msg]:
        return [self._msg(p) for p in self.fake.in_channel(self.channel) if p.thread == p.id]

    def raw_channel_texts(self) -> list[str]:
        return [self._msg(p).text for p in self.fake.in_channel(self.channel)]

    def calendar_files(self, user_id: str) -> list[bytes]:
        """The ``.ics`` invites linked from the user's cards, fetched from the adapter as Teams' browser would."""
        out = []
        cards = [
            attachment["content"]
            for posted in self.fake.in_conversation(self.fake.personal(user_id))
            for activity in (*posted.history, posted.activity)  # an answered invite keeps its link in the history
            for attachment in activity.get("attachments") or []
        ]
        for card in cards:
            for action in card.get("actions", []):
                url = action.get("url", "") if action.get("type") == "Action.OpenUrl" else ""
                if "/api/files?" in url and url.endswith(".ics"):
                    with urllib.request.urlopen(url, timeout=30) as answer:
                        out.append(answer.read())
        return out

    def declared_subcommands(self) -> list[str] | None:
        return None

    # ------------------------------------------------------------------ acting
    def invoke(self, user_id: str, posted: Posted, action: dict[str, Any]) -> Any:
        activity = self.fake.activity(
            "invoke", user_id, conversation=posted.conversation, name="adaptiveCard/action",
            replyToId=posted.id, value={"action": action, "trigger": "manual"},
        )
        answer = self.send(activity)
        if answer and answer.get("type") == "application/vnd.microsoft.card.adaptive":
            self.fake.show_card(posted.id, answer["value"])
        return answer

    def press(self, user_id: str, msg: Msg, btn: Btn) -> None:
        posted: Posted = msg.ref
        if btn.raw.get("type") == "Action.ShowCard":
            self.forms[user_id] = Posted(posted.conversation, posted.id, {"attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": btn.raw["card"]}]})
            return  # the client reveals the inline form; nothing reaches the bot until it is submitted
        self.invoke(user_id, posted, btn.raw)
        shown = self.fake.find(posted.id)
        if shown is not None and any(a.get("verb") == MODAL_VERB for a in (shown.card or {}).get("actions", [])):
            self.forms[user_id] = shown

    def submit_modal(self, user_id: str, text: str) -> None:
        posted = self.forms.pop(user_id)
        submit = next(a for a in (posted.card or {})["actions"] if a.get("verb") == MODAL_VERB)
        self.invoke(user_id, posted, {**submit, "data": {**submit["data"], "text": text}})

    def reply_in_thread(self, user_id: str, post: Msg, text: str) -> None:
        posted: Posted = post.ref
        self.send(self.fake.activity("message", user_id, conversation=f"{self.channel};messageid={posted.id}",
                                     text=text, replyToId=posted.id))

    def command(self, user_id: str, text: str) -> str:
        before = len(self.fake.in_conversation(self.fake.personal(user_id)))
        self.send(self.fake.activity("message", user_id, text=f"learn {text}"))
        replies = self.fake.in_conversation(self.fake.personal(user_id))[before:]
        assert replies, "a command always gets a reply"
        return "\n".join(self._msg(p).text for p in replies)
