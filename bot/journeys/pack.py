"""What a team needs to run a program next Monday, beside the learner-facing steps.

A session's ``facilitator_file`` is the facilitator guide: a Markdown file with an agenda with timings, talk notes,
exercises and an observer sheet. ``content check`` reads it and refuses a guide that lacks one of those sections,
because a facilitator finds out on the day. The end-of-program ``evaluation`` becomes poll steps; this module
checks that their ids do not collide with authored steps and that their texts are valid templates.
``blendwise content guide PROGRAM STEP`` prints the facilitator pack that :func:`facilitator_pack` assembles: the
session, its objectives, the guide and the rubric.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.durations import format_duration
from bot.journeys.model import EVALUATION_PREFIX, Program, SessionStart, SessionStep, evaluation_steps
from bot.journeys.render import check_template
from bot.journeys.validate import Problem, SourceMap

#: The sections a facilitator guide must have (matched case-insensitively against its headings).
GUIDE_SECTIONS = ("Agenda", "Talk notes", "Exercises", "Observer sheet")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_TIMING = re.compile(r"\b\d{1,3}\s*(?:min|minutes)\b|\b\d{1,2}:\d{2}\b", re.I)


def _sections(text: str) -> dict[str, str]:
    """Heading (lower case) -> the text under it, up to the next heading."""
    found = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for n, m in enumerate(found):
        end = found[n + 1].start() if n + 1 < len(found) else len(text)
        out[m.group(1).strip().lower()] = text[m.end() : end]
    return out


def guide_problems(text: str) -> list[str]:
    """What a facilitator guide lacks: a required section, or timings in its agenda."""
    sections = _sections(text)
    problems = []
    missing = [name for name in GUIDE_SECTIONS if not any(h.startswith(name.lower()) for h in sections)]
    if missing:
        problems.append(
            f"the facilitator guide has no {', '.join(repr(m) for m in missing)} section (a '## Heading' each; "
            f"a guide needs: {', '.join(GUIDE_SECTIONS)})"
        )
    agenda = next((body for h, body in sections.items() if h.startswith("agenda")), None)
    if agenda is not None and not _TIMING.search(agenda):
        problems.append("the facilitator guide's agenda gives no timings; write them as '(10 min)' or '14:10'")
    return problems


def read_guides(program: Program, folder: Path, source: SourceMap) -> tuple[dict[str, str], list[Problem]]:
    """Read and check every session's ``facilitator_file``.

    Returns:
        Guide text by session step id, and every problem as ``path:line: message``.
    """
    guides: dict[str, str] = {}
    problems: list[Problem] = []
    for i, step in enumerate(program.steps):
        if not isinstance(step, SessionStep) or step.facilitator_file is None:
            continue
        where = source.line(("steps", i, "facilitator_file"))
        relative = step.facilitator_file
        try:
            target = (folder / relative).resolve()
            inside = not Path(relative).is_absolute() and target.is_relative_to(folder.resolve())
            text = target.read_text(encoding="utf-8") if inside and target.is_file() else None
        except (OSError, ValueError, RuntimeError) as exc:
            problems.append(Problem(source.file, where, f"step '{step.id}': cannot read facilitator_file: {exc}"))
            continue
        if not inside:
            message = f"step '{step.id}': facilitator_file '{relative}' must be inside the program folder"
            problems.append(Problem(source.file, where, message))
            continue
        if text is None:
            problems.append(Problem(source.file, where, f"step '{step.id}': facilitator_file '{relative}' not found"))
            continue
        problems += [Problem(source.file, where, f"step '{step.id}': {p}") for p in guide_problems(text)]
        guides[step.id] = text
    return guides, problems


def evaluation_problems(program: Program, source: SourceMap) -> list[Problem]:
    """The evaluation's poll ids are free and its question texts are valid templates."""
    if program.evaluation is None:
        return []
    authored = {s.id for s in program.steps}
    problems = []
    for k, step in enumerate(evaluation_steps(program.evaluation)):
        line = source.line(("evaluation", "questions", k))
        if step.id in authored:
            problems.append(Problem(source.file, line, f"evaluation question id makes step '{step.id}', which exists"))
        for p in check_template(step.question):
            problems.append(Problem(source.file, line, f"evaluation question '{step.id}': {p.message}"))
    dangling = [s for s in program.evaluation.unlock.after if s not in authored]
    if dangling:
        line = source.line(("evaluation", "unlock", "after"))
        problems.append(Problem(source.file, line, f"evaluation: unlock.after names unknown step(s) {dangling}"))
    return problems


def _when(step: SessionStep) -> str:
    if isinstance(step.start, SessionStart):
        zone = f" ({step.start.tz})" if step.start.tz else " (cohort time zone)"
        return f"day {step.start.day} at {step.start.at:%H:%M}{zone}"
    return step.start.isoformat()


def facilitator_pack(program: Program, step: SessionStep, guide: str | None) -> str:
    """The facilitator pack for one session, as Markdown: session facts, objectives, guide, rubric, sources."""
    lines = [f"# {step.title}", "", f"_{program.title}_ · {_when(step)} · {format_duration(step.duration)}"]
    if step.capacity:
        lines[-1] += f" · up to {step.capacity} people"
    if program.objectives:
        lines += ["", "## Program objectives", *(f"- {o}" for o in program.objectives)]
    if step.objectives:
        lines += ["", "## Session objectives", *(f"- {o}" for o in step.objectives)]
    if step.prework:
        titles = [program.step(s).title for s in step.prework]
        lines += ["", "## Pre-work learners were asked to finish", *(f"- {t}" for t in titles)]
    lines += ["", guide.strip() if guide else "_No facilitator guide: add facilitator_file to this session._"]
    if step.rubric is not None:
        rubric = step.rubric
        lines += ["", "## Practice rubric", "", "| Criterion | " + " | ".join(rubric.levels) + " |"]
        lines.append("|---" * (len(rubric.levels) + 1) + "|")
        lines += [f"| {c.name} | " + " | ".join(c.descriptors) + " |" for c in rubric.criteria]
    if program.references:
        lines += ["", "## References"]
        lines += [f"- {r.citation}" + (f" <{r.url}>" if r.url else "") for r in program.references]
    return "\n".join(lines) + "\n"


__all__ = ["EVALUATION_PREFIX", "GUIDE_SECTIONS", "evaluation_problems", "facilitator_pack", "read_guides"]
