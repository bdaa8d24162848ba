"""Load programs from ``content/``, reporting every problem as ``path:line: message``.

The people who write programs are learning designers, not Python developers, so a mistake must come back as
the file and line to open and a sentence saying what to change, never as a traceback or pydantic jargon.

``yaml.safe_load`` loses line numbers, and pydantic only knows the *path* of a bad value (``steps.3.due``). So
the document is composed into YAML nodes and the data is built from them by hand, recording the line of every
key and item under the same path pydantic reports. Each validation error is then translated using the line of
the deepest node on its path. Construction still goes through :class:`yaml.SafeLoader`, so no tag can build
arbitrary objects.

Layout::

    content/<program-id>/program.yaml
    content/<program-id>/lessons/<name>.md      # referenced as body_file: lessons/<name>.md
"""

from __future__ import annotations

import bisect
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from bot.errors import ContentError
from bot.journeys.model import STEP_KINDS, AnyStep, Completion, Defaults, LessonStep, Program, Step
from bot.journeys.pack import evaluation_problems, read_guides
from bot.journeys.validate import BodySource, Loc, Outline, Problem, SourceMap, check_outline

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["LoadedProgram", "check_path", "check_problems", "check_warnings", "load_library", "load_program"]

PROGRAM_FILE = "program.yaml"

#: Values a document may hold once its aliases are expanded. A shipped program holds about 1,500; YAML aliases
#: can make a 350-byte file expand to millions (an "alias bomb"), which would hang the check and the bot's start.
MAX_NODES = 50_000
#: Nesting of lists and mappings. A program needs about 8 levels; PyYAML's composer recurses per level.
MAX_DEPTH = 40
#: Longest accepted file, in characters: a program is a few hundred lines.
MAX_FILE_CHARS = 2_000_000


@dataclass(frozen=True)
class LoadedProgram:
    """A program that passed every check, with what the engine needs beside the model.

    Attributes:
        program: the validated content model.
        path: the ``program.yaml`` it was read from.
        bodies: lesson step id -> Markdown body (the inline ``body`` or the ``body_file`` contents without
            front matter), so the engine never touches the file system while delivering.
        lines: step id -> line of the step in ``program.yaml``, for messages that point authors at a step.
        guides: session step id -> its facilitator guide (Markdown), for ``content guide``.
    """

    program: Program
    path: Path
    bodies: dict[str, str]
    lines: dict[str, int]
    guides: dict[str, str] = field(default_factory=dict)


def load_program(path: Path) -> LoadedProgram:
    """Load and check one ``program.yaml``.

    Raises:
        ContentError: with every problem of the program, each as ``path:line: message``.
    """
    result = _load(path)
    if result.loaded is None:
        raise ContentError([str(p) for p in result.problems])
    return result.loaded


def load_library(content_dir: Path) -> dict[str, LoadedProgram]:
    """Load every program under ``content_dir`` (one folder per program).

    Folders whose name starts with ``.`` or ``_`` are skipped, so drafts and shared assets can live beside the
    programs. Problems are collected across all programs before raising, so one run of ``content check`` shows
    the author everything to fix.

    Returns:
        ``program.id`` -> loaded program; empty when the folder holds no program.

    Raises:
        ContentError: with every problem of every program, including two folders declaring one program id.
    """
    programs, problems = _load_library(content_dir)
    if problems:
        raise ContentError([str(p) for p in problems])
    return programs


def check_path(path: Path) -> list[str]:
    """Check a content folder, one program folder or one ``program.yaml``; the engine of ``content check``.

    Returns:
        Every problem as ``path:line: message`` (paths relative to the working directory when possible);
        an empty list means the content is fine.
    """
    return [str(p) for p in check_problems(path)]


def check_problems(path: Path) -> list[Problem]:
    """:func:`check_path` as :class:`Problem` records, for machine-readable output."""
    try:
        if not path.exists():
            return [Problem(_display(path), None, "no such file or folder")]
        if path.is_file():
            return _load(path).problems
        if (path / PROGRAM_FILE).is_file():
            return _load(path / PROGRAM_FILE).problems
    except (OSError, ValueError) as exc:  # an over-long or otherwise unusable path given on the command line
        return [Problem(str(path), None, f"cannot be opened: {getattr(exc, 'strerror', None) or exc}")]
    programs, problems = _load_library(path)
    if not programs and not problems:
        message = f"no programs found; each program is a folder holding a {PROGRAM_FILE}"
        problems = [Problem(_display(path), None, message)]
    return problems


def check_warnings(path: Path, settings: Settings) -> list[Problem]:
    """Timing warnings (:mod:`bot.journeys.timing_check`) for the valid programs at ``path``: things that load and
    run, but not at the times the author wrote. They never stop a program from loading."""
    from bot.journeys.timing_check import timing_warnings

    if path.is_file():
        files = [path]
    elif (path / PROGRAM_FILE).is_file():
        files = [path / PROGRAM_FILE]
    else:
        files = sorted(p / PROGRAM_FILE for p in path.iterdir() if p.is_dir() and (p / PROGRAM_FILE).is_file())
    found: list[Problem] = []
    for file in files:
        result = _load(file)
        if result.loaded is not None and result.source is not None:
            found += timing_warnings(result.loaded.program, result.source, settings)
    return _sorted(found)


# ------------------------------------------------------------------------------------------------------------
# Loading


@dataclass
class _Result:
    loaded: LoadedProgram | None
    problems: list[Problem]
    source: SourceMap | None = None


def _display(path: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(os.path.abspath(Path.cwd())))
    except ValueError:
        return str(absolute)


def _load_library(content_dir: Path) -> tuple[dict[str, LoadedProgram], list[Problem]]:
    shown = _display(content_dir)
    if not content_dir.is_dir():
        return {}, [Problem(shown, None, "content folder not found")]
    try:
        folders = sorted(p for p in content_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    except OSError as exc:
        return {}, [Problem(shown, None, f"cannot read the folder: {exc.strerror}")]
    programs: dict[str, LoadedProgram] = {}
    problems: list[Problem] = []
    for folder in folders:
        program_file = folder / PROGRAM_FILE
        if not program_file.is_file():
            hint = " (rename program.yml to program.yaml)" if (folder / "program.yml").is_file() else ""
            message = (
                f"no {PROGRAM_FILE} in this folder{hint}; start the name with '_' if it is not a program"
            )
            problems.append(Problem(_display(folder), None, message))
            continue
        result = _load(program_file)
        problems += result.problems
        if result.loaded is None or result.source is None:
            continue
        program_id = result.loaded.program.id
        other = programs.get(program_id)
        if other is not None:
            problems.append(
                Problem(
                    result.source.file,
                    result.source.line(("id",)),
                    f"program id '{program_id}' is already used by {_display(other.path)}",
                )
            )
            continue
        programs[program_id] = result.loaded
    return programs, problems


def _read_text(path: Path, shown: str) -> tuple[str | None, Problem | None]:
    """Read a UTF-8 text file with normalised newlines; a byte-order mark is tolerated, editors add one."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem(shown, None, f"cannot read the file: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        return None, Problem(
            shown, line, f"the file is not UTF-8 text (byte 0x{bad}); save it with UTF-8 encoding"
        )
    if len(text) > MAX_FILE_CHARS:
        return None, Problem(shown, None, f"the file is over {MAX_FILE_CHARS:,} characters; split the program")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    found = _FORBIDDEN.search(text)
    if found is not None:
        return None, Problem(shown, text.count("\n", 0, found.start()) + 1, _forbidden_message(found.group()))
    return text, None


def _load(path: Path) -> _Result:
    shown = _display(path)
    text, problem = _read_text(path, shown)
    if text is None:
        return _Result(None, [problem] if problem else [])
    if not text.strip():
        return _Result(
            None, [Problem(shown, None, "the file is empty; a program needs at least id, title and steps")]
        )
    data, source, problems = _parse_yaml(text, shown)
    if problems:
        return _Result(None, problems)
    if data is None:
        return _Result(
            None, [Problem(shown, None, "the file holds only comments; a program needs id, title and steps")]
        )
    if not isinstance(data, dict):
        message = f"the top level must be a mapping of keys (id, title, steps, ...), not {_describe(data)}"
        return _Result(None, [Problem(shown, 1, message)])

    body_files, problems = _read_body_files(data, path.parent, source)
    program: Program | None = None
    try:
        program = Program.model_validate(data)
        outline = Outline.of(program)
    except ValidationError as exc:
        # The relationship checks still run on the steps that are valid: one typo must not hide a dangling
        # prerequisite, since an author fixes everything from one run.
        problems += _translate(exc, data, source)
        outline = _partial_outline(data)
    problems += check_outline(outline, source, body_files)
    if program is None:
        return _Result(None, _sorted(problems), source)
    guides, guide_problems = read_guides(program, path.parent, source)
    problems += guide_problems + evaluation_problems(program, source)
    if problems:
        return _Result(None, _sorted(problems), source)

    bodies: dict[str, str] = {}
    lines: dict[str, int] = {}
    authored = len(program.steps)
    program = program.with_evaluation()
    for i, step in enumerate(program.steps):
        where = ("steps", i) if i < authored else ("evaluation", "questions", i - authored)
        lines.setdefault(step.id, source.line(where))
        if isinstance(step, LessonStep):
            body = body_files[i].text if i in body_files else step.body
            bodies.setdefault(step.id, body.strip())
    loaded = LoadedProgram(program=program, path=path, bodies=bodies, lines=lines, guides=guides)
    return _Result(loaded, [], source)


_STEP: TypeAdapter[AnyStep] = TypeAdapter(Step)


def _valid(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError:
        return None


def _partial_outline(data: dict[str, Any]) -> Outline:
    """The outline of a program that failed the schema: its valid steps, every id written, usable settings."""
    raw = data.get("steps")
    raw_steps = [(i, step) for i, step in enumerate(raw) if isinstance(step, dict)] if isinstance(raw, list) else []
    steps: list[tuple[int, AnyStep]] = []
    for i, step in raw_steps:
        try:
            steps.append((i, _STEP.validate_python(step)))
        except ValidationError:
            continue  # already reported by the whole program's validation
    defaults = _valid(Defaults, data.get("defaults"))
    completion = _valid(Completion, data.get("completion"))
    sessions = sum(1 for _, step in raw_steps if step.get("kind") == "session")
    return Outline(
        steps=steps,
        ids=[(i, step["id"]) for i, step in raw_steps if isinstance(step.get("id"), str)],
        unlock_at=defaults.unlock_at if defaults is not None else Defaults().unlock_at,
        has_sessions=sessions > 0,
        min_sessions=completion.min_sessions_attended if completion is not None else None,
        sessions=sessions,
    )


def _sorted(problems: list[Problem]) -> list[Problem]:
    # Stable, so problems on one line keep the order they were found in; duplicates (one mistake seen through
    # two union branches) are dropped.
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line or 0))


# ------------------------------------------------------------------------------------------------------------
# YAML with line numbers

_INT = "tag:yaml.org,2002:int"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
# YAML 1.1 integers without the base-60 form: ``10:30`` would otherwise load as 630. Authors writing times of
# day mean a string, and the model then gives a real error for ``24:00`` instead of a puzzling number.
_INT_NO_SEXAGESIMAL = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$",
)


class _Refused(yaml.MarkedYAMLError):
    """A document the loader will not build (too deep, aliases that expand too far); its message is final."""


class _LineBuilding(Composer, SafeConstructor):
    """Builds plain data from the node tree and records the line of every key and item (see :class:`_LineLoader`).

    Args:
        stream: the YAML text.
        source: where lines are recorded.
        line_offset: added to every line, for YAML embedded in another file (Markdown front matter).
    """

    if TYPE_CHECKING:  # the parser half of each loader provides it

        def peek_event(self) -> Any: ...

    def __init__(self, stream: str, source: SourceMap, line_offset: int = 0) -> None:
        super().__init__(stream)  # type: ignore[call-arg]  # the loader's own __init__ takes the stream
        self.source = source
        self.line_offset = line_offset
        self.problems: list[Problem] = []
        self.newlines = _newlines(stream)
        self.depth = 0

    def build(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self._build(node, (), frozenset())

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML composes recursively, a few frames per level: 500 nested lists would end in RecursionError.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                message = f"lists and mappings nested more than {MAX_DEPTH} levels deep; a program needs far fewer"
                raise _Refused(None, None, message, mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _line(self, node: Node) -> int:
        return _mark_line(node.start_mark, self.newlines) + self.line_offset

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        # A block scalar's text starts on the line after its ``|`` or ``>`` indicator.
        self.source.texts[loc] = self._line(node) + (1 if node.style in ("|", ">") else 0)
        value = self.construct_object(node, deep=True)
        bad = _FORBIDDEN.search(value) if isinstance(value, str) else None
        if bad is not None:
            # Double-quoted escapes ("\0", "\ud800") can smuggle in what the file itself may not hold.
            self.problems.append(Problem(self.source.file, self._line(node), _forbidden_message(bad.group())))
            return _FORBIDDEN.sub("", value)
        return value

    def _build(self, node: Node, loc: Loc, active: frozenset[int]) -> Any:
        if id(node) in active:
            raise yaml.constructor.ConstructorError(None, None, "an alias refers to itself", node.start_mark)
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if node.tag not in (_SEQ, _MAP):
            # safe_load would build a set or ordered pairs here; the content model has no use for either.
            message = f"unsupported tag {node.tag}"
            raise yaml.constructor.ConstructorError(None, None, message, node.start_mark)
        active = active | {id(node)}
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.source.keys[(*loc, i)] = self._line(item)
                items.append(self._build(item, (*loc, i), active))
            return items
        if isinstance(node, MappingNode):
            return self._mapping(node, loc, active)
        raise yaml.constructor.ConstructorError(None, None, "unsupported YAML node", node.start_mark)

    def _mapping(self, node: MappingNode, loc: Loc, active: frozenset[int]) -> dict[str, Any]:
        self.flatten_mapping(node)  # resolves ``<<: *anchor`` merge keys, as safe_load does
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problems.append(
                    Problem(
                        self.source.file, self._line(key_node), "a key must be a plain word, not a list or mapping"
                    )
                )
                continue
            constructed = self.construct_object(key_node)
            # Keep what the author typed: ``on:`` or ``1:`` is reported as written, not as True or 1.
            key = constructed if isinstance(constructed, str) else str(key_node.value)
            if key in mapping:
                first = self.source.keys[(*loc, key)]
                self.problems.append(
                    Problem(
                        self.source.file,
                        self._line(key_node),
                        f"duplicate key '{key}' (already set at line {first}); keep only one",
                    )
                )
                continue
            self.source.keys[(*loc, key)] = self._line(key_node)
            mapping[key] = self._build(value_node, (*loc, key), active)
        return mapping


class _LineLoader(_LineBuilding, yaml.SafeLoader):
    """A SafeLoader that builds plain data from the node tree and records the line of every key and item.

    PyYAML's pure-Python reader, scanner and parser: the reference, whose errors are the ones authors see.
    """


_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, _INT_NO_SEXAGESIMAL if tag == _INT else regexp) for tag, regexp in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_FastLineLoader: type[_LineBuilding] | None = None
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLineLoader(_LineBuilding, CParser, Resolver):
        """:class:`_LineLoader` with libyaml's scanner and parser (about 15 times faster to read a program); the
        composing, the limits and the building are the same Python code, so the nodes, values and lines are too.

        Used only for text the two parsers read alike (:data:`_PURE_ONLY`), and only when it succeeds: any error
        is reported by reading the file again with :class:`_LineLoader`, so an author sees the same message.
        """

        def __init__(self, stream: str, source: SourceMap, line_offset: int = 0) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.source = source
            self.line_offset = line_offset
            self.problems = []
            self.newlines = _newlines(stream)
            self.depth = 0

    _CLineLoader.yaml_implicit_resolvers = _LineLoader.yaml_implicit_resolvers
    _FastLineLoader = _CLineLoader

#: Text that only the pure-Python parser reads: anything its reader refuses (libyaml's rules differ), a byte-order
#: mark (libyaml's character positions then start one later) and the line breaks U+0085, U+2028 and U+2029.
_PURE_ONLY = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")

#: Characters no content file may hold: C0/C1 controls other than tab and newline, unpaired surrogates and the
#: non-characters U+FFFE/U+FFFF. PyYAML refuses most of them with a puzzling message or, worse, an exception
#: raised while its reader is still being built.
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def _forbidden_message(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        what = "an unpaired surrogate"
    elif char in "\ufffe\uffff":
        what = "a non-character"
    else:
        what = "a control character"
    return f"{what} (U+{ord(char):04X}) is not allowed in content; remove it"


def _newlines(text: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", text)]


def _mark_line(mark: yaml.Mark, newlines: list[int]) -> int:
    """The 1-based line of ``mark`` counting only ``\\n``.

    PyYAML also counts U+0085, U+2028 and U+2029 as line breaks, so its own ``mark.line`` drifts after one of
    them inside quoted text; editors show them as ordinary characters. The character index does not drift.
    """
    return bisect.bisect_left(newlines, mark.index) + 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: Node) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_NODES` values, or refer to themselves.

    Sizes are computed once per distinct node (memoised, iterative), so the check costs the size of the file,
    not of its expansion.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = min(MAX_NODES + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            if sizes[key] > MAX_NODES:
                message = (
                    f"aliases (*name) here expand to more than {MAX_NODES:,} values; "
                    "write the repeated part out or use fewer nested aliases"
                )
                raise _Refused(None, None, message, node.start_mark)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _Refused(None, None, "an alias (*name) is used inside its own anchor (&name)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack += [(c, False) for c in _children(node) if id(c) not in sizes]


def _parse_yaml(text: str, shown: str, line_offset: int = 0) -> tuple[Any, SourceMap, list[Problem]]:
    if _FastLineLoader is not None and _PURE_ONLY.search(text) is None:
        fast = _FastLineLoader(text, SourceMap(shown), line_offset)
        try:
            return fast.build(), fast.source, fast.problems
        except yaml.YAMLError:
            pass  # read again below, so the message is the reference parser's
        finally:
            fast.dispose()  # type: ignore[attr-defined]
    source = SourceMap(shown)
    newlines = _newlines(text)
    loader: _LineLoader | None = None
    try:
        # Built inside the ``try``: PyYAML's reader checks the characters as soon as it is constructed.
        loader = _LineLoader(text, source, line_offset)
        data = loader.build()
    except _Refused as exc:
        line = (_mark_line(exc.problem_mark, newlines) if exc.problem_mark else 1) + line_offset
        return None, source, [Problem(shown, line, str(exc.problem))]
    except yaml.MarkedYAMLError as exc:
        mark = _yaml_mark(exc)
        line = (_mark_line(mark, newlines) if mark is not None else 1) + line_offset
        return None, source, [Problem(shown, line, _yaml_message(exc))]
    except yaml.YAMLError as exc:
        return None, source, [Problem(shown, 1 + line_offset, f"YAML error: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()
    return data, source, loader.problems


_YAML_HINTS = {
    "mapping values are not allowed": "a ':' where no key was expected; put text containing ': ' in quotes",
    "could not find expected ':'": "a line that is neither 'key: value' nor '- item'; check indents, quotes",
    "expected ',' or ']'": "a [ ... ] list is not closed, or one of its items needs quotes",
    "expected ',' or '}'": "a { ... } mapping is not closed, or one of its values needs quotes",
    "found undefined alias": "an alias (*name) without a matching anchor (&name)",
    "but found another document": "more than one document; remove the extra '---'",
    "expected <block end>": "this line is not indented like the lines around it",
    "did not find expected key": "this line is not indented like the lines around it",
    "did not find expected '-' indicator": "this list item is not indented like the items above it",
    "found unexpected end of stream": "a quote, [ or { opened here is never closed",
    "an alias refers to itself": "an alias (*name) is used inside its own anchor (&name)",
}


def _yaml_mark(exc: yaml.MarkedYAMLError) -> yaml.Mark | None:
    # An unclosed quote is noticed at the end of the file; the line where it was opened is the useful one.
    if exc.problem and "end of stream" in exc.problem and exc.context_mark is not None:
        return exc.context_mark
    return exc.problem_mark or exc.context_mark


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    problem = str(exc.problem or exc.context or "the file cannot be read")
    if "'\\t'" in problem:
        return "YAML syntax error: a tab character; indent with spaces only"
    starts = re.match(r"found character (.+) that cannot start any token", problem)
    if starts:
        return f"YAML syntax error: a value cannot start with {starts.group(1)}; put the text in quotes"
    if "could not determine a constructor for the tag" in problem or "unsupported tag" in problem:
        return f"YAML error: {problem}; program files use plain YAML without tags"
    for prefix, hint in _YAML_HINTS.items():
        if problem.startswith(prefix):
            return f"YAML syntax error: {hint}"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return f"YAML syntax error: {problem}{context}"


# ------------------------------------------------------------------------------------------------------------
# Lesson bodies in Markdown files


class _FrontMatter(BaseModel):
    """The keys a lesson's Markdown front matter may hold.

    ``title`` and ``estimated_minutes`` fill in the step's own keys when program.yaml leaves them out, so a
    lesson file can carry its own metadata; ``summary`` is a note for authors.
    """

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=150)
    estimated_minutes: int | None = Field(default=None, ge=1, le=120)
    summary: str = ""


def _split_front_matter(text: str) -> tuple[str | None, str, int]:
    """Split ``text`` into (front matter or None, body, line where the body starts).

    Leading blank lines of the body are dropped, and counted, so template errors keep their real line numbers.

    Raises:
        ValueError: the front matter has no closing ``---``.
    """
    lines = text.split("\n")
    front: str | None = None
    start = 0
    if lines and lines[0].rstrip() == "---":
        for n in range(1, len(lines)):
            if lines[n].rstrip() in ("---", "..."):
                front = "\n".join(lines[1:n])
                start = n + 1
                break
        else:
            raise ValueError("the front matter opened on line 1 is never closed with '---'")
    while start < len(lines) and not lines[start].strip():
        start += 1
    return front, "\n".join(lines[start:]).rstrip(), start + 1


def _read_body_files(
    data: dict[str, Any], folder: Path, source: SourceMap
) -> tuple[dict[int, BodySource], list[Problem]]:
    """Read every lesson ``body_file`` before validation, so front matter can supply a missing title.

    Returns:
        Bodies by step index, and the problems met: a path outside the program folder, a missing or unreadable
        file, bad front matter.
    """
    bodies: dict[int, BodySource] = {}
    problems: list[Problem] = []
    steps = data.get("steps")
    if not isinstance(steps, list):
        return bodies, problems
    for i, step in enumerate(steps):
        if (
            not isinstance(step, dict)
            or step.get("kind") != "lesson"
            or not isinstance(step.get("body_file"), str)
        ):
            continue
        relative = str(step["body_file"])
        where = source.line(("steps", i, "body_file"))
        label = f"'{step['id']}'" if isinstance(step.get("id"), str) else str(i + 1)
        target, refusal = _body_target(folder, relative)
        if target is None:
            problems.append(Problem(source.file, where, f"step {label}: body_file '{relative}' {refusal}"))
            continue
        shown = _display(folder / relative)
        text, problem = _read_text(target, shown)
        if text is None:
            problems += [problem] if problem else []
            continue
        try:
            front, body, first_line = _split_front_matter(text)
        except ValueError as exc:
            problems.append(Problem(shown, 1, str(exc)))
            continue
        bodies[i] = BodySource(shown, first_line, body)
        if front is not None:
            problems += _apply_front_matter(front, shown, step)
    return bodies, problems


#: Longest ``body_file`` path, and longest part of one, that any common file system accepts.
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 255


def _body_target(folder: Path, relative: str) -> tuple[Path | None, str]:
    """The file a ``body_file`` names, or None and why not (the rest of a sentence starting with the path).

    Every way a path can fail is an answer here, never an exception: NUL or unpaired surrogates (written as YAML
    escapes), names too long for the file system, symlink loops, permissions.
    """
    if _FORBIDDEN.search(relative):
        return None, "holds a control character or unpaired surrogate; use a plain path such as lessons/x.md"
    if len(relative) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in relative.split("/")):
        return None, f"is too long (at most {MAX_NAME_CHARS} characters a name, {MAX_PATH_CHARS} in all)"
    try:
        target = (folder / relative).resolve()
        if Path(relative).is_absolute() or not target.is_relative_to(folder.resolve()):
            return None, "must be inside the program folder (lessons/x.md)"
        if not target.is_file():
            return None, f"not found (looked for {_display(folder / relative)})"
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop (Python 3.11/3.12)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symlink loop or an unusable path"
        return None, f"cannot be opened: {reason}"
    return target, ""


def _apply_front_matter(front: str, shown: str, step: dict[str, Any]) -> list[Problem]:
    meta, source, problems = _parse_yaml(front, shown, line_offset=1)
    if problems or meta is None:
        return problems
    if not isinstance(meta, dict):
        return [
            Problem(shown, 2, "the front matter must be keys (title, estimated_minutes, summary), not a list")
        ]
    try:
        parsed = _FrontMatter.model_validate(meta)
    except ValidationError as exc:
        return _translate(exc, meta, source, _FrontMatter)
    for key in ("title", "estimated_minutes"):
        value = getattr(parsed, key)
        if value is not None and key not in step:
            step[key] = value
    return []


# ------------------------------------------------------------------------------------------------------------
# Translating pydantic errors into sentences

_SESSION_START_HINT = (
    "use a mapping such as {day: 7, at: '14:00'} (counted from the cohort start) or a date-time with a UTC "
    "offset such as 2026-03-02T15:00:00+00:00"
)


def _translate(
    exc: ValidationError, data: Any, source: SourceMap, root: type[BaseModel] = Program
) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path, branch = _strip_tags(loc)
        start = path[: path.index("start") + 1] if branch is not None else path
        if branch is not None and not _branch_applies(branch, _value_at(data, start)):
            continue
        models = _models_at(root, loc[:-1]) if error["type"] == "extra_forbidden" else []
        message = _message(error, path, models)
        label = _label(path[:-1] if error["type"] in ("missing", "extra_forbidden") else path, data, message)
        problems.append(Problem(source.file, source.line(path), f"{label}: {message}" if label else message))
    return problems


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Loc, str | None]:
    """Remove union tags from a pydantic loc: the step kind after ``steps.N`` and the branch of ``start``.

    Returns:
        The path as it appears in the data, and the ``start`` branch the error came from, if any.
    """
    path: list[str | int] = []
    branch: str | None = None
    for n, part in enumerate(loc):
        if n >= 2 and loc[n - 2] == "steps" and isinstance(loc[n - 1], int) and part in STEP_KINDS:
            continue
        if n >= 1 and loc[n - 1] == "start" and part in ("SessionStart", "datetime"):
            branch = str(part)
            continue
        path.append(part)
    return tuple(path), branch


def _branch_applies(branch: str, value: Any) -> bool:
    """``start`` is ``SessionStart | datetime``; report only the branch the author was evidently writing."""
    return (branch == "SessionStart") == isinstance(value, dict)


_MISSING = object()


def _value_at(data: Any, path: Loc) -> Any:
    node = data
    for part in path:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            return _MISSING
    return node


def _models_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[type[BaseModel]]:
    """The model(s) validating the mapping at ``loc`` (tags included), to list the keys allowed there."""
    models = [root]
    for part in loc:
        if isinstance(part, int):
            continue  # list items: _models_in already looks through list[...]
        tagged = [m for m in models if m.__name__ == part or _kind_of(m) == part]
        if tagged:
            models = tagged
            continue
        following: list[type[BaseModel]] = []
        for model in models:
            for name, info in model.model_fields.items():
                if part in (name, info.alias):
                    following += _models_in(info.annotation)
        models = following
    return models


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _kind_of(model: type[BaseModel]) -> str | None:
    info = model.model_fields.get("kind")
    args = get_args(info.annotation) if info is not None else ()
    return str(args[0]) if args else None


def _keys_of(models: list[type[BaseModel]]) -> list[str]:
    return list(
        dict.fromkeys(info.alias or name for model in models for name, info in model.model_fields.items())
    )


def _describe(value: Any) -> str:
    if value is _MISSING or value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _label(path: Loc, data: Any, message: str) -> str:
    """Name a place the way an author thinks of it: ``step 'intro', question 'q2', options[2].feedback``.

    List positions are counted from 1, as people count; the line number pins the place down anyway.
    """
    parts: list[str] = []
    rest = ""
    for n, part in enumerate(path):
        parent = path[n - 1] if n else None
        if isinstance(part, int) and parent in ("steps", "questions"):
            item = _value_at(data, path[: n + 1])
            ident = item.get("id") if isinstance(item, dict) else None
            noun = "step" if parent == "steps" else "question"
            rest = rest.removesuffix(str(parent)).rstrip(".")  # the list's own key is implied by the noun
            if rest:
                parts.append(rest)
                rest = ""
            parts.append(f"{noun} '{ident}'" if isinstance(ident, str) else f"{noun} {part + 1}")
        elif isinstance(part, int):
            rest += f"[{part + 1}]"
        else:
            rest += f".{part}" if rest else str(part)
    if rest:
        parts.append(rest)
    # "question 'q1' has no correct option" already says which question.
    if parts and parts[-1].endswith("'") and parts[-1] in message:
        parts.pop()
    return ", ".join(parts)


def _message(error: Any, path: Loc, models: list[type[BaseModel]]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    name = str(path[-1]) if path else "value"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error") or error["msg"])
        text = re.sub(r"^(Value error|Assertion failed), ", "", text)
        if text.startswith("hour must be") or text.startswith("minute must be"):
            return f"{_describe(value)} is not a time of day; use HH:MM, for example 09:30"
        return text
    if kind == "missing":
        return f"missing required key '{name}'"
    if kind == "extra_forbidden":
        known = _keys_of(models)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            return f"unknown key '{name}' (did you mean '{close[0]}'?)"
        return f"unknown key '{name}'" + (f" (allowed here: {', '.join(known)})" if known else "")
    if kind == "union_tag_invalid":
        return f"unknown step kind '{ctx.get('tag')}' (known: {', '.join(STEP_KINDS)})"
    if kind == "union_tag_not_found":
        return f"the step has no 'kind'; add one of: {', '.join(STEP_KINDS)}"
    if path and path[-1] == "start" and kind.startswith("datetime"):
        return f"{_describe(value)} is not a session start; {_SESSION_START_HINT}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if len(path) == 2 and path[0] == "steps":
            return f"each step must be a mapping of keys (id, title, kind, ...), not {_describe(value)}"
        return f"must be a mapping of keys, not {_describe(value)}"
    if kind == "list_type":
        return f"must be a list (one '- ' item per line), not {_describe(value)}"
    if kind == "string_type":
        quote = "; put it in quotes" if isinstance(value, int | float | bool) else ""
        return f"must be text, not {_describe(value)}{quote}"
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if kind == "string_too_long":
        return f"is too long ({len(str(value))} characters; at most {ctx.get('max_length')})"
    if kind == "string_pattern_mismatch":
        if name == "id":
            return (
                f"'{value}' is not a valid id; use up to 63 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        return f"{_describe(value)} does not have the expected form"
    if kind == "too_short":
        minimum = ctx.get("min_length")
        return f"needs at least {minimum} item{'s' if minimum != 1 else ''}, has {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} items, has {ctx.get('actual_length')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, not {_describe(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, not {_describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, not {_describe(value)}"
    bounds = {
        "greater_than_equal": ("ge", "at least"),
        "less_than_equal": ("le", "at most"),
        "greater_than": ("gt", "more than"),
        "less_than": ("lt", "less than"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {ctx.get(key)}, not {_describe(value)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, not {_describe(value)}"
    text = str(error["msg"])
    return text[:1].lower() + text[1:]
