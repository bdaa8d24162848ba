"""Keeping person and learner text inert inside the core's Markdown subset.

Message bodies are Markdown (:mod:`bot.messages`), and every adapter turns ``[text](url)`` into a live link and
``**x**`` into bold. Names come from rosters and platform profiles, answers and reflections from learners, cohort
names and poll options from chat commands: none of that is Markdown, and a display name such as
``[click me](https://evil.example/x)`` must show as those characters, not as a disguised link in a manager's
digest. So text that is not authored Markdown goes through :func:`inert` before it joins a Markdown string.

:func:`inert` uses the backslash escapes of CommonMark, which Discord renders natively; the Slack renderer and the
console read them back (:func:`unescape`). Authored Markdown (lesson bodies, rendered content templates) is wrapped
in :class:`Markdown`, the marker that :func:`finalize` lets through unchanged. Every Jinja environment that produces
Markdown sets ``finalize=finalize``, so a template variable is escaped unless it is marked: forgetting to escape
fails safe (a stray backslash at worst), forgetting to mark fails visibly in tests.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

#: Characters with a meaning somewhere in the subset (emphasis, code, links, strike, spoilers, escapes). ``<``,
#: ``>`` and ``@`` are left to the adapters, which already neutralise mentions and platform links.
INLINE_SPECIAL = "\\`*_[]~|"
#: Line starts that make a heading, a list item or a quote.
_LINE_START_RE = re.compile(r"^(\s*)([#>+\-])", re.MULTILINE)
_INLINE_RE = re.compile("([" + re.escape(INLINE_SPECIAL) + "])")
#: Every ASCII punctuation character may be backslash-escaped (CommonMark); only those are read back.
_ESCAPED_RE = re.compile(r"\\([!-/:-@\[-`{-~])")


class Markdown(str):
    """Text that is already Markdown of the core subset (authored content, or built from :func:`inert` pieces)."""

    __slots__ = ()


def inert(text: object) -> Markdown:
    """``text`` escaped so that it renders as exactly its characters inside a Markdown body.

    Args:
        text: a name, an answer, a cohort name...; a :class:`Markdown` value is returned unchanged, so escaping
            twice is harmless.

    Returns:
        Markdown: the escaped text.
    """
    if isinstance(text, Markdown):
        return text
    raw = str(text)
    # Names, options and objectives recur in every message of a batch: their two regex passes run once.
    return _inert_short(raw) if len(raw) <= 200 else _inert(raw)


def _inert(raw: str) -> Markdown:
    escaped = _INLINE_RE.sub(r"\\\1", raw)
    return Markdown(_LINE_START_RE.sub(r"\1\\\2", escaped))


_inert_short = lru_cache(maxsize=8192)(_inert)


def inert_line(text: object) -> Markdown:
    """Like :func:`inert`, for one-line slots (a name in a list item): newlines become spaces first, so a
    multi-line display name cannot open a new list item or heading."""
    if isinstance(text, Markdown):
        return text
    return inert(" ".join(str(text).split()))


def unescape(text: str) -> str:
    """The characters an escaped Markdown string shows: ``\\[`` -> ``[``. For plain-text slots (the console,
    Discord footers) that show Markdown source."""
    return _ESCAPED_RE.sub(r"\1", text)


def finalize(value: Any) -> Any:
    """Jinja ``finalize`` hook: every ``{{ value }}`` that is a string and not :class:`Markdown` is escaped.

    Numbers and ``None`` pass through, so arithmetic and ``is none`` tests in templates are unaffected.
    """
    if isinstance(value, str) and not isinstance(value, Markdown):
        return inert(value)
    return value
