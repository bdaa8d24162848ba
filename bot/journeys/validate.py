"""Semantic checks on a program that already matches the schema.

The pydantic model checks each value on its own. What it cannot see are the relations between steps (ids that
must be unique, prerequisites that must exist and must not loop, a live session that must not start before its
pre-work opens) and the text inside authored fields (Jinja templates with unknown variables). Finding these at
``content check`` time, with the line to fix, is far cheaper than a learner meeting a step that never unlocks.

Every problem is a :class:`Problem` pointing at the line of the offending step or key, in ``program.yaml`` or
in the Markdown file a lesson body came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from jinja2 import nodes

from bot.journeys.chunks import MAX_CHUNK, split_markdown
from bot.journeys.model import (
    AnyStep,
    LessonStep,
    PollStep,
    Program,
    PromptStep,
    QuizStep,
    ReflectionStep,
    SessionStart,
    SessionStep,
)
from bot.journeys.render import TemplateProblem, check_template, environment, render_problems, sample_contexts

#: Lesson bodies are split into ~1,200-character chat messages. Past this size a lesson is a chapter, not
#: micro-learning, and a learner scrolling through five or more messages in a row stops reading.
MAX_BODY_CHARS = 6000

Loc = tuple[str | int, ...]
"""A path into the authored data, as pydantic reports it but without union tags: ``("steps", 2, "due")``."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing an author must fix. ``line`` is 1-based; ``None`` when the problem is about a whole file."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class SourceMap:
    """Where each value of a YAML document came from.

    Attributes:
        file: the file as shown to people (relative to the working directory when possible).
        keys: line of each mapping key and sequence item, by its path in the data.
        texts: line on which the text of each scalar value begins. It differs from ``keys`` for block scalars
            (``body: |``), whose text starts on the line after the key.
    """

    file: str
    keys: dict[Loc, int] = field(default_factory=dict)
    texts: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int:
        """The line of the deepest node along ``loc`` that exists in the document (else line 1)."""
        for end in range(len(loc), 0, -1):
            found = self.keys.get(loc[:end])
            if found is not None:
                return found
        return 1

    def text_line(self, loc: Loc) -> int:
        """The line where the text at ``loc`` begins, so a template's own line numbers can be added to it."""
        return self.texts.get(loc) or self.line(loc)


@dataclass(frozen=True)
class BodySource:
    """A lesson body read from a ``body_file``: its text without front matter, and the line it starts on."""

    file: str
    first_line: int
    text: str


@dataclass(frozen=True)
class Outline:
    """What the relationship checks need, available even when some steps fail the schema.

    Attributes:
        steps: every step that passed the schema, with its index in the file's ``steps`` list.
        ids: every step id written in the file, valid step or not, with its index: a prerequisite naming a step
            that has a schema error is not also "unknown", and a duplicate id is found either way.
        unlock_at: ``defaults.unlock_at``.
        has_sessions: whether any step is declared ``kind: session``.
        min_sessions: ``completion.min_sessions_attended`` (None: default or unreadable).
        sessions: the number of steps declared ``kind: session``.
    """

    steps: list[tuple[int, AnyStep]]
    ids: list[tuple[int, str]]
    unlock_at: time = time(9, 30)
    has_sessions: bool = False
    min_sessions: int | None = None
    sessions: int = 0
    program: Program | None = None

    @classmethod
    def of(cls, program: Program) -> Outline:
        return cls(
            steps=list(enumerate(program.steps)),
            ids=[(i, step.id) for i, step in enumerate(program.steps)],
            unlock_at=program.defaults.unlock_at,
            has_sessions=bool(program.sessions),
            min_sessions=program.completion.min_sessions_attended,
            sessions=len(program.sessions),
            program=program,
        )


def check_program(program: Program, source: SourceMap, body_files: dict[int, BodySource]) -> list[Problem]:
    """Run every semantic check on a valid ``program``; see :func:`check_outline`."""
    return check_outline(Outline.of(program), source, body_files)


def check_outline(outline: Outline, source: SourceMap, body_files: dict[int, BodySource]) -> list[Problem]:
    """Run every semantic check on the steps that passed the schema.

    Args:
        outline: the steps and program settings to check.
        source: line map of ``program.yaml``; step ``i`` is ``("steps", i)`` in it.
        body_files: lesson bodies read from ``body_file``, by step index. A lesson with a ``body_file`` that
            is missing here could not be read; the loader has already reported why.

    Returns:
        Every problem found, in no particular order.
    """
    checker = _Checker(outline, source, body_files)
    return [
        *checker.duplicate_ids(),
        *checker.dangling_prerequisites(),
        *checker.cycles(),
        *checker.sessions_before_prework(),
        *checker.templates(),
        *checker.body_sizes(),
        *checker.completion(),
    ]


#: Fields a learner must see something in; an empty prompt or question is a message with nothing to answer.
_REQUIRED_TEXT = frozenset({"text", "question"})


@dataclass(frozen=True)
class _Field:
    """One template as the check sees it: where its text starts, how to name it, and its key."""

    file: str
    start: int
    label: str
    text: str
    key: str


def _too_long(step_id: str, size: int) -> str:
    return (
        f"lesson '{step_id}' is {size:,} characters long; keep a lesson under {MAX_BODY_CHARS:,} "
        "characters (about five chat messages) and split longer material into several lessons"
    )


def _lesson_size(step_id: str, rendered: list[str], longest: str) -> Iterator[str]:
    """Problems with a lesson's rendered size: empty, over the lesson limit, or a part over one message."""
    if any(not text.strip() for text in rendered):
        yield f"lesson '{step_id}' has no text to show (empty, or a template that renders nothing)"
        return
    if len(longest.strip()) > MAX_BODY_CHARS:
        yield _too_long(step_id, len(longest.strip()))
        return
    parts = split_markdown(longest)
    over = [len(part) for part in parts if len(part) > MAX_CHUNK]
    if over:
        yield (
            f"lesson '{step_id}' has a part of {max(over):,} characters after splitting into messages (at most "
            f"{MAX_CHUNK:,}); break a long line or paragraph"
        )


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _canonical(loop: list[str], order: dict[str, int]) -> tuple[str, ...]:
    start = min(range(len(loop)), key=lambda n: order[loop[n]])
    return tuple(loop[start:] + loop[:start])


class _Checker:
    def __init__(self, outline: Outline, source: SourceMap, body_files: dict[int, BodySource]) -> None:
        self.outline = outline
        self.source = source
        self.body_files = body_files
        # The first step with each id wins; later ones are reported as duplicates.
        self.index: dict[str, int] = {}
        self.steps: dict[int, AnyStep] = dict(outline.steps)
        for i, step_id in outline.ids:
            self.index.setdefault(step_id, i)
        self._opens: dict[str, tuple[int, time, str] | None] = {}

    def _at(self, loc: Loc, message: str) -> Problem:
        return Problem(self.source.file, self.source.line(loc), message)

    def _step(self, step_id: str) -> AnyStep | None:
        """The valid step behind an id, or None when the step with that id failed the schema."""
        return self.steps.get(self.index[step_id])

    def _prerequisites(self, step_id: str) -> list[str]:
        step = self._step(step_id)
        if step is None:
            return []
        names = list(step.unlock.after)
        if isinstance(step, SessionStep):
            names += step.prework
        return [n for n in names if n in self.index]

    def duplicate_ids(self) -> Iterator[Problem]:
        for i, step_id in self.outline.ids:
            first = self.index[step_id]
            if first != i:
                first_line = self.source.line(("steps", first))
                yield self._at(
                    ("steps", i, "id"),
                    f"duplicate step id '{step_id}' (already used by the step at line {first_line})",
                )
        for i, step in self.outline.steps:
            if isinstance(step, QuizStep):
                seen: dict[str, int] = {}
                for j, question in enumerate(step.questions):
                    if question.id in seen:
                        first_line = self.source.line(("steps", i, "questions", seen[question.id]))
                        yield self._at(
                            ("steps", i, "questions", j, "id"),
                            f"step '{step.id}': duplicate question id '{question.id}' "
                            f"(already used by the question at line {first_line})",
                        )
                    seen.setdefault(question.id, j)

    def dangling_prerequisites(self) -> Iterator[Problem]:
        known = list(self.index)
        for i, step in self.outline.steps:
            for k, name in enumerate(step.unlock.after):
                if name not in self.index:
                    yield self._at(
                        ("steps", i, "unlock", "after", k),
                        f"step '{step.id}' unlocks after unknown step '{name}'{_did_you_mean(name, known)}",
                    )
            if isinstance(step, SessionStep):
                for k, name in enumerate(step.prework):
                    if name not in self.index:
                        yield self._at(
                            ("steps", i, "prework", k),
                            f"session '{step.id}' lists unknown pre-work step '{name}'"
                            + _did_you_mean(name, known),
                        )

    def cycles(self) -> Iterator[Problem]:
        """Report each prerequisite cycle once, starting from its earliest step, as ``a -> b -> a``.

        Read an arrow as "waits for": ``unlock.after`` and session ``prework`` both make a step wait. The walk
        is iterative (an explicit stack), so a chain of thousands of steps cannot exhaust Python's recursion.
        """
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self.index, white)
        found: dict[tuple[str, ...], None] = {}
        for root in self.index:
            if colour[root] != white:
                continue
            colour[root] = grey
            path = [root]
            pending = [iter(self._prerequisites(root))]
            while pending:
                nxt = next(pending[-1], None)
                if nxt is None:
                    colour[path.pop()] = black
                    pending.pop()
                elif colour[nxt] == grey:
                    found.setdefault(_canonical(path[path.index(nxt) :], self.index))
                elif colour[nxt] == white:
                    colour[nxt] = grey
                    path.append(nxt)
                    pending.append(iter(self._prerequisites(nxt)))
        for loop in found:
            chain = " -> ".join((*loop, loop[0]))
            yield self._at(
                ("steps", self.index[loop[0]]),
                f"prerequisite cycle: {chain} (each waits for the next), so none of them can ever unlock",
            )

    def _own_opening(self, step_id: str) -> tuple[int, time, str] | None:
        """When a step opens by its own ``unlock`` or ``start``, ignoring prerequisites (None: unknowable)."""
        step = self._step(step_id)
        if step is None:
            return None
        if isinstance(step, SessionStep):
            return (step.start.day, step.start.at, step_id) if isinstance(step.start, SessionStart) else None
        if step.unlock.from_ != "cohort":
            return None
        return (step.unlock.day, step.unlock.at or self.outline.unlock_at, step_id)

    def _earliest(self, step_id: str) -> tuple[int, time, str] | None:
        """The earliest cohort-relative (day, time) at which ``step_id`` can open, and the step that sets it.

        ``None`` when it cannot be known from the content alone: enrollment-relative unlocks, absolute session
        starts, a step with a schema error, or a prerequisite loop (reported elsewhere). Results are memoised and
        computed with an explicit stack, so long chains and shared prerequisites cost one visit per step.
        """
        stack = [step_id]
        while stack:
            current = stack[-1]
            if current in self._opens:
                stack.pop()
                continue
            step = self._step(current)
            after = [] if isinstance(step, SessionStep) or step is None else step.unlock.after
            # One prerequisite at a time, so the stack is always the path from ``step_id``: a prerequisite
            # already on it is a loop.
            waiting = next((n for n in after if n in self.index and n not in self._opens and n not in stack), None)
            if waiting is not None:
                stack.append(waiting)
                continue
            stack.pop()
            best = self._own_opening(current)
            for name in after:
                if best is None or name not in self.index:
                    continue  # unknown prerequisites are reported as dangling
                before = self._opens.get(name)  # absent: a loop back to a step on the stack, unknowable
                best = None if before is None else max(best, before, key=lambda o: o[:2])
            self._opens[current] = best
        return self._opens[step_id]

    def sessions_before_prework(self) -> Iterator[Problem]:
        for i, step in self.outline.steps:
            if not isinstance(step, SessionStep) or isinstance(step.start, datetime):
                continue
            session_at = (step.start.day, step.start.at)
            for k, name in enumerate(step.prework):
                if name not in self.index:
                    continue
                opens = self._earliest(name)
                if opens is None or opens[:2] <= session_at:
                    continue
                day, at, because = opens
                via = "" if because == name else f" (it waits for '{because}')"
                yield self._at(
                    ("steps", i, "prework", k),
                    f"session '{step.id}' starts on day {session_at[0]} at {_hhmm(session_at[1])} but its "
                    f"pre-work '{name}' only unlocks on day {day} at {_hhmm(at)}{via}; unlock the pre-work "
                    "earlier or schedule the session later",
                )

    def _texts(self, i: int, step: AnyStep) -> Iterator[tuple[Loc, str, str]]:
        """Every authored text field of a step that is rendered as a template: (path, label, text)."""
        base: Loc = ("steps", i)
        if isinstance(step, LessonStep) and step.body:
            yield (*base, "body"), "body", step.body
        elif isinstance(step, QuizStep):
            yield (*base, "intro"), "intro", step.intro
            for j, question in enumerate(step.questions):
                where = f"question '{question.id}'"
                yield (*base, "questions", j, "text"), f"{where} text", question.text
                yield (*base, "questions", j, "explanation"), f"{where} explanation", question.explanation
                for k, option in enumerate(question.options):
                    loc = (*base, "questions", j, "options", k, "feedback")
                    yield loc, f"{where} option {k + 1} feedback", option.feedback
        elif isinstance(step, SessionStep):
            yield (*base, "description"), "description", step.description
            for k, item in enumerate(step.agenda):
                yield (*base, "agenda", k), f"agenda item {k + 1}", item
        elif isinstance(step, PromptStep):
            yield (*base, "text"), "text", step.text
        elif isinstance(step, ReflectionStep | PollStep):
            yield (*base, "question"), "question", step.question

    def _template_problems(self, text: str) -> list[TemplateProblem]:
        problems = check_template(text)
        if problems or self.outline.has_sessions or "session" not in text:
            return problems
        # Without a session step the engine renders ``session`` as an empty mapping, and StrictUndefined would
        # fail at delivery time; catch it here instead.
        tree = environment().parse(text)
        return [
            TemplateProblem(
                name.lineno, f"'{name.name}' is used but the program has no session step to refer to"
            )
            for name in tree.find_all(nodes.Name)
            if name.name == "session" and name.ctx == "load"
        ]

    def templates(self) -> Iterator[Problem]:
        """Every template field checked statically, then rendered for the sample learners as delivery would.

        Rendering is what makes "passes the check" mean "renders at delivery": a subscript with a typo, an
        attribute of a string, a division by zero or a text that renders to nothing only show when rendered.
        """
        program = self.outline.program
        for i, step in self.outline.steps:
            contexts = sample_contexts(program, step) if program is not None else []
            fields = [
                _Field(self.source.file, self.source.text_line(loc), f"step '{step.id}', {label}", text, str(loc[-1]))
                for loc, label, text in self._texts(i, step)
            ]
            body = self.body_files.get(i)
            if body is not None:
                fields.append(_Field(body.file, body.first_line, f"step '{step.id}'", body.text, "body"))
            for found in fields:
                yield from self._field_problems(found, step, contexts)

    def _field_problems(
        self, field: _Field, step: AnyStep, contexts: list[tuple[str, dict[str, Any]]]
    ) -> Iterator[Problem]:
        def at(line: int, message: str) -> Problem:
            return Problem(field.file, field.start + line - 1, f"{field.label}: {message}")

        static = self._template_problems(field.text)
        yield from (at(p.line, p.message) for p in static)
        if static or not contexts:
            return
        failures, rendered = render_problems(field.text, contexts)
        yield from (at(p.line, p.message) for p in failures)
        if not rendered:
            return
        longest = max(rendered, key=len)
        if isinstance(step, LessonStep) and field.key == "body":
            yield from (Problem(field.file, field.start, m) for m in _lesson_size(step.id, rendered, longest))
        elif len(longest) > MAX_CHUNK:
            yield at(1, f"renders to {len(longest):,} characters; one chat message holds at most {MAX_CHUNK:,}")
        if field.key in _REQUIRED_TEXT and any(not text.strip() for text in rendered):
            yield at(1, "is empty (only spaces, or a template that renders nothing); write the text to show")

    def body_sizes(self) -> Iterator[Problem]:
        """Lesson source sizes, for a program whose schema errors prevent rendering its texts."""
        if self.outline.program is not None:
            return
        for i, step in self.outline.steps:
            if not isinstance(step, LessonStep):
                continue
            body = self.body_files.get(i)
            if body is not None:
                size, where = len(body.text.strip()), Problem(body.file, body.first_line, "")
            else:
                size, where = len(step.body.strip()), self._at(("steps", i, "body"), "")
            if size > MAX_BODY_CHARS:
                yield Problem(where.file, where.line, _too_long(step.id, size))

    def completion(self) -> Iterator[Problem]:
        wanted = self.outline.min_sessions
        sessions = self.outline.sessions
        if wanted is not None and wanted > sessions:
            yield self._at(
                ("completion", "min_sessions_attended"),
                f"min_sessions_attended is {wanted} but the program has only {sessions} session step"
                f"{'' if sessions == 1 else 's'}",
            )
