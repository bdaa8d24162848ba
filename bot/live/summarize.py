"""The offline recap: an extractive summary when no LLM is configured.

It picks sentences from the transcript itself, so it never says anything the session did not. Sentences are
scored by how many of the session's frequent content words they carry (a classic frequency-based extractive
summary), with a bonus for the host's explanations and a penalty for questions. Greetings and meeting logistics
("Welcome back, everyone", "can you hear me", "let's take a break") are dropped outright; short lines are not,
because the key line of a session is often short ("Problems surface while they are still small.").

Every picked sentence keeps who said it. The transcript's speakers come from WebVTT voice tags (``<v Name>``)
or ``Name:`` prefixes (:mod:`bot.live.transcripts` turns both into ``Name: words`` paragraphs); the host is the
name the caller gives (the cohort's lead) when it is one of the speakers, otherwise the first speaker. A key
point reads ``Name (host): sentence`` or ``Name (participant): sentence``, so a learner's "I had never heard
of it" never reads as the host's teaching. No recap quiz is produced: writing good distractors needs a
language model, and a bad quiz is worse than none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.live.names import fold

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[a-z][a-z'-]+")
#: ``Name: words`` as :class:`~bot.live.transcripts.Transcript` writes a turn: one to five capitalised words,
#: name particles (de, van, ...) allowed. "Here is the point: ..." is not a speaker.
_TURN = re.compile(
    r"^((?:[A-Z\u00C0-\u024F][\w'.-]*|de|da|del|der|di|du|la|le|van|von|bin|al|ten|ter)"
    r"(?: (?:[A-Z\u00C0-\u024F][\w'.-]*|de|da|del|der|di|du|la|le|van|von|bin|al|ten|ter)){0,4}):\s+(.*)$"
)
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
#: Openings and closings: said in every session, worth nothing in a recap.
_GREETING = re.compile(
    r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks|thank you|many thanks|see you|that's all|"
    r"that's it for|bye|goodbye|welcome|nice to (?:see|meet)|great to (?:see|have)|glad you)\b",
    re.I,
)
#: The meeting running itself: audio, screens, breaks, waiting, links in the chat.
_LOGISTICS = re.compile(
    r"\b(?:can (?:you|everyone|everybody|people) (?:hear|see) (?:me|my|us|the slides?)|hear me|"
    r"see my screen|share my screen|sharing my screen|(?:you're|you are|i'm|i am) (?:on )?mute|unmute|"
    r"take a (?:short |quick |five[- ]minute |ten[- ]minute |\d+[- ]minute )?break|back in \d+|"
    r"(?:wait|give (?:it|me|us|people)) (?:a|another) (?:minute|moment|second|couple)|"
    r"for (?:a few |some )?(?:more )?(?:people|others|everyone) to join|let's get started|let's start|"
    r"in the chat|your (?:camera|mic|microphone)|my (?:camera|mic|microphone|connection|internet)|"
    r"(?:bad|lost|poor) connection|you're breaking up|frozen|next slide|"
    r"is the recording on|(?:i'll|i will|let me) (?:start|stop) the recording)"
    r"|^(?:now|next|so|okay|alright|moving on)\b,? (?:let's|how|on to|to the next|the next part)"
    r"|^(?:first|second|third|last|final|next) (?:part|thing|topic|item)\b",
    re.I,
)
#: Sentences that lean on the one before ("That is the part...", "It is faster..."): weak on their own.
_DANGLING = re.compile(r"^(?:that|this|it|these|those|they|their|he|she|exactly|yes|no|so)\b", re.I)
_FIRST_PERSON = re.compile(r"^(?:i|i'm|i've|i'd|my)\b", re.I)
_YOU = re.compile(r"\b(?:i|i'm|i've|me|my|we|we'll|we're|us|our)\b", re.I)
#: Content words a sentence needs to be a candidate: two make a fragment ("Exactly, Dana."), three a point.
MIN_CONTENT_WORDS = 3


@dataclass(frozen=True)
class OfflineRecap:
    summary: str
    key_points: list[str]
    host: str | None = None
    speakers: list[str] = field(default_factory=list)


def sentences(text: str) -> list[tuple[str | None, str]]:
    """Split transcript text (``Speaker: words`` paragraphs) into (speaker, sentence) pairs."""
    out: list[tuple[str | None, str]] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = " ".join(para.split())
        speaker: str | None = None
        m = _TURN.match(para)
        if m:
            speaker, para = m.group(1), m.group(2)
        for sentence in _SENTENCE.split(para):
            sentence = sentence.strip()
            if sentence:
                out.append((speaker, sentence))
    return out


def _words(sentence: str) -> list[str]:
    return [w.strip("'-") for w in _WORD.findall(sentence.lower()) if w.strip("'-") not in STOPWORDS]


def is_filler(sentence: str) -> bool:
    """A greeting, a goodbye or meeting logistics: never summary material."""
    return bool(_GREETING.match(sentence) or _LOGISTICS.search(sentence))


def pick_host(speakers: list[str], hosts: Iterable[str] = ()) -> str | None:
    """The host among ``speakers``: the first of ``hosts`` that spoke (names folded), else the first speaker."""
    by_fold = {fold(s): s for s in speakers}
    for name in hosts:
        if fold(name) in by_fold:
            return by_fold[fold(name)]
    return speakers[0] if speakers else None


def attributed(speaker: str | None, host: str | None, sentence: str) -> str:
    """``Name (host): sentence``, ``Name (participant): sentence``, or the bare sentence without a speaker."""
    if speaker is None:
        return sentence
    return f"{speaker} ({'host' if speaker == host else 'participant'}): {sentence}"


def _score(words: list[str], freq: Counter[str], top: int) -> float:
    return sum(freq[w] / top for w in set(words)) / (len(words) ** 0.5)


def _ranked(pairs: list[tuple[str | None, str]], host: str | None) -> list[int]:
    freq: Counter[str] = Counter(w for _, s in pairs if not is_filler(s) for w in _words(s))
    if not freq:
        return []
    top = max(freq.values())
    scored: list[tuple[float, int]] = []
    for i, (speaker, sentence) in enumerate(pairs):
        words = _words(sentence)
        if len(words) < MIN_CONTENT_WORDS or len(sentence) > 400 or is_filler(sentence):
            continue
        score = _score(words, freq, top)
        if speaker is not None and speaker == host:
            score *= 1.25  # the person running the session explains; participants mostly ask and react
        elif speaker is not None and _FIRST_PERSON.match(sentence):
            score *= 0.5  # a participant's own story is context, rarely the point of the session
        if sentence.endswith("?"):
            score *= 0.4
        elif _DANGLING.match(sentence):
            score *= 0.7
        elif len(words) <= 6 and not _YOU.search(sentence):
            score *= 1.3  # a short general statement is usually the line the session wants remembered
        scored.append((score, i))
    return [i for _, i in sorted(scored, key=lambda t: (-t[0], t[1]))]


def _summary(pairs: list[tuple[str | None, str]], chosen: list[int], host: str | None) -> str:
    """The chosen sentences in order; each change of speaker is named, so nobody's words become someone else's."""
    out: list[str] = []
    previous: object = object()
    for i in chosen:
        speaker, sentence = pairs[i]
        out.append(attributed(speaker, host, sentence) if speaker != previous else sentence)
        previous = speaker
    return " ".join(out)


def extractive_recap(
    text: str, *, summary_sentences: int = 4, key_points: int = 5, hosts: Iterable[str] = ()
) -> OfflineRecap:
    """Summarise a transcript without a model.

    Args:
        text: clean transcript text (from :mod:`bot.live.transcripts`).
        summary_sentences: how many sentences the summary paragraph keeps.
        key_points: how many further sentences become bullet points.
        hosts: names of the people running the session (the cohort's leads), in order of preference; the
            first speaker is the host when none of them spoke.
    """
    pairs = sentences(text)
    speakers = list(dict.fromkeys(sp for sp, _ in pairs if sp))
    host = pick_host(speakers, hosts)
    ranked = _ranked(pairs, host)
    if not ranked:
        kept = [i for i, (_, s) in enumerate(pairs) if not is_filler(s)][:summary_sentences]
        return OfflineRecap(_summary(pairs, kept, host), [], host, speakers)
    chosen = sorted(ranked[:summary_sentences])
    points = sorted(ranked[summary_sentences : summary_sentences + key_points])
    return OfflineRecap(
        summary=_summary(pairs, chosen, host),
        key_points=[attributed(pairs[i][0], host, pairs[i][1]) for i in points],
        host=host,
        speakers=speakers,
    )
