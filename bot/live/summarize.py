"""The offline recap: an extractive summary when no LLM is configured.

It picks sentences from the transcript itself, so it never says anything the session did not. Sentences are
scored by how many of the session's frequent content words they carry (a classic frequency-based extractive
summary), with a bonus for the lead's explanations and a penalty for small talk and questions. The best few,
in their original order, become the summary; the next best become key points. No recap quiz is produced:
writing good distractors needs a language model, and a bad quiz is worse than none.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[a-z][a-z'-]+")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing don't down during each few for from further
    had has have having he her here hers herself him himself his how i i'd i'll i'm i've if in into is
    it it's its itself just let's me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that that's the their theirs them
    themselves then there these they this those through to too under until up very was we we'll we're
    were what when where which while who whom why will with would you you'll you're your yours yourself
    yourselves yes yeah okay ok um uh like really thing things get got going go one two well right much
    many lot bit kind sort actually basically today everyone thanks thank hi hello morning afternoon""".split()  # noqa: SIM905
)
_SMALL_TALK = re.compile(
    r"^(?:hi|hello|good (?:morning|afternoon|evening)|thanks|thank you|see you|that's all|bye|welcome)\b",
    re.I,
)


@dataclass(frozen=True)
class OfflineRecap:
    summary: str
    key_points: list[str]


def sentences(text: str) -> list[tuple[str | None, str]]:
    """Split transcript text (``Speaker: words`` paragraphs) into (speaker, sentence) pairs."""
    out: list[tuple[str | None, str]] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = " ".join(para.split())
        speaker: str | None = None
        m = re.match(r"^([^:]{1,60}):\s+(.*)$", para)
        if m and not m.group(1).rstrip().endswith((".", "?", "!")):
            speaker, para = m.group(1), m.group(2)
        for sentence in _SENTENCE.split(para):
            sentence = sentence.strip()
            if sentence:
                out.append((speaker, sentence))
    return out


def _words(sentence: str) -> list[str]:
    return [w.strip("'-") for w in _WORD.findall(sentence.lower()) if w.strip("'-") not in STOPWORDS]


def extractive_recap(text: str, *, summary_sentences: int = 4, key_points: int = 5) -> OfflineRecap:
    """Summarise a transcript without a model.

    Args:
        text: clean transcript text (from :mod:`bot.live.transcripts`).
        summary_sentences: how many sentences the summary paragraph keeps.
        key_points: how many further sentences become bullet points.
    """
    pairs = sentences(text)
    if not pairs:
        return OfflineRecap(summary="", key_points=[])
    freq: Counter[str] = Counter(w for _, s in pairs for w in _words(s))
    if not freq:
        return OfflineRecap(summary=" ".join(s for _, s in pairs[:summary_sentences]), key_points=[])
    top = max(freq.values())
    by_speaker = Counter(sp for sp, _ in pairs if sp)
    host = by_speaker.most_common(1)[0][0] if by_speaker else None
    scored: list[tuple[float, int]] = []
    for i, (speaker, sentence) in enumerate(pairs):
        words = _words(sentence)
        if len(words) < 5 or len(sentence) > 400:
            continue
        score = sum(freq[w] / top for w in set(words)) / (len(words) ** 0.5)
        if speaker is not None and speaker == host:
            score *= 1.25  # the person running the session explains; participants mostly ask and react
        if sentence.endswith("?"):
            score *= 0.4
        if _SMALL_TALK.match(sentence):
            score *= 0.3
        scored.append((score, i))
    ranked = [i for _, i in sorted(scored, key=lambda t: (-t[0], t[1]))]
    chosen = sorted(ranked[:summary_sentences])
    points = sorted(ranked[summary_sentences : summary_sentences + key_points])
    summary = " ".join(pairs[i][1] for i in chosen)
    return OfflineRecap(summary=summary, key_points=[pairs[i][1] for i in points])
