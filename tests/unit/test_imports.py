"""The shape of the house, checked by walking the imports of every module under ``bot/`` (nothing is imported).

Arrows point inward: adapters import the core, the core never imports an adapter. Only the composition roots
(``bot/app.py``, and the command line and demo it serves) know the adapter packages, and they import them lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

BOT = ROOT / "bot"
#: The modules allowed to know every part (they build adapters; see docs/architecture.md).
COMPOSITION_ROOTS = {"bot.app", "bot.cli", "bot.demo"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in BOT.rglob("*.py") if "migrations" not in p.parts}


def type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(node: ast.AST) -> set[str]:
    """Modules named by the import statements under ``node`` (``from a import b`` names ``a`` and ``a.b``), at any
    depth (lazy imports in functions count) but not under ``if TYPE_CHECKING:``, which never runs."""
    names: set[str] = set()
    skipped = {id(n) for block in ast.walk(node) if type_checking_only(block) for n in ast.walk(block)}
    for n in ast.walk(node):
        if id(n) in skipped:
            continue
        if isinstance(n, ast.Import):
            names |= {alias.name for alias in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names.add(n.module)
            names |= {f"{n.module}.{alias.name}" for alias in n.names}
    return names


def module_level_imports(path: Path) -> set[str]:
    """What importing the module imports at once: not the lazy imports inside functions, not TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or type_checking_only(node):
            continue
        names |= imported(node)
    return {n for n in names if n in MODULES}


def is_core(name: str) -> bool:
    return not name.startswith("bot.adapters") and name not in COMPOSITION_ROOTS


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_core_modules() -> None:
    core = {name: path for name, path in MODULES.items() if is_core(name)}
    graph = {name: {m for m in module_level_imports(path) if m in core} for name, path in core.items()}
    assert len(graph) > 40  # the walk sees the code base, not an empty folder
    assert cycles(graph) == []


def test_the_walk_finds_a_cycle_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_core_module_imports_an_adapter_even_lazily() -> None:
    offenders = {
        name: sorted(m for m in imported(ast.parse(path.read_text(encoding="utf-8"))) if m.startswith("bot.adapters"))
        for name, path in MODULES.items()
        if is_core(name)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_ports_import_neither_the_dispatcher_nor_an_adapter() -> None:
    names = imported(ast.parse((BOT / "ports.py").read_text(encoding="utf-8")))
    assert not {n for n in names if n.startswith(("bot.dispatcher", "bot.adapters", "bot.commands"))}


def test_no_platform_name_in_the_core_rules() -> None:
    """Journeys, nudges, the dispatcher and the commands never name a platform: adapters map platform roles to
    core roles on ``Actor.roles`` and declare ``/learn`` from the core's registry."""
    paths = [*(BOT / "journeys").rglob("*.py"), *(BOT / "nudges").rglob("*.py"), BOT / "dispatcher.py", BOT / "commands.py"]
    named = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in paths
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if any(word in line.lower() for word in ("slack", "discord", "teams"))
    ]
    assert len(paths) > 10 and named == []


#: Issue 9's ceiling: a function longer than this is doing several things (migrations are exempt, they are data).
MAX_FUNCTION_LINES = 80


def long_functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    """``(name, first line, length)`` of every function in ``tree`` longer than the ceiling."""
    return [
        (n.name, n.lineno, n.end_lineno - n.lineno + 1)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.end_lineno is not None
        and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_in_bot_is_longer_than_the_ceiling() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in MODULES.values()
        for name, line, length in long_functions(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, "split these functions:\n" + "\n".join(found)


def test_the_ceiling_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(ast.parse(f"def f():\n{body}\n")) == [("f", 1, MAX_FUNCTION_LINES + 1)]
