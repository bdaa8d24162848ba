"""Transcript files (WebVTT, SRT, plain text) -> clean text with speakers.

Meeting tools export transcripts in one of three shapes: WebVTT (Zoom, Teams, Google Meet, YouTube), SubRip
(``.srt``, most video editors) and plain text (``Speaker: words`` lines, sometimes with ``[00:01:02]`` stamps).
Whatever the shape, the result is the same: one paragraph per speaker turn, ``Speaker: text``, with cue numbers,
timestamps, styling tags and the rolling repeats of auto-captions removed. That text feeds the recap, the
offline summary and the search index.

A file we cannot read gives one :class:`TranscriptError` line naming the file and, where it helps, the line.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from bot.errors import InvalidInput
from bot.live.textfiles import decode_upload

#: Transcripts are text; a few megabytes is hours of speech. Anything bigger is almost surely the recording.
MAX_BYTES = 5_000_000

_ARROW = "-->"
_VTT_TS = re.compile(r"^(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)\.(\d{3})$")
_SRT_TS = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{1,3})$")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>|<\d{1,3}:\d{2}(?::\d{2})?\.\d{3}>|\{\\[^}]*\}")
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+([^>]+)>")
_SPEAKER = re.compile(r"^(?:-\s*)?([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,3}|[A-Z][A-Z .'-]{1,40}):\s+(.+)$")
_BRACKET_STAMP = re.compile(r"^\s*[\[(]?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?[\])]?\s*[-–]?\s*")
_SPEAKER_STAMP = re.compile(r"^(.{1,60}?)\s+[\[(]?\d{1,2}:\d{2}(?::\d{2})?[\])]?\s*:?\s*$")
_SOUND = re.compile(r"^\s*[\[(][^\])]{1,40}[\])]\s*$")  # [music], (laughter)


class TranscriptError(InvalidInput):
    """A transcript file we cannot use. The message is one line naming the file."""


@dataclass(frozen=True)
class Segment:
    start: float | None
    speaker: str | None
    text: str


@dataclass
class Transcript:
    format: str  # vtt | srt | text
    segments: list[Segment] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(s.speaker for s in self.segments if s.speaker))

    @property
    def duration(self) -> float | None:
        starts = [s.start for s in self.segments if s.start is not None]
        return max(starts) if starts else None

    @property
    def text(self) -> str:
        """One paragraph per speaker turn: consecutive segments of one speaker are joined."""
        paragraphs: list[tuple[str | None, list[str]]] = []
        for seg in self.segments:
            if paragraphs and paragraphs[-1][0] == seg.speaker:
                paragraphs[-1][1].append(seg.text)
            else:
                paragraphs.append((seg.speaker, [seg.text]))
        out = []
        for speaker, parts in paragraphs:
            words = " ".join(parts)
            out.append(f"{speaker}: {words}" if speaker else words)
        return "\n\n".join(out)


def parse_transcript(data: bytes | str, filename: str = "transcript") -> Transcript:
    """Parse a transcript file's content; the format comes from the content, the extension breaks ties.

    Raises:
        TranscriptError: binary or empty files, malformed timestamps, cues without text.
    """
    name = PurePath(filename).name or "transcript"
    text = _decode(data, name)
    if not text.strip():
        raise TranscriptError(f"{name}: the transcript is empty")
    lines = text.split("\n")
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    suffix = PurePath(name).suffix.lower()
    if first.startswith("WEBVTT") or suffix == ".vtt":
        if not first.startswith("WEBVTT"):
            raise TranscriptError(f"{name}: line 1: a WebVTT file must start with 'WEBVTT'")
        result = _parse_cues(lines, name, "vtt")
    elif suffix == ".srt" or _ARROW in text:
        result = _parse_cues(lines, name, "srt")
    else:
        result = _parse_plain(lines)
    if not result.segments:
        raise TranscriptError(f"{name}: no spoken text found in the transcript")
    return result


def _decode(data: bytes | str, name: str) -> str:
    if isinstance(data, str):
        raw_text = data
    else:
        if len(data) > MAX_BYTES:
            raise TranscriptError(
                f"{name}: the file is {len(data) // 1_000_000} MB; a transcript is text, under 5 MB"
            )
        raw_text = decode_upload(
            data,
            name,
            error=TranscriptError,
            binary="this looks like a binary file (audio, video or a document), not a transcript",
            not_utf8="export the transcript as UTF-8 (.vtt, .srt or .txt)",
        )
    text = raw_text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    control = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\n\t")
    if control > 8:
        raise TranscriptError(f"{name}: this looks like a binary file, not a transcript")
    return text


def _seconds(stamp: str, fmt: str) -> float | None:
    m = (_VTT_TS if fmt == "vtt" else _SRT_TS).match(stamp)
    if m is None:
        return None
    hours = int(m.group(1) or 0)
    return hours * 3600 + int(m.group(2)) * 60 + int(m.group(3)) + int(m.group(4).ljust(3, "0")) / 1000


def _parse_cues(lines: list[str], name: str, fmt: str) -> Transcript:
    """Cue-based formats. WebVTT and SRT differ in the header, the decimal mark and speaker markup."""
    expected = "HH:MM:SS.mmm" if fmt == "vtt" else "HH:MM:SS,mmm"
    out = Transcript(fmt)
    i = 0
    if fmt == "vtt":
        # Skip the header block (WEBVTT line plus optional metadata) up to the first blank line.
        while i < len(lines) and lines[i].strip():
            i += 1
    previous = ""
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if fmt == "vtt" and (line.startswith(("NOTE", "STYLE", "REGION")) and _ARROW not in line):
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        timing_at = i
        if _ARROW not in line:
            # A cue identifier (always in SRT, optional in WebVTT); the timing line follows.
            timing_at = i + 1
            if timing_at >= len(lines) or _ARROW not in lines[timing_at]:
                if fmt == "srt" and line.isdigit():
                    raise TranscriptError(
                        f"{name}: line {timing_at + 1}: expected a timing line such as "
                        f"'00:00:01,000 --> 00:00:04,000' after cue {line}"
                    )
                raise TranscriptError(
                    f"{name}: line {i + 1}: '{line[:40]}' is neither a cue number nor a timing line"
                )
        timing = lines[timing_at].strip()
        start_raw, _, rest = timing.partition(_ARROW)
        end_raw = rest.strip().split()[0] if rest.strip() else ""
        start = _seconds(start_raw.strip(), fmt)
        end = _seconds(end_raw, fmt)
        if start is None or end is None:
            bad = start_raw.strip() if start is None else end_raw
            raise TranscriptError(
                f"{name}: line {timing_at + 1}: '{bad}' is not a valid timestamp (use {expected})"
            )
        if end < start:
            raise TranscriptError(f"{name}: line {timing_at + 1}: the cue ends before it starts")
        i = timing_at + 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i].strip())
            i += 1
        speaker, words = _cue_text(body)
        if speaker is None and out.segments:
            speaker = out.segments[-1].speaker  # a turn split over several cues names its speaker once
        if not words or words == previous:
            continue  # an empty cue, or an auto-caption repeating the line on screen
        full = words
        if previous and words.startswith(previous + " "):
            words = words[len(previous) + 1 :]  # rolling captions: keep only what is new
        previous = full
        out.segments.append(Segment(start, speaker, words))
    return out


def _cue_text(body: list[str]) -> tuple[str | None, str]:
    speaker: str | None = None
    parts: list[str] = []
    for raw in body:
        voice = _VOICE.search(raw)
        if voice and speaker is None:
            speaker = voice.group(1).strip()
        cleaned = _clean(raw)
        if not cleaned or _SOUND.match(cleaned):
            continue
        m = _SPEAKER.match(cleaned)
        if m and speaker is None and not parts:
            speaker, cleaned = _speaker_name(m.group(1)), m.group(2)
        parts.append(cleaned.lstrip("- ").strip())
    return speaker, " ".join(p for p in parts if p)


def _clean(raw: str) -> str:
    text = _TAG.sub("", raw)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def _speaker_name(raw: str) -> str:
    name = raw.strip()
    return name.title() if name.isupper() and len(name) > 3 else name


def _parse_plain(lines: list[str]) -> Transcript:
    """``Speaker: text`` lines, ``Speaker  00:01:02`` headers (Zoom/Teams .txt exports) or bare paragraphs."""
    out = Transcript("text")
    speaker: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line or _SOUND.match(line):
            continue
        header = _SPEAKER_STAMP.match(line)
        if header and not header.group(1).rstrip().endswith((".", "?", "!")):
            speaker = _speaker_name(header.group(1).strip().rstrip(":"))
            continue
        stamped = _BRACKET_STAMP.match(line)
        start: float | None = None
        if stamped and stamped.end() < len(line):
            start = _plain_seconds(stamped.group(0))
            line = line[stamped.end() :]
        m = _SPEAKER.match(line)
        if m:
            speaker, line = _speaker_name(m.group(1)), m.group(2)
        line = _clean(line)
        if line:
            out.segments.append(Segment(start, speaker, line))
    return out


def _plain_seconds(stamp: str) -> float | None:
    digits = re.findall(r"\d+", stamp)
    if len(digits) < 2:
        return None
    parts = [int(d) for d in digits[:3]]
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]
