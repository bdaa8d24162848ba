"""The one template loader for wording that reaches people: chat messages and the HTML report.

Learner-facing text lives in Jinja templates (``bot/templates/*.j2``, plus one folder per feature that has its
own, registered with :func:`add_search_path`), never in Python literals. There are two flavours over the same
search path, because their outputs need different treatment:

* **chat** (``*.j2``): chat Markdown, rendered without HTML autoescape. Values are escaped for each platform's
  markup by the adapters; person and learner text is made inert by a ``finalize`` function (:func:`set_finalize`)
  or a filter (:func:`add_filter`).
* **html** (``*.html.j2``): a standalone page, autoescaped, with block whitespace trimmed.

Authored program text is a different thing: it is rendered by the sandboxed environment in
:mod:`bot.journeys.render`, which must stay separate (authors are not trusted with Python attribute access).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.markup import Markdown, finalize

CORE = Path(__file__).resolve().parent / "templates"

_LEAVES = frozenset({str, Markdown, int, float, bool, type(None)})


class Unkeyable(Exception):
    """A template value that is not plain data, so a rendering with it cannot be kept."""


def frozen(value: Any) -> Any:
    """``value`` as a hashable key that keeps each value's type (text, numbers, ``None``, and dicts, lists and
    tuples of them); raises :class:`Unkeyable` for anything else."""
    kind = type(value)
    if kind in _LEAVES:
        return (kind, value)
    if kind is dict:
        return (dict, tuple((k, frozen(v)) for k, v in value.items()))
    if kind is list or kind is tuple:
        return (kind, tuple(frozen(v) for v in value))
    raise Unkeyable


class Kept:
    """Rendered texts by a :func:`frozen` key, at most ``size`` of them: full, it starts again (a drain's working set
    is a few templates times a few zones and first names, far below the size)."""

    def __init__(self, size: int = 4096) -> None:
        self._texts: dict[tuple[Any, ...], str] = {}
        self._size = size

    def get(self, key: tuple[Any, ...] | None) -> str | None:
        return None if key is None else self._texts.get(key)

    def put(self, key: tuple[Any, ...] | None, text: str) -> None:
        if key is None:
            return
        if len(self._texts) >= self._size:
            self._texts.clear()
        self._texts[key] = text

    def clear(self) -> None:
        self._texts.clear()


def _key(name: str, context: dict[str, Any]) -> tuple[Any, ...] | None:
    """A hashable key for rendering ``name`` with ``context``, or ``None`` when a value is not plain data."""
    try:
        return (name, *((k, frozen(v)) for k, v in context.items()))
    except Unkeyable:
        return None


class Templates:
    """A search path of template folders, the filters both flavours share, and the two environments.

    The environments are built on first use and rebuilt when the search path or the filters change, so a feature
    may register its folder or a filter at import time, before or after the first render.
    """

    def __init__(self, *paths: Path) -> None:
        self._paths: list[Path] = list(paths)
        self._filters: dict[str, Callable[..., Any]] = {}
        self._finalize: Callable[[Any], Any] | None = None
        self._envs: dict[str, Environment] = {}
        #: Rendered chat text by template name and context (see :meth:`chat`).
        self._memo = Kept()

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self._paths)

    def add_search_path(self, path: Path) -> None:
        """Add a feature's template folder. A file name already provided by another folder is refused.

        Templates are looked up by bare name, so a feature that shipped ``digest.j2`` would silently replace the
        core's wording; refusing at start-up names both folders instead.
        """
        path = path.resolve()
        if path in self._paths:
            return
        mine = {p.name for p in path.glob("*.j2")}
        for other in self._paths:
            clash = sorted(mine & {p.name for p in other.glob("*.j2")})
            if clash:
                raise ValueError(f"template {clash[0]} is provided by both {other} and {path}")
        self._paths.append(path)
        self._reset()

    def add_filter(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` available as ``{{ value | name }}`` in every template (chat and HTML)."""
        self._filters[name] = fn
        self._reset()

    def set_finalize(self, fn: Callable[[Any], Any] | None) -> None:
        """Pass every ``{{ value }}`` of a chat template through ``fn`` (Jinja's ``finalize``).

        This is the chat flavour's counterpart of HTML autoescape: a function that makes person and learner text
        inert in chat Markdown unless it is marked as trusted. HTML keeps its own autoescape.
        """
        self._finalize = fn
        self._reset()

    def _reset(self) -> None:
        self._envs.clear()
        self._memo.clear()

    def environment(self, flavour: str) -> Environment:
        env = self._envs.get(flavour)
        if env is None:
            env = self._envs[flavour] = self._build(flavour)
        return env

    def _build(self, flavour: str) -> Environment:
        loader = FileSystemLoader([str(p) for p in self._paths])
        # The templates ship with the package and do not change while a process runs: without ``auto_reload``
        # off, Jinja stats the file on every render (a drain renders several templates per message).
        common: dict[str, Any] = {"loader": loader, "undefined": StrictUndefined, "auto_reload": False}
        if flavour == "chat":
            # Chat Markdown, not HTML: HTML-escaping would show "&amp;" in Slack and Discord.
            env = Environment(**common, autoescape=False, finalize=self._finalize)  # noqa: S701
            # No chat template calls range, dict, cycler, joiner, lipsum or namespace; Jinja copies its globals
            # into every render's context, which was a tenth of composing a lesson in a drain.
            env.globals.clear()
        elif flavour == "html":
            env = Environment(
                **common,
                autoescape=select_autoescape(default=True, default_for_string=True),
                trim_blocks=True,
                lstrip_blocks=True,
            )
        else:
            raise ValueError(f"unknown template flavour '{flavour}' (chat or html)")
        env.filters.update(self._filters)
        return env

    def chat(self, name: str, /, **context: Any) -> str:
        """Render ``<name>.j2`` as chat Markdown, without the surrounding blank lines.

        A chat template is a pure function of its context (no globals; the filters and ``finalize`` are pure), and a
        drain renders the same few for thousands of learners with the same values (a lesson's footer, a reminder's
        nudge), so the text is kept by name and context. Only plain values make a key (text, numbers, ``None``, and
        dicts, lists and tuples of them), each with its type: ``Markdown`` and ``str`` render differently. A
        context holding anything else is rendered every time.
        """
        key = _key(name, context)
        out = self._memo.get(key)
        if out is None:
            out = self.environment("chat").get_template(f"{name}.j2").render(**context).strip()
            self._memo.put(key, out)
        return out

    def html(self, name: str, /, **context: Any) -> str:
        """Render ``<name>.html.j2`` as an autoescaped HTML page."""
        return self.environment("html").get_template(f"{name}.html.j2").render(**context)


#: The process-wide loader: the core's folder first, then the features' folders as they register. Every chat
#: value is made inert in the Markdown subset unless it is marked :class:`~bot.markup.Markdown` (authored text).
templates = Templates(CORE)
templates.set_finalize(finalize)


def template(name: str, /, **context: Any) -> Markdown:
    """Learner-facing chat text from ``<name>.j2`` (the core's or a registered feature's), as Markdown."""
    return Markdown(templates.chat(name, **context))


def add_search_path(path: Path) -> None:
    templates.add_search_path(path)


def add_filter(name: str, fn: Callable[..., Any]) -> None:
    templates.add_filter(name, fn)


def set_finalize(fn: Callable[[Any], Any] | None) -> None:
    templates.set_finalize(fn)
