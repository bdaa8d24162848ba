"""Core :class:`~bot.messages.Message` -> an Adaptive Card 1.5, the version Teams renders on desktop, web and mobile.

Buttons are ``Action.Execute`` (Universal Actions): a press reaches ``/api/messages`` as an ``adaptiveCard/action``
invoke whose ``data`` names our action and value, and the invoke's answer is the refreshed card, so quiz feedback,
RSVP state and poll counts change in place for the person who pressed. A link button (a session's Join) is an
``Action.OpenUrl``. A button that carries its form (a reflection's) is an ``Action.ShowCard`` that reveals an
``Input.Text`` and a submitting ``Action.Execute`` inside the card; a form a handler answers with is a card of its own
with the same input and submit.

Card text is Markdown, but Teams' card Markdown has no backslash escapes: the core's escapes (which keep names and
learner text inert, :mod:`bot.markup`) become the character followed by a zero-width space, which breaks link,
emphasis and code syntax exactly where the core escaped it. Titles, labels and fact titles are plain text in the
core and are made inert the same way. Teams cards hold about 28 KB; a longer body is cut with an ellipsis.
"""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Button, Message, Modal

ZWSP = "\u200b"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: The verb of the submit button of a form card; the form's own action and value travel in ``data``.
MODAL_VERB = "bw-modal"
#: The id of a form card's text input: Teams merges inputs into ``data`` by id.
INPUT_ID = "text"
MAX_TEXT = 20_000
MAX_TITLE = 200
MAX_BUTTONS = 6  # more than six Action.Execute buttons fold into an overflow menu on mobile, which hides answers
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_SPECIAL = re.compile(r"([\[\]*_`~#>|<])")
STYLES = {"primary": "positive", "danger": "destructive"}


def card_markdown(text: str) -> str:
    """The core's Markdown subset as Teams card Markdown, with every escape made inert by a zero-width space."""
    text = _ESCAPED.sub(lambda m: m.group(1) + (ZWSP if m.group(1) in "[]*_`~<>#|" else ""), text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1].rstrip() + "…"


def plain(text: str, limit: int = MAX_TITLE) -> str:
    """Plain text (a title, a label) that card Markdown leaves as typed."""
    text = _SPECIAL.sub(lambda m: m.group(1) + ZWSP, text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def marker(delivery_id: int, part: int) -> str:
    """The deterministic element id that marks part ``part`` of delivery ``delivery_id`` inside its card."""
    return f"bw-d{delivery_id}-p{part}"


def action(button: Button) -> dict[str, Any]:
    """One ``Action.Execute``; ``verb`` is the core's stable ``bw:<action>:<value>``, ``data`` the same in parts.
    A link button (Join) is an ``Action.OpenUrl`` that opens its http(s) URL in one tap."""
    if button.link:
        return {"type": "Action.OpenUrl", "title": button.label[:80], "url": button.link}
    if button.form is not None:
        # Revealed by the client with no round trip; its submit is the same invoke a form card's is.
        inline = {"type": "AdaptiveCard", "body": _form_body(button.form), "actions": [_submit(button.form)]}
        return {"type": "Action.ShowCard", "title": button.label[:80], "id": button.action_id, "card": inline}
    rendered: dict[str, Any] = {
        "type": "Action.Execute",
        "title": button.label[:80],
        "verb": button.action_id,
        "data": {"bw": button.action, "v": button.value},
    }
    if button.style in STYLES:
        rendered["style"] = STYLES[button.style]
    return rendered


def _envelope(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body}
    if actions:
        card["actions"] = actions
    card["msteams"] = {"width": "Full"}
    return card


def render(message: Message, files: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The Adaptive Card of ``message``; ``files`` are (title, URL) of its attachments (an ``.ics`` invite), each an
    ``Action.OpenUrl`` (a bot cannot attach a file to a personal chat without asking consent first)."""
    body: list[dict[str, Any]] = []
    if message.title:
        body.append({"type": "TextBlock", "text": plain(message.title), "weight": "Bolder", "size": "Medium",
                     "wrap": True})
    if message.body:
        body.append({"type": "TextBlock", "text": card_markdown(message.body), "wrap": True})
    elif not message.title:
        body.append({"type": "TextBlock", "text": card_markdown(message.text), "wrap": True})
    if message.fields:
        facts = [{"title": plain(f.label, 100), "value": card_markdown(f.value)} for f in message.fields]
        body.append({"type": "FactSet", "facts": facts})
    if message.context:
        body.append({"type": "TextBlock", "text": card_markdown(message.context), "isSubtle": True,
                     "size": "Small", "wrap": True})
    if message.delivery_id is not None and body:
        body[0]["id"] = marker(message.delivery_id, message.part)
    links = [{"type": "Action.OpenUrl", "title": title[:80], "url": url} for title, url in files or []]
    return _envelope(body, [action(b) for b in message.buttons[:MAX_BUTTONS]] + links + _overflow(message.buttons))


def _overflow(buttons: list[Button]) -> list[dict[str, Any]]:
    """Buttons beyond what one row shows well: kept, as secondary actions in the card's overflow menu."""
    extra = []
    for button in buttons[MAX_BUTTONS:]:
        rendered = action(button)
        rendered["mode"] = "secondary"
        extra.append(rendered)
    return extra


def _form_body(modal: Modal) -> list[dict[str, Any]]:
    return [{"type": "Input.Text", "id": INPUT_ID, "label": plain(modal.label, 100), "isMultiline": True,
             "isRequired": True, "placeholder": modal.placeholder[:150]}]


def _submit(modal: Modal) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": modal.submit_label[:80], "verb": MODAL_VERB,
            "data": {"bw": modal.action, "v": modal.value}}


def form(modal: Modal) -> dict[str, Any]:
    """A form card (a form a handler answers with): the title, one multi-line text input and the submit button.
    A button that carries its form reveals the same input inline instead (``Action.ShowCard``)."""
    title = {"type": "TextBlock", "text": plain(modal.title), "weight": "Bolder", "size": "Medium", "wrap": True}
    return _envelope([title, *_form_body(modal)], [_submit(modal)])


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    """A card as an activity attachment."""
    return {"contentType": CONTENT_TYPE, "content": card}
