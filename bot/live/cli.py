"""CLI commands of the live features: ``session attach``, ``session recap``, ``search`` and ``content draft-quiz``.

They are registered on the core's typer apps by :func:`register`. Each builds the runtime without adapters (the
outbox delivers what they queue when ``blendwise run`` next drains it) and reports expected failures as one line.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from bot.errors import BlendwiseError

if TYPE_CHECKING:
    from bot.registry import CliRegistry


def register(cli: CliRegistry) -> None:
    """Add ``session attach|recap``, ``search`` and ``content draft-quiz`` (names claimed on the registry, so a
    clash with the core or another feature fails at start-up naming both)."""
    commands = LiveCommands(cli)
    session_app = typer.Typer(help="Live sessions: recordings, transcripts and recaps.", no_args_is_help=True)
    cli.add_typer(session_app, "session")
    session_app.command("attach")(commands.attach)
    session_app.command("recap")(commands.recap)
    from bot.live.schedule import register_cli as register_schedule

    register_schedule(cli, session_app)
    attendance_app = typer.Typer(
        help="Attendance from a meeting tool's participant report.", no_args_is_help=True
    )
    session_app.add_typer(attendance_app, name="attendance")
    attendance_app.command("import")(commands.attendance_import)
    cli.claim("search")
    cli.app.command("search")(commands.search)
    cli.claim("content draft-quiz")
    cli.group("content").command("draft-quiz")(commands.draft_quiz)


class LiveCommands:
    """The live features' command bodies; typer calls the bound methods (their signatures are the CLI)."""

    def __init__(self, cli: CliRegistry) -> None:
        self.runtime, self.out = cli.runtime, cli.out

    @staticmethod
    def live_session(rt: Any, session: Any, step_id: str, cohort_name: str | None) -> Any:
        from sqlalchemy import select

        from bot.storage.models import Cohort, LiveSessionRow

        query = (
            select(Cohort)
            .join(LiveSessionRow, LiveSessionRow.cohort_id == Cohort.id)
            .where(LiveSessionRow.step_id == step_id)
        )
        if cohort_name:
            query = query.where(Cohort.name == cohort_name)
        cohorts = session.scalars(query).all()
        if not cohorts:
            raise BlendwiseError(
                f"no session '{step_id}'" + (f" in cohort '{cohort_name}'" if cohort_name else "")
            )
        if len(cohorts) > 1:
            raise BlendwiseError(
                f"several cohorts have a session '{step_id}' ({', '.join(c.name for c in cohorts)}); add --cohort"
            )
        return rt.engine.live_session(session, cohorts[0], step_id)

    def attach(
        self,
        session_id: Annotated[
            str, typer.Argument(metavar="SESSION", help="The session's step id, e.g. kickoff.")
        ],
        cohort: Annotated[
            str | None, typer.Option(help="Cohort name (needed when several have the session).")
        ] = None,
        recording: Annotated[str | None, typer.Option(help="Link to the recording.")] = None,
        transcript: Annotated[Path | None, typer.Option(help="Transcript file: .vtt, .srt or .txt.")] = None,
    ) -> None:
        """Attach a recording link and a transcript, then draft the recap (AI, or offline without one)."""
        from bot.live import service
        from bot.live.recaps import released_recap
        from bot.storage.db import transaction

        if transcript is not None and not transcript.is_file():
            raise BlendwiseError(f"{transcript}: no such file")
        data = transcript.read_bytes() if transcript is not None else None
        rt = self.runtime(adapters={})
        live = service(rt)
        with transaction(rt.factory) as session:
            row = self.live_session(rt, session, session_id, cohort)
            attached = live.recaps.attach(
                session,
                row,
                recording_url=recording,
                transcript=data,
                filename=transcript.name if transcript else "transcript.txt",
            )
            row_id, title = row.id, row.title
        self.out.print(
            f"Attached to '{title}'"
            + (
                f" ({attached.format}, {len(attached.speakers)} speakers)."
                if attached.has_transcript
                else "."
            ),
            markup=False,
        )
        if attached.has_transcript:
            recap = live.recaps.generate(row_id)
            source = "AI draft" if recap.get("source") == "llm" else "offline summary (no AI configured)"
            if recap.get("note"):
                self.out.print(recap["note"], markup=False)
            with rt.factory() as session:
                again = bool(released_recap(self.live_session(rt, session, session_id, cohort)))
            self.out.print(
                (
                    f"A new recap draft ({source}); learners keep the released recap until you release this one."
                    if again
                    else f"Recap drafted ({source})."
                )
                + f" The cohort's leads get it to review. Review it: blendwise session recap {session_id} --show,"
                f" then --release",
                markup=False,
                soft_wrap=True,
            )

    def attendance_import(
        self,
        cohort: Annotated[str, typer.Argument(metavar="COHORT", help="The cohort's name.")],
        step_id: Annotated[str, typer.Argument(metavar="STEP", help="The session's step id, e.g. kickoff.")],
        report: Annotated[
            Path, typer.Argument(metavar="REPORT", help="The participants report (CSV or TSV).")
        ],
        fmt: Annotated[
            str, typer.Option("--format", help="auto, zoom, meet or teams (auto: recognised by the columns).")
        ] = "auto",
        min_minutes: Annotated[
            float | None,
            typer.Option(
                min=0,
                help="Minutes that count as attending (default: the step's checkin.min_minutes, else 10).",
            ),
        ] = None,
    ) -> None:
        """Record attendance from a Zoom, Google Meet or Teams participant report; unmatched rows are listed."""
        from bot.live.attendance import import_report, parse_report
        from bot.storage.db import transaction

        if not report.is_file():
            raise BlendwiseError(f"{report}: no such file")
        parsed = parse_report(report.read_bytes(), report.name, fmt)
        rt = self.runtime(adapters={})
        with transaction(rt.factory) as session:
            row = self.live_session(rt, session, step_id, cohort)
            result = import_report(rt.engine, session, row, parsed, min_minutes=min_minutes)
        self.out.print(result.text(), markup=False, highlight=False, soft_wrap=True)

    def recap(
        self,
        session_id: Annotated[str, typer.Argument(metavar="SESSION", help="The session's step id.")],
        cohort: Annotated[str | None, typer.Option(help="Cohort name.")] = None,
        show: Annotated[bool, typer.Option("--show", help="Print the draft as editable YAML.")] = False,
        edit: Annotated[
            Path | None, typer.Option("--edit", help="Replace the draft with this YAML file.")
        ] = None,
        regenerate: Annotated[
            bool, typer.Option("--regenerate", help="Draft it again from the transcript.")
        ] = False,
        release: Annotated[
            bool, typer.Option("--release", help="Release: catch-ups and recording links go out.")
        ] = False,
    ) -> None:
        """Review, edit, regenerate or release a session's recap."""
        from bot.live import service
        from bot.storage.db import transaction

        if not (show or edit or release or regenerate):
            show = True
        rt = self.runtime(adapters={})
        live = service(rt)
        if edit is not None:
            if not edit.is_file():
                raise BlendwiseError(f"{edit}: no such file")
            with transaction(rt.factory) as session:
                row = self.live_session(rt, session, session_id, cohort)
                live.recaps.edit(session, row, edit.read_text(encoding="utf-8-sig"), shown=str(edit))
            self.out.print(f"Recap updated from {edit}.", markup=False)
        if regenerate:
            with rt.factory() as session:
                row_id = self.live_session(rt, session, session_id, cohort).id
            live.recaps.generate(row_id)
            self.out.print("Recap drafted again.", markup=False)
        if show:
            with rt.factory() as session:
                row = self.live_session(rt, session, session_id, cohort)
                if row.recap_state not in ("draft", "released"):
                    raise BlendwiseError(
                        f"'{row.title}' has no recap yet; run: blendwise session attach {session_id} "
                        "--transcript FILE"
                    )
                state = row.recap_state
                text = live.recaps.export_yaml(row)
            self.out.print(f"# state: {state}", markup=False)
            self.out.print(text, markup=False, highlight=False, soft_wrap=True)
        if release:
            with transaction(rt.factory) as session:
                row = self.live_session(rt, session, session_id, cohort)
                released = live.recaps.release(session, row)
            self.out.print(
                f"Released: {released.catchups} catch-up lesson(s) and {released.recordings} recording "
                "link(s) queued.",
                markup=False,
            )

    def search(
        self,
        terms: Annotated[list[str], typer.Argument(help="Words to look for.")],
        user: Annotated[
            str | None,
            typer.Option(
                help="Search as this person (platform:user_id, user id or email): only their programs."
            ),
        ] = None,
        limit: Annotated[int, typer.Option(min=1, max=50)] = 10,
    ) -> None:
        """Search lessons, session summaries and transcripts."""
        from sqlalchemy import or_, select

        from bot.live import service
        from bot.live.chat import KIND_LABEL
        from bot.live.search import Scope
        from bot.storage.models import Person

        rt = self.runtime(adapters={})
        live = service(rt)
        with rt.factory() as session:
            if user:
                platform, _, user_id = user.rpartition(":")
                query = select(Person).where(or_(Person.user_id == user_id, Person.email == user))
                if platform:
                    query = query.where(Person.platform == platform)
                people = session.scalars(query).all()
                if len(people) != 1:
                    raise BlendwiseError(
                        f"--user: {'no person' if not people else 'several people'} match '{user}'"
                    )
                scope = live.search.scope_for(session, people[0])
            else:
                scope = Scope(everything=True)
            results = live.search.search(session, " ".join(terms), scope, limit=limit)
        if not results.hits:
            self.out.print("No results.", markup=False)
            raise typer.Exit(1)
        if results.loose:
            self.out.print("(no result has every word; these match some)", markup=False)
        for i, hit in enumerate(results.hits, start=1):
            where = f"program {hit.program_id}" + (f", cohort id {hit.cohort_id}" if hit.cohort_id else "")
            self.out.print(
                f"{i}. {hit.title} [{KIND_LABEL.get(hit.kind, hit.kind)}; {where}; {hit.step_id}]",
                markup=False,
            )
            self.out.print(f"   {hit.snippet}", markup=False, soft_wrap=True)

    def draft_quiz(
        self,
        lesson: Annotated[
            Path, typer.Argument(help="A lesson Markdown file, e.g. content/<program>/lessons/x.md")
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="Where to write the draft YAML (default: next to the lesson, *.quiz-draft.yaml).",
            ),
        ] = None,
        questions: Annotated[int, typer.Option(min=3, max=5, help="How many questions.")] = 4,
    ) -> None:
        """Draft quiz questions for a lesson with the configured LLM, for review. Never edits program.yaml."""
        from bot.cli import settings
        from bot.live.llm import LLMClient, LLMNotConfigured

        if not lesson.is_file():
            raise BlendwiseError(f"{lesson}: no such file")
        target = output or lesson.with_suffix(".quiz-draft.yaml")
        if target.name in ("program.yaml", "program.yml"):
            raise BlendwiseError(
                f"{target}: drafts are never written into a program file; choose another name"
            )
        client = LLMClient.from_settings(settings().llm)
        if client is None:
            raise LLMNotConfigured(
                "draft-quiz needs an LLM: set llm.base_url (and OPENAI_API_KEY if it needs one)"
            )
        text_ = lesson.read_text(encoding="utf-8-sig")
        title, body = _lesson_title(text_, lesson)
        draft = client.quiz(title, body, questions)
        out_text = quiz_yaml(lesson, title, draft, client.model)
        problems = check_quiz_yaml(out_text)
        if problems:
            raise BlendwiseError(f"the drafted quiz failed the content check: {problems[0]}")
        target.write_text(out_text, encoding="utf-8")
        self.out.print(
            f"Wrote {target}: {len(draft.questions)} question(s), checked with `content check`. Review them, "
            "then copy the step into program.yaml yourself.",
            markup=False,
        )


def _lesson_title(text: str, path: Path) -> tuple[str, str]:
    body = text
    title = path.stem.replace("-", " ").capitalize()
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            front = yaml.safe_load(text[4:end]) or {}
            if isinstance(front, dict) and front.get("title"):
                title = str(front["title"])
            body = text[end + 4 :]
    for line in body.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            break
    return title, body.strip()


def quiz_yaml(lesson: Path, title: str, draft: Any, model: str) -> str:
    step_id = f"{lesson.stem}-quiz"[:63].lower()
    step: dict[str, Any] = {"id": step_id, "title": f"Quiz: {title}"[:150], "kind": "quiz"}
    if draft.intro:
        step["intro"] = draft.intro
    step["questions"] = [q.model_dump(mode="json", exclude_defaults=True) for q in draft.questions]
    head = (
        f"# DRAFT quiz for {lesson.name}, written by {model} on {date.today().isoformat()}.\n"
        "# Review every question and answer before use. Nothing here is published until you paste this step\n"
        "# under `steps:` in program.yaml (and add unlock/due as you wish).\n"
    )
    return head + yaml.safe_dump([step], sort_keys=False, allow_unicode=True, width=100)


def check_quiz_yaml(text: str) -> list[str]:
    """Run the real content checker on a throw-away program holding only the drafted step."""
    import tempfile

    from bot.journeys.loader import check_path

    steps = yaml.safe_load(text)
    program = {"id": "draft-check", "title": "Draft check", "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "program.yaml"
        path.write_text(yaml.safe_dump(program, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return [p.replace(str(path), "draft") for p in check_path(path)]
