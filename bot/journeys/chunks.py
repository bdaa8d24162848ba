"""Cutting Markdown into chat-sized messages without breaking what the reader sees.

A lesson longer than one message is sent as several. Where it is cut matters: a list torn from the sentence that
introduces it ("Three questions help:" at the bottom of one message, the questions at the top of the next) reads
as two unrelated messages, and a cut inside ``**bold**`` or a ``[link](url)`` leaves stray asterisks or a broken
link on both sides. So cuts fall, in order of preference, between paragraphs (a lead-in sentence ending with
``:`` stays with the list it introduces), between list items, after a sentence, and last between words, and
never inside an inline span.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.messages import Message

#: The longest message body we send. Chat apps fold longer text behind "Show more" or cap a card at a few thousand, and
#: on a phone anything longer is a wall of text.
MAX_CHUNK = 1200

_SPANS = re.compile(
    r"\*\*.+?\*\*"  # bold
    r"|\[[^\]\n]*\]\([^)\n]*\)"  # link
    r"|`[^`\n]*`"  # code
    r"|~~.+?~~"  # strike
    r"|(?<![\w\\])_(?!\s)[^_\n]+?(?<!\s)_(?!\w)"  # italic
    r"|(?<![\w*\\])\*(?![\s*])[^*\n]+?(?<![\s*])\*(?![\w*])",  # italic with a star
    re.S,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_ITEM_START = re.compile(r"\n(?=\s*(?:[-*+]|\d+[.)])\s)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s)")


def _inside_span(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SPANS.finditer(text)]


def _safe(cut: int, spans: list[tuple[int, int]]) -> bool:
    return not any(start < cut < end for start, end in spans)


def _cut_point(text: str, limit: int) -> int:
    """The best place at or before ``limit`` to cut ``text``: a line, a sentence end, a space, outside spans.

    It runs for every lesson teaser the sender composes, so it looks from ``limit`` backwards and stops at the
    first acceptable place instead of checking every candidate against every span.
    """
    spans: list[tuple[int, int]] = []
    for m in _SPANS.finditer(text):  # spans that start past the window cannot contain a cut inside it
        if m.start() > limit:
            break
        spans.append((m.start(), m.end()))
    window = text[: limit + 1]
    lines = [m.start() for m in re.finditer(r"\n", window) if m.start() > 0]
    sentences = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= limit]
    spaces = [m.start() for m in re.finditer(r" ", window) if m.start() > 0]
    for candidates in (lines, sentences, spaces):
        for c in reversed(candidates):
            if c < limit // 3:
                break  # ascending: every earlier one is too short as well
            if c <= limit and _safe(c, spans):
                return c
    return next((c for c in reversed(spaces) if _safe(c, spans)), limit)


@lru_cache(maxsize=2048)
def truncate_markdown(text: str, limit: int, ellipsis: str = " ...") -> str:
    """``text`` shortened to at most ``limit`` characters (ellipsis included) at a word outside any span.

    Cached: a batch composes the same lesson for many learners, and most lessons read the same for all of them.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = _cut_point(text, max(limit - len(ellipsis), 1))
    return text[:cut].rstrip() + ellipsis


def _blocks(text: str) -> list[str]:
    """Paragraphs, with a lead-in paragraph that ends with ``:`` kept together with the list that follows it."""
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        previous = blocks[-1] if blocks else ""
        if previous.rstrip().rstrip("*_").endswith(":") and _LIST_ITEM.match(para):
            blocks[-1] = f"{previous}\n\n{para}"
        else:
            blocks.append(para)
    return blocks


def _pieces(block: str, limit: int) -> list[str]:
    """A block that fits, or the block cut at list items, lines, sentences, then words (never inside a span)."""
    pieces: list[str] = []
    rest = block
    while len(rest) > limit:
        items = [m.start() for m in _ITEM_START.finditer(rest) if 0 < m.start() <= limit]
        cut = items[-1] if items else _cut_point(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def split_markdown(text: str, limit: int = MAX_CHUNK) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters at the most natural boundaries.

    Paragraphs are packed greedily; a paragraph (or a lead-in plus its list) that is too long on its own is cut
    between list items, then lines, sentences and words, never inside ``**bold**``, ``_italic_``, ``code`` or a
    link. Cached like :func:`truncate_markdown` (a new list each call: callers may change theirs).
    """
    return list(_split_markdown(text, limit))


@lru_cache(maxsize=512)
def _split_markdown(text: str, limit: int) -> tuple[str, ...]:
    text = text.strip()
    if len(text) <= limit:
        return (text,)
    chunks: list[str] = []
    current = ""
    for block in _blocks(text):
        for piece in _pieces(block, limit):
            if current and len(current) + 2 + len(piece) > limit:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return tuple(chunks)


def in_parts(message: Message) -> list[Message]:
    """``message`` as delivered: a body too long for one message (:data:`MAX_CHUNK`) goes out in parts cut at the
    most natural boundaries (:func:`split_markdown`), the later ones titled ``Title (2/3)`` with their own preview
    text; the buttons and the context line close the last part. A short body is the message itself."""
    chunks = split_markdown(message.body)
    if len(chunks) == 1:
        return [message]
    parts = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        title = message.title if i == 0 else f"{message.title} ({i + 1}/{len(chunks)})"
        parts.append(
            message.revised(
                text=message.text if i == 0 else f"{title}: {truncate_markdown(chunk, 150)}",
                title=title,
                body=chunk,
                buttons=message.buttons if last else [],
                context=message.context if last else "",
            )
        )
    return parts
