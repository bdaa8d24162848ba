"""Rendering authored text with Jinja2.

Only admin-authored content (program files) is ever treated as a template. Values that come from people (names,
replies, announcements) are passed in as *data* and are never parsed as templates, so ``{{ 7*7 }}`` typed by a
learner stays literally that. The sandboxed environment and StrictUndefined make a bad template fail loudly at
``content check`` time rather than at delivery.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from bot.durations import format_duration
from bot.journeys.model import AnyStep, Program, SessionStart, SessionStep
from bot.markup import Markdown, finalize
from bot.templating import Kept, Unkeyable, frozen
from bot.timewindow import local_instant, zone

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


#: The filters an authored text may use. Jinja's others either do nothing useful in chat (``escape``, ``urlize``,
#: ``xmlattr``), bypass the Markdown escaping (``safe``) or let a two-word template allocate gigabytes
#: (``center(999999999)``, ``indent``, ``format``). ``content check`` names the unknown filter and this list.
ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last", "length", "list",
        "lower", "max", "min", "replace", "reverse", "round", "sort", "string", "sum", "title", "trim",
        "truncate", "unique", "upper", "wordcount",
    }
)  # fmt: skip
#: Statements that would reach outside the one text: there is nothing to include, import or extend.
FORBIDDEN_STATEMENTS = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Extends: "extends",
}
#: The longest string or list an expression such as ``"x" * n`` may build, and the largest power exponent.
MAX_PRODUCT = 10_000
MAX_EXPONENT = 64


class AuthoredEnvironment(SandboxedEnvironment):
    """The sandbox for authored text, with arithmetic that cannot exhaust memory or time.

    ``*`` and ``**`` are intercepted (which also stops Jinja folding them at compile time), so
    ``{{ "x" * 10**9 }}`` or ``{{ 9**9**9 }}`` fails with a message instead of hanging the check or a worker.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"the exponent {right} is too large (at most {MAX_EXPONENT})")
            return left**right
        sized = next((v for v in (left, right) if isinstance(v, str | list | tuple)), None)
        times = right if sized is left else left
        if sized is not None and isinstance(times, int) and len(sized) * times > MAX_PRODUCT:
            raise SecurityError(f"repeating text or a list makes more than {MAX_PRODUCT:,} items")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``learner.first_name`` on the context's plain dicts reads the key directly.

        The sandbox's general path tries a Python attribute first and checks it is safe, then falls back to the key;
        every variable authors use is a key of a plain dict, and that path was most of rendering a lesson's
        greeting. A key also wins over a dict method of the same name, which exposes less, not more.
        """
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    # Markdown output, not HTML: autoescape would turn "&" into "&amp;" in chat. ``finalize`` escapes every value
    # for the Markdown subset instead (a learner's name stays text), and each adapter escapes for its platform.
    env = AuthoredEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=finalize
    )
    env.filters = {name: fn for name, fn in env.filters.items() if name in ALLOWED_FILTERS}
    env.globals.clear()  # range, lipsum, dict, cycler...: nothing an author needs, and range can spin
    return env


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=4096)
def _reads(source: str) -> tuple[tuple[str, str | None], ...]:
    """What an authored template reads of its context: ``(name, attribute)`` for ``name.attribute``, ``(name,
    None)`` for a name read whole (or indexed). A superset is harmless (loop variables read as missing)."""
    tree = environment().parse(source)
    bases = set()
    reads: set[tuple[str, str | None]] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            bases.add(id(node.node))
            reads.add((node.node.name, node.attr))
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and id(name) not in bases:
            reads.add((name.name, None))
    return tuple(sorted(reads, key=lambda r: (r[0], r[1] or "")))


_MISSING = object()
_kept = Kept()


def _memo_key(source: str, context: dict[str, Any]) -> tuple[Any, ...] | None:
    values: list[Any] = [source]
    for name, attribute in _reads(source):
        value = context.get(name, _MISSING)
        if attribute is not None and type(value) is dict and attribute in value:
            value = value[attribute]  # otherwise (a method, say) the whole value is the key
        if value is _MISSING:
            values.append(("missing", name, attribute))
            continue
        try:
            values.append(frozen(value))
        except Unkeyable:
            return None
    return tuple(values)


def render_text(source: str, context: dict[str, Any]) -> Markdown:
    """Render an authored template. Sources without ``{`` skip Jinja entirely (most lesson text).

    The sandbox has no globals, its filters are pure, so a rendering depends only on the context values the
    template reads (:func:`_reads`): it is kept by those. A cohort's invites read the session's time in a few
    zones, and a greeting reads only the first name, so most learners' texts are rendered once; a value that is
    not plain data is rendered every time.
    """
    if "{{" not in source and "{%" not in source:
        return Markdown(source)
    key = _memo_key(source, context)
    out = _kept.get(key)
    if out is None:
        out = _compiled(source).render(**context)
        _kept.put(key, out)
    return Markdown(out)


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
    problems = _statement_problems(tree)
    if problems:
        return problems
    try:
        env.compile(source)  # unknown tests, and anything else only the compiler notices
    except TemplateSyntaxError as exc:
        return [TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")]
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


def _statement_problems(tree: nodes.Template) -> list[TemplateProblem]:
    """Forbidden statements and filters outside :data:`ALLOWED_FILTERS`, at their lines."""
    problems: list[TemplateProblem] = []
    for kind, word in FORBIDDEN_STATEMENTS.items():
        for node in tree.find_all(kind):
            problems.append(
                TemplateProblem(node.lineno, f"'{{% {word} %}}' is not allowed in program text; write the text here")
            )
    for used in tree.find_all(nodes.Filter):
        if used.name not in ALLOWED_FILTERS:
            allowed = ", ".join(sorted(ALLOWED_FILTERS))
            problems.append(TemplateProblem(used.lineno, f"unknown filter '{used.name}' (allowed: {allowed})"))
    return sorted(problems, key=lambda p: p.line)


def render_problems(source: str, contexts: list[tuple[str, dict[str, Any]]]) -> tuple[list[TemplateProblem], list[str]]:
    """Render ``source`` against each labelled sample context, as delivery will (:func:`render_text`).

    Returns:
        The failures (one per distinct message, at the template line that raised it where Jinja knows it) and
        the texts rendered, for length checks.
    """
    problems: dict[str, TemplateProblem] = {}
    rendered: list[str] = []
    for label, context in contexts:
        try:
            rendered.append(str(render_text(source, context)))
        except Exception as exc:
            message = str(exc) if isinstance(exc, TemplateError | SecurityError) else f"{type(exc).__name__}: {exc}"
            problems.setdefault(message, TemplateProblem(_template_line(exc), f"cannot be rendered {label}: {message}"))
    return list(problems.values()), rendered


def _template_line(exc: BaseException) -> int:
    """The template line Jinja's rewritten traceback points at (1 when it points nowhere)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno or 1 if frames else 1


# ------------------------------------------------------------------------------------------------------------
# The variables, for delivery and for the check


def fmt_local(instant: datetime, tz: str, *, with_zone: bool = True) -> str:
    """``Mon 2 Mar, 14:00 GMT``: an instant in a person's zone, as every message shows times."""
    return _fmt_local(instant, tz, with_zone)


@lru_cache(maxsize=4096)
def _fmt_local(instant: datetime, tz: str, with_zone: bool) -> str:
    # A cohort's due times and session times recur in every learner's card: formatted once per zone.
    local = instant.astimezone(zone(tz))
    out = f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"
    return f"{out} {local:%Z}" if with_zone else out


def session_variables(
    title: str, start_at: datetime, end_at: datetime, join_url: str | None, location: str | None, tz: str
) -> dict[str, Any]:
    """``session.*`` for one session seen from zone ``tz``; delivery and ``content check`` both build it here.

    Every step card's context carries it, so a drain builds it for each learner; the learners of a cohort share a
    few zones, hence the cache (each caller gets its own dict).
    """
    return dict(_session_variables(title, start_at, end_at, join_url, location, tz))


@lru_cache(maxsize=1024)
def _session_variables(
    title: str, start_at: datetime, end_at: datetime, join_url: str | None, location: str | None, tz: str
) -> dict[str, Any]:
    local = start_at.astimezone(zone(tz))
    return {
        "title": title,
        "start_local": fmt_local(start_at, tz),
        "start_date": f"{local:%A} {local.day} {local:%B}",
        "start_time": f"{local:%H:%M} {local:%Z}",
        "duration": format_duration(end_at - start_at),
        "join_url": Markdown(join_url or ""),
        "location": location or "",
    }


#: The cohort start the check renders against: a Monday, so day offsets land on ordinary working days.
SAMPLE_START = date(2026, 3, 2)
#: The learners every template is rendered for: a typical one, then the edges that break careless templates.
SAMPLE_LEARNERS = (
    ("for a sample learner", "Amara Okafor", "Amara", "Europe/London"),
    ("for a learner with an empty name", "", "", "Europe/London"),
    ("for a learner with a long name", "Maximilian " * 12 + "von Hohenberg", "Maximilian", "Europe/London"),
    ("for a learner in UTC+14", "Teraaka Tebano", "Teraaka", "Pacific/Kiritimati"),
)


def _session_of(program: Program, step: AnyStep) -> SessionStep | None:
    """The session ``session.*`` means for ``step``: its own, the one it is pre-work for, else the first."""
    if isinstance(step, SessionStep):
        return step
    sessions = program.sessions
    return next((s for s in sessions if step.id in s.prework), sessions[0] if sessions else None)


def _start_of(program: Program, session: SessionStep) -> datetime:
    start = session.start
    if isinstance(start, SessionStart):
        return local_instant(SAMPLE_START + timedelta(days=start.day), start.at, start.tz or program.tz)
    return start


def sample_contexts(program: Program, step: AnyStep) -> list[tuple[str, dict[str, Any]]]:
    """Labelled contexts with every documented variable, shaped as delivery builds them, for each sample learner."""
    session = _session_of(program, step)
    contexts: list[tuple[str, dict[str, Any]]] = []
    for label, name, first_name, tz in SAMPLE_LEARNERS:
        unlock = local_instant(
            SAMPLE_START + timedelta(days=step.unlock.day), step.unlock.at or program.defaults.unlock_at, tz
        )
        context: dict[str, Any] = {
            "learner": {"name": name, "first_name": first_name, "tz": tz},
            "cohort": {"name": "spring-leads", "start_date": SAMPLE_START.isoformat(), "channel": "cohort-spring"},
            "program": {"title": program.title, "id": program.id},
            "step": {"title": step.title, "id": step.id, "kind": step.kind},
            "due": fmt_local(unlock + step.due, tz) if step.due else "",
            "session": {},
        }
        if session is not None:
            start = _start_of(program, session)
            context["session"] = session_variables(
                session.title, start, start + session.duration, session.join_url, session.location, tz
            )
        contexts.append((label, context))
    return contexts
