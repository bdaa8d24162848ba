"""Where long Markdown is cut into messages: at paragraphs and list items, never inside a list's lead-in pair or
an inline span, and every part within the 1,200 characters a message is held to."""

from __future__ import annotations

import re

from bot.journeys.chunks import MAX_CHUNK, split_markdown, truncate_markdown
from bot.journeys.loader import load_library
from bot.journeys.render import render_text
from tests.unit.test_content import CONTENT

SPANS = re.compile(r"\*\*|\[[^\]]*$|`")


def balanced(part: str) -> bool:
    """No span opened in ``part`` is left open: bold markers pair up, no link or code is cut."""
    return part.count("**") % 2 == 0 and part.count("`") % 2 == 0 and part.count("[") == part.count("](") + part.count("[ ]")


def test_a_lead_in_sentence_stays_with_its_list() -> None:
    lead = "Filler sentence number one goes here. " * 30
    text = f"{lead}\n\nBefore you answer, ask yourself three questions:\n\n- What happened?\n- Who saw it?\n- What now?"
    parts = split_markdown(text)
    assert len(parts) == 2
    assert parts[1].startswith("Before you answer, ask yourself three questions:\n\n- What happened?")


def test_a_list_is_cut_between_items_never_inside_one() -> None:
    items = "\n".join(f"- item {i}: **a bold phrase** and some words to make the item long enough" for i in range(40))
    parts = split_markdown(items)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= MAX_CHUNK
        assert all(line.startswith("- item ") for line in part.splitlines())


def test_a_long_paragraph_is_cut_after_a_sentence_and_outside_bold() -> None:
    sentence = "This is one sentence with **a bold phrase that runs on for quite a while** inside it. "
    parts = split_markdown(sentence * 30)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= MAX_CHUNK
        assert balanced(part), part
        assert part.endswith(".")


def test_a_teaser_never_cuts_bold_or_a_link() -> None:
    text = "Words " * 60 + "**the part in bold that straddles the cut point for sure** and [a link](https://x.example/a b)."
    for limit in range(330, 420, 7):
        teaser = truncate_markdown(text, limit)
        assert len(teaser) <= limit
        assert balanced(teaser), teaser


def test_every_part_of_every_shipped_lesson_fits_and_keeps_its_spans() -> None:
    ctx = {
        "learner": {"name": "Ana María Fernández-López", "first_name": "Ana María", "tz": "Pacific/Kiritimati"},
        "cohort": {"name": "spring-leads", "start_date": "2026-03-02", "channel": "spring"},
        "program": {"title": "P", "id": "p"},
        "step": {"title": "S", "id": "s", "kind": "lesson"},
        "due": "Wednesday 4 March, 09:30",
        "session": {"title": "Workshop", "start_local": "Monday 9 March, 14:00 GMT", "start_date": "Monday 9 March",
                    "start_time": "14:00 GMT", "duration": "1h30m", "join_url": "https://meet.example.com/x",
                    "location": "Room 4"},
    }
    counted = 0
    for loaded in load_library(CONTENT).values():
        for step_id, body in loaded.bodies.items():
            for part in split_markdown(render_text(body, ctx)):
                assert len(part) <= MAX_CHUNK, f"{loaded.program.id}/{step_id}: {len(part)} characters"
                assert balanced(part), f"{loaded.program.id}/{step_id}: a span is cut in {part[-80:]!r}"
                assert not part.rstrip().rstrip("*_").endswith(":"), f"{loaded.program.id}/{step_id}: a lead-in is cut off its list"
            counted += 1
    assert counted >= 19
