"""Core :class:`~bot.messages.Message` objects -> Slack Block Kit.

Everything a person wrote (authors and learners alike) is escaped for Slack first: ``&``, ``<`` and ``>`` become
entities, so no text can form ``<!channel>``, ``<!here>`` or ``<@U123>``. The only ``<...>`` sequences in our
output are the links this module builds itself from ``[text](http...)``. We never pass ``link_names`` or
``parse=full``, so a bare ``@here`` stays text.

``plain_text`` objects (header, button labels, modal title) are not entity-escaped: Slack does not parse markup or
mentions in them, and escaping would show a literal ``&amp;`` on some clients.

Block Kit limits honoured here: 3,000 characters per section text, 10 fields of 2,000 characters per section,
25 elements per actions block, 150 characters per header, 75 per button label, 255 per action_id, 50 blocks per
message (100 in a Home view). A body that needs more than 50 blocks becomes several messages.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from bot.messages import Button, Field, Message, Modal

#: The ``metadata.event_type`` we attach to every delivery, so a send with an unknown outcome can be found again.
DELIVERY_EVENT_TYPE = "blendwise_delivery"
#: Prefix of our action ids (``bw:<action>:<value>``, from :attr:`bot.messages.Button.action_id`).
ACTION_PREFIX = "bw:"
#: Ids inside the reflection modal, read back by :mod:`bot.adapters.slack.convert`.
MODAL_CALLBACK_ID = "bw_modal"
MODAL_BLOCK_ID = "bw_input"
MODAL_INPUT_ACTION_ID = "bw_text"

SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
FIELDS_PER_SECTION = 10
BUTTONS_PER_ACTIONS = 25
HEADER_LIMIT = 150
BUTTON_LABEL_LIMIT = 75
ACTION_ID_LIMIT = 255
CONTEXT_TEXT_LIMIT = 2000
MESSAGE_BLOCK_LIMIT = 50
HOME_BLOCK_LIMIT = 100
FALLBACK_TEXT_LIMIT = 3000
MODAL_TITLE_LIMIT = 24
MODAL_LABEL_LIMIT = 2000
MODAL_PLACEHOLDER_LIMIT = 150
MODAL_INPUT_MAX_LENGTH = 3000
PRIVATE_METADATA_LIMIT = 3000

#: Kinds whose buttons are equal choices: never promote the first one to "primary" (it would hint at an answer).
NEUTRAL_KINDS = frozenset({"quiz", "poll", "survey"})

Block = dict[str, Any]


class TextObject(TypedDict):
    type: Literal["plain_text", "mrkdwn"]
    text: str
    emoji: NotRequired[bool]


class DeliveryMetadata(TypedDict):
    event_type: str
    event_payload: dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message ready for chat.postMessage / chat.update: fallback text, blocks and optional metadata."""

    text: str
    blocks: list[Block]
    metadata: DeliveryMetadata | None = None

    def api_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if self.metadata is not None:
            kwargs["metadata"] = self.metadata
        return kwargs


# --------------------------------------------------------------------------------------------------------------
# Text


def escape(text: str) -> str:
    """Escape Slack's three control characters. Must run before any markup of our own is added."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with an ellipsis, never inside an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def plain(text: str, limit: int) -> TextObject:
    return {"type": "plain_text", "text": truncate(" ".join(text.split()) or " ", limit), "emoji": True}


def mrkdwn(text: str) -> TextObject:
    return {"type": "mrkdwn", "text": text}


# Private-use characters mark protected spans (links, code) while inline formatting is converted.
_HOLD = "\ue000"
_BOLD = "\ue001"
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_ESCAPE_OR_CODE_RE = re.compile(r"\\([!-/:-@\[-`{-~])|`[^`\n]+`")
_MRKDWN_MARKERS = frozenset("*_~`")
ZWSP = "\u200b"
_BOLD_RE = re.compile(
    r"(?<![*\w])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![*\w])|(?<![_\w])__(?=\S)(.+?)(?<=\S)__(?![_\w])"
)
_STAR_ITALIC_RE = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LIST_RE = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_FENCE_RE = re.compile(r"^\s*```")
_SAFE_URL_RE = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
_HELD_RE = re.compile(f"{_HOLD}(\\d+){_HOLD}")


def _link(url: str, label: str) -> str:
    # ``url`` and ``label`` are already escaped; a ``|`` in the URL would end it early, so percent-encode it.
    return f"<{url.replace('|', '%7C')}|{label}>"


def _literal(char: str) -> str:
    """A character the Markdown escaped (``\\*``), as mrkdwn that shows it. mrkdwn has no escapes, so a marker
    gets a zero-width space in front: a ``*`` that follows a word character cannot open or close bold."""
    if char in _MRKDWN_MARKERS:
        return ZWSP + char
    return escape(char)


def inline(text: str) -> str:
    """Convert one line of our Markdown subset to mrkdwn. ``text`` is author Markdown, in which person and
    learner text arrives backslash-escaped (:func:`bot.markup.inert`)."""
    text = text.replace(_HOLD, "").replace(_BOLD, "")
    held: list[str] = []

    def hold(value: str) -> str:
        held.append(value)
        return f"{_HOLD}{len(held) - 1}{_HOLD}"

    # Escapes and code spans in one left-to-right pass: an escaped backtick never opens a code span.
    text = _ESCAPE_OR_CODE_RE.sub(
        lambda m: hold(_literal(m.group(1))) if m.group(1) else hold(escape(m.group(0))), text
    )
    text = escape(text)

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if not _SAFE_URL_RE.match(url):
            return m.group(0)  # javascript:, mailto: and friends stay literal text
        return hold(_link(url, _format(label)))

    text = _LINK_RE.sub(link, text)
    text = _format(text)
    while _HOLD in text:  # a link label may itself hold a code span, hence the loop
        text = _HELD_RE.sub(lambda m: held[int(m.group(1))], text)
    return text


def _format(text: str) -> str:
    text = _BOLD_RE.sub(lambda m: f"{_BOLD}{m.group(1) or m.group(2)}{_BOLD}", text)
    text = _STAR_ITALIC_RE.sub(r"_\1_", text)
    text = _STRIKE_RE.sub(r"~\1~", text)
    return text.replace(_BOLD, "*")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert a Markdown body (our subset) to escaped Slack mrkdwn, line by line."""
    lines: list[str] = []
    in_code = False
    for line in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE_RE.match(line):
            in_code = not in_code
            lines.append(escape(line.strip()))
            continue
        if in_code:
            lines.append(escape(line))
            continue
        item = _LIST_RE.match(line)
        heading = _HEADING_RE.match(line)
        if item:
            depth = len(item.group(1).expandtabs(4)) // 2
            bullet = "•" if depth == 0 else "◦"
            lines.append("    " * depth + f"{bullet} {inline(item.group(2))}")
        elif heading:
            lines.append(f"*{inline(heading.group(1))}*")
        else:
            lines.append(inline(line))
    if in_code:
        lines.append("```")  # close an unterminated fence so it does not swallow what follows
    return "\n".join(lines).strip("\n")


def slack_text_to_plain(text: str) -> str:
    """The reverse direction, for text people typed in Slack: ``<@U1|ann>`` -> ``@ann``, ``<url|label>`` ->
    ``[label](url)``, ``&lt;`` -> ``<``. The result is plain text again; renderers escape it when echoed."""

    def replace(m: re.Match[str]) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!subteam^"):
            return f"@{label or target[len('!subteam^') :]}"
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            return label or f"@{name}"
        if label and label != target:
            return f"[{label}]({target})"
        return target

    text = re.sub(r"<([^<>]+)>", replace, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --------------------------------------------------------------------------------------------------------------
# Splitting


def _units(text: str) -> list[str]:
    """Paragraphs, keeping a fenced code block (which may contain blank lines) in one unit."""
    units: list[str] = []
    current: list[str] = []
    open_fence = False
    for paragraph in re.split(r"\n{2,}", text):
        current.append(paragraph)
        open_fence ^= paragraph.count("```") % 2 == 1
        if not open_fence:
            units.append("\n\n".join(current))
            current = []
    if current:
        units.append("\n\n".join(current))
    return [u for u in units if u.strip()]


_TOKEN_RE = re.compile(r"<[^<>\n]*>|\S+|\s+")


def _hard_split(text: str, limit: int) -> list[str]:
    """Split one over-long line at whitespace, treating ``<url|label>`` links as unbreakable."""
    pieces: list[str] = []
    current = ""
    for token in _TOKEN_RE.findall(text):
        while len(token) > limit:  # a single token longer than a section: cut it, but not inside an entity
            room = limit - len(current)
            if room <= 0:
                pieces.append(current)
                current = ""
                continue
            head = token[:room]
            amp = head.rfind("&")
            if amp > 0 and ";" not in head[amp:] and room - amp <= 5:
                head = head[:amp]
            pieces.append(current + head)
            current = ""
            token = token[len(head) :]
        if len(current) + len(token) > limit:
            pieces.append(current.rstrip())
            current = token.lstrip()
        else:
            current += token
    if current.strip():
        pieces.append(current.rstrip())
    return [p for p in pieces if p.strip()]


def _split_unit(unit: str, limit: int) -> list[str]:
    if len(unit) <= limit:
        return [unit]
    pieces: list[str] = []
    current = ""
    for line in unit.split("\n"):
        for part in [line] if len(line) <= limit else _hard_split(line, limit):
            candidate = f"{current}\n{part}" if current else part
            if len(candidate) <= limit:
                current = candidate
            else:
                pieces.append(current)
                current = part
    if current:
        pieces.append(current)
    return pieces


def split_mrkdwn(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Split mrkdwn into chunks of at most ``limit`` characters at paragraph boundaries (then lines, then words)."""
    chunks: list[str] = []
    current = ""
    for unit in _units(text):
        for piece in _split_unit(unit, limit):
            candidate = f"{current}\n\n{piece}" if current else piece
            if len(candidate) <= limit:
                current = candidate
            else:
                if current:
                    chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------------------------------------------
# Blocks


def header_block(title: str) -> Block:
    return {"type": "header", "text": plain(title, HEADER_LIMIT)}


def section_blocks(body: str) -> list[Block]:
    return [{"type": "section", "text": mrkdwn(chunk)} for chunk in split_mrkdwn(markdown_to_mrkdwn(body))]


def field_blocks(fields: list[Field]) -> list[Block]:
    blocks: list[Block] = []
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        group = fields[start : start + FIELDS_PER_SECTION]
        texts = [
            mrkdwn(
                truncate(f"*{escape(' '.join(f.label.split()))}*\n{inline(f.value) or ' '}", FIELD_TEXT_LIMIT)
            )
            for f in group
        ]
        blocks.append({"type": "section", "fields": texts})
    return blocks


def _action_id(button: Button, taken: set[str]) -> str:
    base = button.action_id
    if len(base) > ACTION_ID_LIMIT - 4:
        # The value travels in the button's ``value`` field too, so a long one can be replaced by its digest here.
        digest = hashlib.sha256(button.value.encode()).hexdigest()[:16]
        base = f"{ACTION_PREFIX}{button.action}:#{digest}"[: ACTION_ID_LIMIT - 4]
    action_id, n = base, 1
    while action_id in taken:
        n += 1
        action_id = f"{base}#{n}"
    taken.add(action_id)
    return action_id


def button_element(button: Button, action_id: str, primary: bool = False) -> Block:
    element: Block = {
        "type": "button",
        "text": plain(button.label, BUTTON_LABEL_LIMIT),
        "action_id": action_id,
    }
    if button.value:
        element["value"] = button.value
    if button.link:
        # A link button (Join): Slack opens the URL itself and still reports the press, under an id that is not
        # ours (no ``bw:`` prefix), which the adapter acknowledges and otherwise ignores.
        element["url"] = button.link
        element["action_id"] = f"link-{action_id}"[:ACTION_ID_LIMIT]
    style = "primary" if primary and button.style == "default" else button.style
    if style != "default":
        element["style"] = style
    return element


def action_blocks(buttons: list[Button], kind: str, taken: set[str] | None = None) -> list[Block]:
    """Buttons in actions blocks (25 per block). The first button is the main action and is shown as primary,
    unless the author styled any button or the kind's buttons are equal choices (quiz answers)."""
    taken = set() if taken is None else taken
    promote = kind not in NEUTRAL_KINDS and all(b.style == "default" for b in buttons)
    elements = [
        button_element(b, _action_id(b, taken), primary=promote and i == 0) for i, b in enumerate(buttons)
    ]
    return [
        {"type": "actions", "elements": elements[start : start + BUTTONS_PER_ACTIONS]}
        for start in range(0, len(elements), BUTTONS_PER_ACTIONS)
    ]


def context_block(text: str) -> Block:
    return {
        "type": "context",
        "elements": [mrkdwn(truncate(inline(" ".join(text.split())), CONTEXT_TEXT_LIMIT))],
    }


@dataclass
class _Layout:
    head: list[Block]
    body: list[Block]
    tail: list[Block]


def _layout(message: Message) -> _Layout:
    head = [header_block(message.title)] if message.title.strip() else []
    body = section_blocks(message.body) if message.body.strip() else []
    tail: list[Block] = []
    if message.fields:
        tail.extend(field_blocks(message.fields))
    if message.buttons:
        tail.extend(action_blocks(message.buttons, message.kind))
    if message.context.strip():
        tail.append(context_block(message.context))
    if not head and not body and not tail:
        body = [
            {"type": "section", "text": mrkdwn(truncate(escape(message.text) or " ", SECTION_TEXT_LIMIT))}
        ]
    return _Layout(head, body, tail)


def fallback_text(message: Message) -> str:
    """The notification / screen-reader text. Slack parses it as mrkdwn, so it goes through the same escaping and
    Markdown conversion as the blocks."""
    source = " ".join((message.text.strip() or message.title.strip() or message.body.strip()).split())
    # Cut the source, not the result, so that a link we build is never cut in half.
    return inline(truncate(source, FALLBACK_TEXT_LIMIT)) or " "


def delivery_metadata(
    delivery_id: int, part: int = 1, parts: int = 1, page: int = 1, pages: int = 1
) -> DeliveryMetadata:
    """What reconciliation looks for: the outbox's delivery id, the delivery's ``part`` of ``parts`` (a long
    lesson is one delivery sent as several messages) and, when one part needs more than one Slack message, the
    ``page`` of ``pages``."""
    payload: dict[str, Any] = {"delivery_id": delivery_id}
    if parts > 1:
        payload.update(part=part, parts=parts)
    if pages > 1:
        payload.update(page=page, pages=pages)
    return {"event_type": DELIVERY_EVENT_TYPE, "event_payload": payload}


def _paginate(layout: _Layout, limit: int) -> list[list[Block]]:
    pages: list[list[Block]] = []
    current = list(layout.head)
    for block in layout.body:
        if len(current) >= limit:
            pages.append(current)
            current = []
        current.append(block)
    if current and len(current) + len(layout.tail) > limit:
        pages.append(current)
        current = []
    current.extend(layout.tail)
    pages.append(current)
    return pages


def render_message(message: Message) -> list[SlackMessage]:
    """Render a message as one Slack message, or several when the body needs more than 50 blocks.

    The buttons, fields and footer always travel in the last part, so the message the learner acts on (and that a
    quiz answer updates in place) is the last one. Every page carries the delivery metadata with the delivery's part
    and its page number.
    """
    pages = _paginate(_layout(message), MESSAGE_BLOCK_LIMIT)
    text = fallback_text(message)
    title = escape(" ".join((message.title or message.text).split()))
    rendered: list[SlackMessage] = []
    for number, blocks in enumerate(pages, start=1):
        part_text = text if number == 1 else truncate(f"{title} (continued, {number}/{len(pages)})", 300)
        metadata = None
        if message.delivery_id is not None:
            metadata = delivery_metadata(message.delivery_id, message.part, message.parts, number, len(pages))
        rendered.append(SlackMessage(part_text, blocks, metadata))
    return rendered


def render_single(message: Message) -> SlackMessage:
    """Render a message that must fit in one Slack message (an in-place update, an ephemeral reply): the parts are
    folded into one, keeping the head, as much body as fits, and the tail."""
    parts = render_message(message)
    if len(parts) == 1:
        return parts[0]
    layout = _layout(message)
    room = MESSAGE_BLOCK_LIMIT - len(layout.head) - len(layout.tail) - 1
    blocks = [*layout.head, *layout.body[:room], context_block("…"), *layout.tail]
    metadata = (
        delivery_metadata(message.delivery_id, message.part, message.parts)
        if message.delivery_id is not None
        else None
    )
    return SlackMessage(fallback_text(message), blocks, metadata)


def render_home(message: Message) -> dict[str, Any]:
    """A Home tab view (views.publish) from the dispatcher's platform-neutral summary."""
    layout = _layout(message)
    room = HOME_BLOCK_LIMIT - len(layout.head) - len(layout.tail)
    body = layout.body if len(layout.body) <= room else [*layout.body[: room - 1], context_block("…")]
    return {"type": "home", "blocks": [*layout.head, *body, *layout.tail]}


def render_modal(modal: Modal, origin: dict[str, str] | None = None) -> dict[str, Any]:
    """A modal with one multi-line text input. ``private_metadata`` carries the modal's action/value (and where it
    was opened from), so the submission routes back without any server-side state."""
    metadata: dict[str, str] = {"action": modal.action, "value": modal.value, **(origin or {})}
    encoded = json.dumps(metadata, separators=(",", ":"))
    if len(encoded) > PRIVATE_METADATA_LIMIT:
        encoded = json.dumps({"action": modal.action, "value": modal.value}, separators=(",", ":"))
    element: Block = {
        "type": "plain_text_input",
        "action_id": MODAL_INPUT_ACTION_ID,
        "multiline": True,
        "max_length": MODAL_INPUT_MAX_LENGTH,
    }
    if modal.placeholder.strip():
        element["placeholder"] = plain(modal.placeholder, MODAL_PLACEHOLDER_LIMIT)
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK_ID,
        "title": plain(modal.title or "Blendwise", MODAL_TITLE_LIMIT),
        "submit": plain(modal.submit_label or "Submit", MODAL_TITLE_LIMIT),
        "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "private_metadata": encoded,
        "blocks": [
            {
                "type": "input",
                "block_id": MODAL_BLOCK_ID,
                "label": plain(modal.label or modal.title or "Your answer", MODAL_LABEL_LIMIT),
                "element": element,
            }
        ],
    }
