"""Transcript parsing on real-format WebVTT and SRT files, plain text, and files we must refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.live.transcripts import TranscriptError, parse_transcript

SAMPLES = Path(__file__).resolve().parents[2] / "bot" / "live" / "samples"


def test_webvtt_with_voices_notes_and_cue_ids():
    t = parse_transcript((SAMPLES / "kickoff.vtt").read_bytes(), "kickoff.vtt")
    assert t.format == "vtt"
    assert t.speakers == ["Rui Costa", "Amara Okafor", "Ben Carter", "Dana Levi", "Chen Wei"]
    assert t.duration == pytest.approx(204.3)
    text = t.text
    assert text.startswith("Rui Costa: Good morning everyone, and welcome")
    # Consecutive cues of one speaker become one paragraph; no cue numbers, timings, tags or NOTE text remain.
    assert "-->" not in text and "<v" not in text and "Exported from" not in text and "\n1\n" not in text
    assert "\n\nAmara Okafor: Hi, I'm Amara." in text


def test_srt_with_uppercase_speakers_italics_and_sound_cues():
    t = parse_transcript((SAMPLES / "closing.srt").read_bytes(), "closing.srt")
    assert t.format == "srt"
    assert t.speakers == ["Rui Costa", "Priya Shah", "Liam Walsh"]
    assert "[laughter]" not in t.text and "<i>" not in t.text
    # A turn split over cues keeps its speaker (cue 2 has no name).
    assert t.segments[1].speaker == "Rui Costa"
    assert "Priya Shah: My win is that I stopped cancelling one-on-ones." in t.text


def test_crlf_bom_and_entities_in_vtt():
    raw = (
        "\ufeffWEBVTT\r\n\r\n00:01.000 --> 00:02.500 line:0\r\n<v.loud Ana>Fish &amp; chips</v>\r\n".encode()
    )
    t = parse_transcript(raw, "x.vtt")
    assert t.text == "Ana: Fish & chips"


def test_rolling_auto_captions_are_not_repeated():
    raw = (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nhello there\n\n"
        "00:00:02.000 --> 00:00:04.000\nhello there\nhow are you\n\n"
        "00:00:04.000 --> 00:00:06.000\nhello there\nhow are you\n"
    )
    assert parse_transcript(raw, "auto.vtt").text == "hello there how are you"


def test_plain_text_with_speakers_and_stamps():
    raw = b"[00:00:05] Rui: Welcome back.\n[00:01:10] Ana: Thanks!\nPlain line without a speaker.\n"
    t = parse_transcript(raw, "notes.txt")
    assert t.format == "text"
    assert t.speakers == ["Rui", "Ana"]
    assert t.segments[1].start == 70
    assert "[00:" not in t.text


def test_zoom_style_text_export():
    raw = b"Rui Costa  00:00:03\nWelcome to the session.\n\nAna Lima  00:00:09\nGlad to be here.\n"
    t = parse_transcript(raw, "zoom.txt")
    assert t.text == "Rui Costa: Welcome to the session.\n\nAna Lima: Glad to be here."


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.vtt", "empty.vtt: the transcript is empty"),
        (b"   \n\n", "blank.txt", "blank.txt: the transcript is empty"),
        (b"\x00\x00\x00\x18ftypmp42", "meeting.vtt", "looks like a binary file"),
        (
            b"WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nHi\n",
            "bad.vtt",
            "bad.vtt: line 3: '00:00:0x.000' is not a valid timestamp (use HH:MM:SS.mmm)",
        ),
        (
            b"1\n00:00:01,000 --> 00:61:02,000\nHi\n",
            "bad.srt",
            "bad.srt: line 2: '00:61:02,000' is not a valid timestamp (use HH:MM:SS,mmm)",
        ),
        (b"1\nHello\n", "cue.srt", "cue.srt: line 2: expected a timing line"),
        (b"Hello\n", "x.vtt", "x.vtt: line 1: a WebVTT file must start with 'WEBVTT'"),
        (
            b"WEBVTT\n\n00:00:05.000 --> 00:00:01.000\nHi\n",
            "back.vtt",
            "back.vtt: line 3: the cue ends before it starts",
        ),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n[music]\n", "music.vtt", "no spoken text"),
        (b"caf\xe9 au lait\n", "latin1.txt", "latin1.txt: line 1: the file is not UTF-8 text"),
    ],
)
def test_bad_files_give_one_clear_line(data, name, message):
    with pytest.raises(TranscriptError) as err:
        parse_transcript(data, name)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
