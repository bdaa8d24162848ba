"""Short replies live in bot/replies.py: the modules that answer people hold no sentences of their own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bot
from bot import replies

BOT = Path(bot.__file__).resolve().parent
#: The modules that answer a button press or a ``/learn`` command.
ANSWERING = ("commands.py", "dispatcher.py", "live/chat.py")
SENTENCE = re.compile(r"[A-Za-z']+ [A-Za-z']+.*[.!?]\s*$")
#: The generic apology belongs to the adapter base (it is what every platform shows for an unexpected error).
APOLOGY = "Sorry, something went wrong on our side. It has been logged; please try again in a minute."


def sentences(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SENTENCE.search(node.value)
        and node.value != APOLOGY
    ]


def test_modules_that_answer_people_keep_no_sentences_in_code():
    found = {name: sentences(BOT / name) for name in ANSWERING}
    assert found == {name: [] for name in ANSWERING}


def test_the_check_would_notice_a_sentence(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Doc."""\ndef f():\n    return reply("That went well. Thanks!")\n', encoding="utf-8")
    assert sentences(sample) == [(3, "That went well. Thanks!")]


def test_every_rsvp_answer_has_a_reply_and_a_card_line():
    assert set(replies.RSVP) == set(replies.RSVP_CONTEXT) == {"yes", "maybe", "no", "wait"}


def test_parameterised_replies_keep_their_wording():
    assert replies.usage("roster <cohort>") == "Usage: /learn roster <cohort>"
    assert replies.released(2, 1) == "Released: 2 catch-up lesson(s) and 1 recording link(s) are on their way."
    assert replies.streak(1) == "1 day in a row" and replies.streak(3) == "3 days in a row"
