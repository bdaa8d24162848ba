"""The loader reads YAML with libyaml's parser when it can (``_CLineLoader``) and PyYAML's pure-Python one otherwise
(``_LineLoader``, the reference). Both must give the same data, the same line of every key and text, and the same
problems, so which one read a file never shows in what an author or the engine sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.journeys import loader
from tests.conftest import CONTENT

pytestmark = pytest.mark.skipif(loader._FastLineLoader is None, reason="PyYAML was built without libyaml")

SNIPPETS = [
    "a: é😀x\nb: 1\n",
    "a: 1\r\nb: 2\r\n",
    'a: "x\\u2028y \\0 \\x41"\nb: 2\n',
    "a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}, j: 2}\n",
    "a: |\n  t\n  u\nb: >-\n  v\n\n  w\nc: |+\n  x\n\n",
    "- 'q''s'\n- \"\\x41\"\n- ~\n- 2024-01-01\n- 1:30\n- 0o17\n- 017\n- 0x1F\n- .inf\n- yes\n- on\n- 1_000\n",
    "? [a, b]\n: 1\nx: 1\nx: 2\n1: one\nnull: n\n",
    "steps:\n  - id: s\n    body: |\n      Line one\n\n      - item: with colon\n  - {id: t, kind: quiz}\n",
    "# only a comment\n",
    "",
    "--- \nkey: value\n...\n",
    "a: !!set {x, y}\n",
    "a: !custom 1\n",
    "a: [\n",
    "a: 'unclosed\n",
    "a:\n\t- tab\n",
    "a: *nowhere\n",
    "a: &x [*x]\n",
    "- " * 60 + "deep\n",
    "a: b: c\n",
    "x: 1\n---\ny: 2\n",
]


def _both(text: str, offset: int = 0) -> tuple[Any, Any]:
    fast = loader._parse_yaml(text, "f.yaml", offset)
    real = loader._FastLineLoader
    try:
        loader._FastLineLoader = None
        pure = loader._parse_yaml(text, "f.yaml", offset)
    finally:
        loader._FastLineLoader = real
    return _plain(fast), _plain(pure)


def _plain(result: tuple[Any, Any, Any]) -> tuple[Any, ...]:
    data, source, problems = result
    return data, source.file, source.keys, source.texts, [str(p) for p in problems]


@pytest.mark.parametrize("text", SNIPPETS)
def test_a_snippet_reads_the_same_with_either_parser(text: str) -> None:
    fast, pure = _both(text, offset=3)
    assert fast == pure


@pytest.mark.parametrize("path", sorted(CONTENT.glob("*/program.yaml")), ids=lambda p: p.parent.name)
def test_every_shipped_program_reads_the_same_with_either_parser(path: Path) -> None:
    fast, pure = _both(path.read_text(encoding="utf-8"))
    assert fast == pure and fast[0] is not None


def test_front_matter_reads_the_same_with_either_parser() -> None:
    texts = [p.read_text(encoding="utf-8") for p in sorted(CONTENT.glob("*/lessons/*.md"))]
    fronts = [loader._split_front_matter(t) for t in texts]
    found = [front for front, _, _ in fronts if front]
    assert found, "the shipped lessons have front matter"
    for front in found:
        fast, pure = _both(front, 1)
        assert fast == pure


def test_the_libyaml_parser_reads_the_shipped_programs() -> None:
    """Guards the speed-up itself: were every file to fall back to the pure parser, nothing else would notice."""
    for path in sorted(CONTENT.glob("*/program.yaml")):
        text = path.read_text(encoding="utf-8")
        assert loader._PURE_ONLY.search(text) is None, path
        fast = loader._FastLineLoader(text, loader.SourceMap(str(path)))  # type: ignore[misc]
        assert fast.build() is not None
