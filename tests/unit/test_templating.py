"""The one template loader: chat and HTML flavours over one search path, features' folders, pluggable filters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bot
from bot.templating import CORE, Templates, templates

BOT = Path(bot.__file__).resolve().parent


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_chat_text_is_markdown_and_html_is_escaped(tmp_path):
    t = Templates(write(tmp_path / "core", "hello.j2", "\nHi **{{ name }}** & co\n"))
    write(tmp_path / "core", "page.html.j2", "<p>{{ name }}</p>")
    assert t.chat("hello", name="<Ana>") == "Hi **<Ana>** & co"
    assert t.html("page", name="<Ana>") == "<p>&lt;Ana&gt;</p>"


def test_a_feature_folder_joins_the_search_path_and_cannot_shadow_core_wording(tmp_path):
    core = write(tmp_path / "core", "digest.j2", "core")
    t = Templates(core)
    t.add_search_path(write(tmp_path / "feature", "catchup.j2", "feature {{ n }}"))
    assert t.chat("catchup", n=1) == "feature 1"
    clashing = write(tmp_path / "other", "digest.j2", "other")
    with pytest.raises(ValueError, match=r"digest\.j2 is provided by both .*core and .*other"):
        t.add_search_path(clashing)
    assert t.chat("digest") == "core"


def test_a_filter_added_after_first_use_reaches_both_flavours(tmp_path):
    folder = write(tmp_path / "core", "x.j2", "{{ v | shout }}")
    write(folder, "x.html.j2", "{{ v | shout }}")
    t = Templates(folder)
    with pytest.raises(Exception, match="shout"):
        t.chat("x", v="a")
    t.add_filter("shout", str.upper)
    assert (t.chat("x", v="a"), t.html("x", v="<a>")) == ("A", "&lt;A&gt;")


def test_finalize_makes_chat_values_inert_and_leaves_html_to_autoescape(tmp_path):
    folder = write(tmp_path / "core", "x.j2", "Hi {{ who }}, *{{ 2 }}*")
    write(folder, "x.html.j2", "{{ who }}")
    t = Templates(folder)
    t.set_finalize(lambda v: str(v).replace("[", "\\["))
    assert t.chat("x", who="[link](x)") == "Hi \\[link](x), *2*"
    assert t.html("x", who="[a]") == "[a]"


def test_the_shipped_templates_all_load(tmp_path):
    # Importing them registers the live feature's folder and the report's filters.
    import importlib

    for module in ("bot.live.recaps", "bot.reporting.html"):
        importlib.import_module(module)

    names = [p.name for folder in templates.paths for p in folder.glob("*.j2")]
    assert CORE in templates.paths and len(templates.paths) >= 2
    assert "digest.j2" in names and "catchup.j2" in names and "report.html.j2" in names
    for name in names:
        flavour = "html" if name.endswith(".html.j2") else "chat"
        templates.environment(flavour).get_template(name)  # parses, or raises naming the file


def test_only_the_loader_and_the_authoring_sandbox_build_jinja_environments():
    builders = set()
    for path in BOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ("Environment", "SandboxedEnvironment", "AuthoredEnvironment"):
                    builders.add(path.relative_to(BOT).as_posix())
    assert builders == {"templating.py", "journeys/render.py"}


def test_kept_chat_text_tells_markdown_from_plain_text_and_follows_a_new_finalize(tmp_path):
    """Rendered chat text is kept by template and context; the key holds each value's type, because a plain name
    is made inert and a Markdown value is not, and a change of finalize or filters forgets what was kept."""
    from bot.markup import Markdown, finalize

    t = Templates(write(tmp_path / "core", "hi.j2", "Hi {{ who }} ({{ n }}, {{ tags | join(', ') }})"))
    t.set_finalize(finalize)
    plain = t.chat("hi", who="*Ana*", n=1, tags=["a"])
    assert plain == r"Hi \*Ana\* (1, a)"
    assert t.chat("hi", who=Markdown("*Ana*"), n=1, tags=["a"]) == "Hi *Ana* (1, a)"
    assert t.chat("hi", who="*Ana*", n=True, tags=["a"]) == r"Hi \*Ana\* (True, a)"
    assert t.chat("hi", who="*Ana*", n=1, tags=["a", "b"]) == r"Hi \*Ana\* (1, a, b)"
    assert t.chat("hi", who="*Ana*", n=1, tags=["a"]) == plain
    t.set_finalize(None)
    assert t.chat("hi", who="*Ana*", n=1, tags=["a"]) == "Hi *Ana* (1, a)"
    # A value that is not plain data is rendered each time, never keyed.
    class Box:
        who = "Bo"

    write(tmp_path / "core", "box.j2", "{{ b.who }}")
    box = Box()
    assert t.chat("box", b=box) == "Bo"
    box.who = "Cy"
    assert t.chat("box", b=box) == "Cy"


def test_authored_text_is_kept_by_what_it_reads_and_never_served_for_other_values():
    """Authored text is kept by the context values its template reads; a key too coarse would serve one learner's
    text to another, so every case here changes a value the text shows."""
    from bot.journeys.render import render_text

    def learner(first: str, name: str = "", tz: str = "UTC") -> dict[str, object]:
        return {"learner": {"name": name or f"{first} X", "first_name": first, "tz": tz}, "due": ""}

    greeting = "Hi {{ learner.first_name }}"
    assert render_text(greeting, learner("Ana")) == "Hi Ana"
    assert render_text(greeting, learner("Bo")) == "Hi Bo"
    assert render_text(greeting, learner("Ana", "Ana Other")) == "Hi Ana"  # the surname is not read
    assert render_text(greeting, learner("*Ana*")) == r"Hi \*Ana\*"  # inert, keyed apart from "Ana"
    whole = "{% for k in learner %}{{ learner[k] }};{% endfor %}"
    assert render_text(whole, learner("Cy")) == "Cy X;Cy;UTC;"
    assert render_text(whole, learner("Cy", tz="Asia/Tokyo")) == "Cy X;Cy;Asia/Tokyo;"
    method = "{{ learner.values() | join(',') }}"
    assert render_text(method, learner("Di")) == "Di X,Di,UTC"
    assert render_text(method, learner("Ed")) == "Ed X,Ed,UTC"
    assert render_text("{{ due or 'soon' }}", {**learner("Fa"), "due": "Mon 2 Mar"}) == "Mon 2 Mar"
    assert render_text("{{ due or 'soon' }}", learner("Fa")) == "soon"
