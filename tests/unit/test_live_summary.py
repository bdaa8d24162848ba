"""The offline summary on the shipped sample and on two realistic transcripts (a WebVTT workshop with voice tags
and a plain ``Name:`` coaching lab): attribution, host versus participant, short key lines, no small talk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.live.summarize import extractive_recap, is_filler, sentences
from bot.live.transcripts import parse_transcript

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "live" / "samples" / "kickoff.vtt"
WORKSHOP = ROOT / "tests" / "data" / "transcripts" / "feedback-workshop.vtt"
LAB = ROOT / "tests" / "data" / "transcripts" / "coaching-lab.txt"
POINT = re.compile(r"^(?P<name>.+?) \((?P<role>host|participant)\): (?P<sentence>.+)$")


def recap_of(path: Path, hosts: tuple[str, ...] = ()) -> tuple[str, object]:
    text = parse_transcript(path.read_bytes(), path.name).text
    return text, extractive_recap(text, hosts=hosts)


def said(text: str) -> dict[str, str]:
    """sentence -> who said it, from the transcript itself."""
    return {sentence: speaker for speaker, sentence in sentences(text) if speaker}


@pytest.mark.parametrize(
    ("path", "host"), [(SAMPLE, "Rui Costa"), (WORKSHOP, "Priya Natarajan"), (LAB, "Marta Nowak")]
)
def test_key_points_say_who_said_them_and_quote_the_session(path, host):
    text, recap = recap_of(path)
    assert recap.host == host  # nobody configured: the first speaker runs the session
    who = said(text)
    assert 3 <= len(recap.key_points) <= 5
    for point in recap.key_points:
        m = POINT.match(point)
        assert m, point
        assert who[m["sentence"]] == m["name"]  # extractive, and attributed to the person who said it
        assert m["role"] == ("host" if m["name"] == host else "participant")
    assert recap.summary.startswith(f"{host} (host): ")


@pytest.mark.parametrize("path", [SAMPLE, WORKSHOP, LAB])
def test_greetings_and_logistics_never_reach_the_recap(path):
    _, recap = recap_of(path)
    everything = recap.summary + "\n" + "\n".join(recap.key_points)
    for small_talk in (
        "Good morning",
        "Welcome back",
        "Can you hear me",
        "wait a minute",
        "take a short break",
        "not on mute",
        "see my screen",
        "Thank you all",
        "Thanks everyone",
        "That's all for today",
        "Hello everyone",
        "Now, how the next three weeks work",
        "Last part",
    ):
        assert small_talk not in everything


def test_short_key_lines_are_kept():
    _, workshop = recap_of(WORKSHOP)
    _, lab = recap_of(LAB)
    assert "Priya Natarajan (host): Problems surface while they are still small." in workshop.key_points
    assert "Marta Nowak (host): Solutions you hand out are solutions they never own." in lab.key_points


def test_a_participants_words_are_never_the_hosts():
    text = (
        "Priya Natarajan: Feedback describes a specific behaviour and its impact on the team.\n\n"
        "Sofía Ramírez: I had never heard about the impact part of feedback before this program.\n\n"
        "Priya Natarajan: Specific feedback about impact changes behaviour faster than general praise."
    )
    recap = extractive_recap(text, summary_sentences=3, key_points=0)
    assert recap.summary == (
        "Priya Natarajan (host): Feedback describes a specific behaviour and its impact on the team. "
        "Sofía Ramírez (participant): I had never heard about the impact part of feedback before this program. "
        "Priya Natarajan (host): Specific feedback about impact changes behaviour faster than general praise."
    )


def test_the_configured_host_wins_over_the_first_speaker_and_names_are_folded():
    text, _ = recap_of(WORKSHOP)
    recap = extractive_recap(text, hosts=["Nobody Here", "sofia ramirez"])
    assert recap.host == "Sofía Ramírez"
    assert any(p.startswith("Priya Natarajan (participant): ") for p in recap.key_points)


def test_text_without_speakers_stays_unattributed():
    text = "Delegation grows the team. Problems surface while they are still small. Hello everyone."
    recap = extractive_recap(text, summary_sentences=2, key_points=0)
    assert recap.summary == "Delegation grows the team. Problems surface while they are still small."
    assert recap.host is None


def test_a_colon_inside_a_sentence_is_not_a_speaker():
    assert sentences("Here is the point: trust beats authority.") == [
        (None, "Here is the point: trust beats authority.")
    ]


@pytest.mark.parametrize(
    ("line", "filler"),
    [
        ("Welcome back, everyone.", True),
        ("Can you hear me okay?", True),
        ("Let's take a break and come back in ten minutes.", True),
        ("Sorry, you're on mute.", True),
        ("I'll drop the link in the chat.", True),
        ("Problems surface while they are still small.", False),
        ("Listen for the goal first, then the reality.", False),
    ],
)
def test_filler(line, filler):
    assert is_filler(line) is filler
