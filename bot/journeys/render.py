"""Rendering authored text with Jinja2.

Only admin-authored content (program files) is ever treated as a template. Values that come from people (names,
replies, announcements) are passed in as *data* and are never parsed as templates, so ``{{ 7*7 }}`` typed by a
learner stays literally that. The sandboxed environment and StrictUndefined make a bad template fail loudly at
``content check`` time rather than at delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from bot.markup import Markdown, finalize

#: The variables an authored text may use, with the attributes each offers. ``content check`` rejects anything
#: else, so a typo such as ``{{ learner.nmae }}`` is caught before a learner sees it.
TEMPLATE_VARS: dict[str, frozenset[str]] = {
    "learner": frozenset({"name", "first_name", "tz"}),
    "cohort": frozenset({"name", "start_date", "channel"}),
    "program": frozenset({"title", "id"}),
    "step": frozenset({"title", "id", "kind"}),
    "due": frozenset(),
    "session": frozenset({"title", "start_local", "start_date", "start_time", "duration", "join_url", "location"}),
}


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    # Markdown output, not HTML: autoescape would turn "&" into "&amp;" in chat. ``finalize`` escapes every value
    # for the Markdown subset instead (a learner's name stays text), and each adapter escapes for its platform.
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=finalize
    )


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return environment().from_string(source)


def render_text(source: str, context: dict[str, Any]) -> Markdown:
    """Render an authored template. Sources without ``{`` skip Jinja entirely (most lesson text)."""
    if "{{" not in source and "{%" not in source:
        return Markdown(source)
    return Markdown(_compiled(source).render(**context))


@dataclass(frozen=True)
class TemplateProblem:
    line: int
    message: str


def check_template(source: str) -> list[TemplateProblem]:
    """Find syntax errors and unknown variables/attributes in an authored template.

    Returns problems with 1-based line numbers relative to ``source``.
    """
    if "{{" not in source and "{%" not in source:
        return []
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")]
    problems: list[TemplateProblem] = []
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in TEMPLATE_VARS and name.name not in assigned:
            known = ", ".join(sorted(TEMPLATE_VARS))
            problems.append(TemplateProblem(name.lineno, f"unknown template variable '{name.name}' (known: {known})"))
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name in TEMPLATE_VARS:
            allowed = TEMPLATE_VARS[attr.node.name]
            if attr.attr not in allowed:
                offered = ", ".join(sorted(allowed)) or "none"
                problems.append(
                    TemplateProblem(
                        attr.lineno,
                        f"unknown template variable '{attr.node.name}.{attr.attr}' (it offers: {offered})",
                    )
                )
    return problems
