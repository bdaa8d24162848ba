"""The ``blendwise`` command line.

Expected failures print one line (``error: ...``) and exit non-zero: 2 for configuration problems, 1 otherwise.
A traceback only appears for a genuine bug, and only with ``--debug``.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bot.config import Settings, load_settings
from bot.errors import BlendwiseError, ConfigError
from bot.markup import unescape
from bot.platforms import registered
from bot.registry import FEATURES, CliRegistry, load_cli


def _hide_flag_types() -> None:
    """Recent Typer prints a type column even for flags (``--debug <bool>``), which reads as if the flag took a
    value. A flag's type says nothing a reader needs, so it is left out of ``--help``."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if option is None or shown is None:
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    option.display_type_rich = display_type_rich


_hide_flag_types()

app = typer.Typer(
    help="Blendwise: blended learning journeys in Slack, Discord and the terminal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
content_app = typer.Typer(help="Program content: check and draft.", no_args_is_help=True)
cohort_app = typer.Typer(help="Cohorts: create, enroll, list.", no_args_is_help=True)
people_app = typer.Typer(help="People: import a roster.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
slack_app = typer.Typer(help="Slack helpers.", no_args_is_help=True)
app.add_typer(content_app, name="content")
app.add_typer(cohort_app, name="cohort")
app.add_typer(people_app, name="people")
app.add_typer(db_app, name="db")
app.add_typer(slack_app, name="slack")
xapi_app = typer.Typer(help="xAPI learning records: export statements, forward them to an LRS.", no_args_is_help=True)
app.add_typer(xapi_app, name="xapi")

# Rich falls back to 80 columns when output is not a terminal (CI logs, `make demo | less`); the report table
# needs more room than that to stay readable.
# ``emoji=False``: Rich would print ``program.yaml:100:`` as ``program.yaml💯``, breaking ``path:line:``.
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class State:
    config: Path | None = None
    database_url: str | None = None
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"blendwise {version('blendwise')}", markup=False)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
            out.print("blendwise (not installed)", markup=False)
        raise typer.Exit()


#: Options of the top-level callback. The docs write them where a reader would (``blendwise report --database-url
#: ...``), but click only parses a group's options before the subcommand, so :func:`main` moves them there.
GLOBAL_OPTIONS = {"--config": True, "-c": True, "--database-url": True, "--debug": False, "--version": False}


@app.callback()
def main_options(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Path to app.yaml.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides database_url.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state.config = config
    state.database_url = database_url
    state.debug = debug


def settings(*, verbose: bool = False, **overrides: Any) -> Settings:
    """Load settings once per command. Only ``run`` logs at the configured level; one-shot commands stay quiet
    unless something goes wrong."""
    extra = dict(overrides)
    if state.database_url:
        extra["database_url"] = state.database_url
    s = load_settings(state.config, overrides=extra)
    level = getattr(logging, s.log_level) if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if s.log_format == "json":
        from bot.logs import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return s


def runtime(s: Settings | None = None, *, content_optional: bool = False, **kwargs: Any) -> Any:
    """Build the runtime for one command.

    Args:
        content_optional: the command only reads the database (reports, listings): enrolments carry their program
            id, so a missing content folder costs titles, not the answer. It then runs with an empty library and
            says so in one line, instead of failing outside the repository.
    """
    from bot.app import build

    s = s or settings()
    if content_optional and "library" not in kwargs and not s.content_dir.is_dir():
        from bot.journeys.library import Library

        kwargs["library"] = Library({})
        err.print(
            f"note: no content folder at {s.content_dir}; programs show by id (set content_dir in app.yaml, "
            "or pass --config)",
            markup=False,
        )
    return build(s, **kwargs)


# ---------------------------------------------------------------------- demo and run
def _demo_content(path: Path, program: str | None, scratch: Path) -> tuple[Path, str]:
    """The content folder and program id for ``demo --content PATH``.

    PATH is a content folder (one folder per program) or one program's folder or ``program.yaml``; a single
    program is linked into ``scratch`` so the runtime loads it like any library. Invalid content stops here with
    every problem, as ``content check`` prints them.
    """
    from bot.journeys.loader import PROGRAM_FILE, load_library, load_program

    if not path.exists():
        raise BlendwiseError(f"--content: {path} does not exist")
    single = path if path.is_file() else path / PROGRAM_FILE
    if single.is_file():
        loaded = load_program(single)
        (scratch / loaded.program.id).symlink_to(single.parent.resolve(), target_is_directory=True)
        if program not in (None, loaded.program.id):
            raise BlendwiseError(f"--program: {path} holds program '{loaded.program.id}', not '{program}'")
        return scratch, loaded.program.id
    ids = sorted(load_library(path))
    if program is None and len(ids) == 1:
        return path, ids[0]
    if program not in ids:
        raise BlendwiseError(f"--program: choose one of {', '.join(ids) or '(no programs)'} in {path}")
    return path, str(program)


@app.command()
def demo(
    program: Annotated[
        str | None, typer.Option(help="Program id (default new-manager-onboarding, or the one program in --content).")
    ] = None,
    learners: Annotated[int, typer.Option(min=1, max=500, help="Simulated learners.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same run.")] = 7,
    transcript: Annotated[int, typer.Option(help="Messages of the conversation excerpt to show.")] = 14,
    content: Annotated[
        Path | None, typer.Option(help="A content folder, or one program's folder, outside content/ (checked first).")
    ] = None,
) -> None:
    """Run a simulated cohort through a program on the real engine and a virtual clock."""
    import tempfile
    import time

    from bot.demo import run_demo

    s = settings()
    url = state.database_url or "sqlite:///blendwise.db"
    started = time.perf_counter()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with tempfile.TemporaryDirectory(prefix="blendwise-demo-") as scratch:
        content_dir, program_id = (
            _demo_content(content, program, Path(scratch))
            if content is not None
            else (s.content_dir, program or "new-manager-onboarding")
        )
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
            console=err, transient=True,
        ) as bar:
            task = bar.add_task(f"{learners} learners through '{program_id}' on a virtual clock", total=1.0)
            result = run_demo(
                program_id=program_id, learners=learners, seed=seed, database_url=url, content_dir=content_dir,
                progress=lambda done: bar.update(task, completed=done),
            )
    elapsed = time.perf_counter() - started
    rt = result.runtime
    console = result.console
    first = result.learners[0]
    out.rule(f"Conversation excerpt: {first} (first {transcript} messages)")
    for sent in console.messages_to(first)[:transcript]:
        m = sent.message
        body = (m.body or m.text).strip().splitlines()
        head = body[0] if body else ""
        out.print(f"[bold]{m.title or m.kind}[/bold]  [dim]{m.context}[/dim]", markup=True)
        if head:
            out.print(f"  {head[:160]}", markup=False)
        if m.buttons:
            out.print("  " + " ".join(f"[{b.label}]" for b in m.buttons[:6]), markup=False)
        if sent.history:
            out.print(f"  (updated in place {len(sent.history)}x)", style="dim")
    posts = [p for p in console.sent if p.user_id is None and p.thread is None]
    if posts:
        out.rule("Cohort channel")
        for p in posts[:4]:
            out.print(f"[bold]#{p.channel}[/bold] {p.message.title}", markup=True)
        replies = [p for p in console.sent if p.user_id is None and p.thread is not None]
        out.print(f"  {len(replies)} thread replies from learners", style="dim")
    digests = [s for s in console.sent if s.message.kind == "digest"]
    if digests:
        out.rule(f"Manager digest ({len(digests)} sent) - {digests[-1].user_id}")
        for line in unescape(digests[-1].message.body).splitlines()[:8]:
            out.print(line, markup=False)
    _print_report(rt, cohort=result.cohort_name)
    total = len(console.sent)
    out.print(
        f"\n[dim]{total} messages sent, {len(console.ephemerals)} ephemeral replies; {result.days} days simulated "
        f"in {elapsed:.1f}s. "
        f"Database: {url}. HTML report: blendwise report --database-url {url} --format html -o report.html[/dim]",
        markup=True,
    )


@app.command()
def run(
    role: Annotated[
        str, typer.Option(help="all (default): HTTP, adapters and jobs; web: HTTP only; worker: jobs, no HTTP.")
    ] = "all",
    host: Annotated[str | None, typer.Option(help="Interface the HTTP tier binds (overrides web.host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (overrides web.port).")] = None,
) -> None:
    """Run the configured adapters and the scheduler until interrupted."""
    from bot.app import ROLES

    if role not in ROLES:
        raise BlendwiseError(f"--role: '{role}' is not one of {', '.join(ROLES)}")
    web: dict[str, Any] = {}
    if host is not None:
        web["host"] = host
    if port is not None:
        web["port"] = port
    rt = runtime(settings(verbose=True, **({"web": web} if web else {})))
    rt.run_forever(role)


# ---------------------------------------------------------------------- content
#: Exit code of ``content check`` when the checker itself failed: never confused with "problems found" (1).
INTERNAL_ERROR = 3


@content_app.command("check")
def content_check(
    path: Annotated[Path | None, typer.Argument(help="Content dir, program folder or file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text (path:line: message) or json.")] = "text",
) -> None:
    """Validate programs; print every problem as path:line: message (exit 1), OK otherwise (exit 0)."""
    import json

    from bot.journeys.loader import check_problems, check_warnings

    if fmt not in ("text", "json"):
        raise BlendwiseError(f"--format: '{fmt}' is not one of text, json")
    target = path or load_settings(state.config).content_dir
    try:
        problems = check_problems(target)
    except Exception as exc:
        if state.debug:
            raise
        err.print(
            f"error: internal error in the content check ({type(exc).__name__}: {exc}); this is a bug in "
            "Blendwise, not in your content: please report it with the file (run with --debug for details)",
            markup=False,
        )
        raise typer.Exit(INTERNAL_ERROR) from None
    # Timing warnings (an authored time the working week changes) only for content without problems; never fatal.
    warnings = [] if problems else check_warnings(target, load_settings(state.config))
    # Plain writes, not Rich: a line such as ``path:100: ...`` must reach editors and CI exactly as written.
    if fmt == "json":
        rows = [{"file": p.file, "line": p.line, "message": p.message} for p in problems]
        notes = [{"file": p.file, "line": p.line, "message": p.message} for p in warnings]
        report = {"ok": not problems, "problems": rows, "warnings": notes}
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        ok = f"OK: {target} is valid" + (f" ({len(warnings)} timing warning(s) above).\n" if warnings else ".\n")
        sys.stdout.write("".join(f"{p}\n" for p in [*problems, *warnings]) or ok)
        if warnings and not problems:
            sys.stdout.write(ok)
    if problems:
        if fmt == "text":
            err.print(f"{len(problems)} problem(s) found.", markup=False)
        raise typer.Exit(1)


@content_app.command("guide")
def content_guide(
    program: Annotated[str, typer.Argument(help="Program id.")],
    step: Annotated[str | None, typer.Argument(help="A session step id; every session when left out.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the pack to this Markdown file.")] = None,
) -> None:
    """Print the facilitator pack of a live session: objectives, agenda with timings, notes, rubric, references."""
    from bot.journeys.loader import load_library
    from bot.journeys.pack import facilitator_pack

    library = load_library(load_settings(state.config).content_dir)
    loaded = library.get(program)
    if loaded is None:
        raise BlendwiseError(f"unknown program '{program}' (programs: {', '.join(sorted(library)) or 'none'})")
    sessions = loaded.program.sessions
    chosen = [s for s in sessions if step is None or s.id == step]
    if not chosen:
        names = ", ".join(s.id for s in sessions) or "none"
        raise BlendwiseError(f"'{step}' is not a live session of {program} (sessions: {names})")
    text = "\n---\n\n".join(facilitator_pack(loaded.program, s, loaded.guides.get(s.id)) for s in chosen)
    if output is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BlendwiseError(f"{output}: cannot write the file ({exc.strerror})") from None
    out.print(f"Wrote the facilitator pack for {len(chosen)} session(s) to {output}.", markup=False)


@content_app.command("timeline")
def content_timeline(
    program: Annotated[str, typer.Argument(help="Program id from the content folder.")],
    start: Annotated[str, typer.Option(help="Cohort start date, YYYY-MM-DD.")],
    tz: Annotated[str | None, typer.Option(help="Cohort time zone (default: the program's).")] = None,
    zones: Annotated[
        str, typer.Option(help="Comma-separated zones of the sample learners.")
    ] = "Europe/London,America/New_York,Asia/Tokyo",
) -> None:
    """When each step unlocks, is delivered and is due for learners in sample zones; flags weekend, night and
    overdue-on-arrival deliveries (exit 1 when any is flagged)."""
    from bot.errors import NotFound
    from bot.journeys.library import Library
    from bot.journeys.timetable import render, timetable

    start_date = _start_date(start)
    names = [z.strip() for z in zones.split(",") if z.strip()]
    for name in [*([tz] if tz else []), *names]:
        _zone_option("--tz" if name == tz else "--zones", name)
    s = settings()
    library = Library.from_dir(s.content_dir)
    if program not in library:
        raise NotFound("program", program)
    timelines = timetable(library, s, program, start_date, tz, names)
    for line in render(library.program(program), start_date, tz or library.program(program).tz, timelines):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if any(row.flags for tl in timelines for row in tl.rows):
        raise typer.Exit(1)


def _start_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BlendwiseError(f"--start: '{value}' is not a date (YYYY-MM-DD)") from None


def _zone_option(flag: str, name: str) -> None:
    from bot.journeys.model import check_tz

    try:
        check_tz(name)
    except ValueError as exc:
        raise BlendwiseError(f"{flag}: {exc}") from None


@content_app.command("preview")
def content_preview(
    program: Annotated[str, typer.Argument(help="Program id in content/, or a program's folder or program.yaml.")],
    step: Annotated[str | None, typer.Option(help="Only this step (default: every step, in order).")] = None,
    platform: Annotated[str, typer.Option(help="console (text), or a platform's payload as JSON: slack, discord.")] = (
        "console"
    ),
) -> None:
    """Show a step as a learner will receive it: the real composer, a sample learner, the platform's renderer."""
    import tempfile

    from bot.demo import preview_steps
    from bot.platforms import registered

    spec = None
    if platform != "console":
        platforms = registered()
        spec = platforms[platform] if platform in platforms else None  # noqa: SIM401 - a registry, not a dict
        if spec is None or spec.preview is None:
            known = ", ".join(["console", *(p.name for p in platforms if p.preview is not None)])
            raise BlendwiseError(f"--platform: '{platform}' is not one of {known}")
    with tempfile.TemporaryDirectory(prefix="blendwise-preview-") as scratch:
        content_dir, program_id = (
            _demo_content(Path(program), None, Path(scratch))
            if Path(program).exists()
            else (load_settings(state.config).content_dir, program)
        )
        previews = preview_steps(content_dir, program_id, step)
    for shown in previews:
        sys.stdout.write(f"=== {shown.step_id} ({shown.kind}) ===\n")
        for message in shown.messages:
            if spec is None:
                sys.stdout.write(_console_preview(message))
                continue
            assert spec.preview is not None
            try:
                sys.stdout.write(spec.preview(message) + "\n")
            except ImportError:
                err.print(
                    f"error: the {platform} preview needs the '{spec.extra}' extra: "
                    f"pip install 'blendwise[{spec.extra}]'",
                    markup=False,
                )
                raise typer.Exit(2) from None


def _console_preview(message: Any) -> str:
    lines = [f"## {message.title}" if message.title else "", message.body or message.text]
    lines += [f"  {f.label}: {f.value}" for f in message.fields]
    if message.buttons:
        lines.append(" ".join(f"[{b.label}]" for b in message.buttons))
    if message.context:
        lines.append(f"({message.context})")
    return "\n".join(line for line in lines if line) + "\n\n"


# ---------------------------------------------------------------------- database
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from bot.storage.db import make_engine, upgrade

    s = settings()
    upgrade(make_engine(s.database_url))
    out.print("Database is up to date.", markup=False)


# ---------------------------------------------------------------------- people
ROSTER_COLUMNS = "platform,user_id,name,email,tz,manager[,workspace]"


def _text(path: Path) -> str:
    """A roster's text. Spreadsheets save "CSV UTF-8" with a byte-order mark, hence ``utf-8-sig``; any other
    encoding is refused at the line of its first undecodable byte, because guessing one silently garbles names."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BlendwiseError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BlendwiseError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as CSV UTF-8"
        ) from None


def _read_roster(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The roster's rows with their line numbers."""
    reader = csv.DictReader(_text(path).splitlines(keepends=True))
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = {"platform", "user_id", "name"} - set(fields)
    if missing:
        raise BlendwiseError(
            f"{path}:1: missing column(s): {', '.join(sorted(missing))} (expected {ROSTER_COLUMNS})"
        )
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}))
    except csv.Error as exc:
        raise BlendwiseError(f"{path}:{reader.line_num}: {exc}") from None
    return rows


@people_app.command("import")
def people_import(
    roster: Annotated[Path, typer.Argument(help=f"CSV: {ROSTER_COLUMNS}")],
    enroll: Annotated[
        str | None, typer.Option("--enroll", help="Also enroll everyone imported in this cohort (set-wise).")
    ] = None,
) -> None:
    """Import or update people from a roster CSV.

    'manager' is the manager's user id on the same platform, in this roster or already known. Without a
    'workspace' column each person belongs to the workspace the platform serves (the Slack team of the bot token,
    the one configured Discord guild); with several, the column is required.
    """

    from bot.storage.db import transaction

    if not roster.exists():
        raise BlendwiseError(f"{roster}: no such file")
    rows = _read_roster(roster)
    rt = runtime(adapters={})
    keyed, problems = _roster_rows(rt, rows)
    wanted = set(keyed) | {
        (platform, workspace, row["manager"]) for (platform, workspace, _), (_, row) in keyed.items() if row.get("manager")
    }
    with rt.factory() as session:
        known = {(p.platform, p.workspace, p.user_id) for p in _people(session, wanted)} | set(keyed)
    for (platform, workspace, _), (line, row) in keyed.items():
        manager_id = row.get("manager", "")
        if manager_id and (platform, workspace, manager_id) not in known:
            problems.append((line, f"unknown manager '{manager_id}' (add them as a row of the roster)"))
    if problems:
        for line, problem in sorted(problems):
            err.print(f"{roster}:{line}: {problem}", markup=False)
        raise typer.Exit(1)
    with transaction(rt.factory) as session:
        people, created = _upsert_people(session, keyed, wanted, rt.clock.now())
        if enroll is not None:
            rt.engine.enroll_many(session, _cohort(session, enroll, None), [people[key] for key in keyed])
    out.print(
        f"Imported {len(keyed)} people from {roster} ({created} new, {len(keyed) - created} updated).", markup=False
    )
    if enroll is not None:
        out.print(f"Enrolled {len(keyed)} in {enroll}.", markup=False)


RosterKey = tuple[str, str, str]


def _roster_rows(
    rt: Any, rows: list[tuple[int, dict[str, str]]]
) -> tuple[dict[RosterKey, tuple[int, dict[str, str]]], list[tuple[int, str]]]:
    """The roster's rows by (platform, workspace, user id), and the problems of the rows that cannot be read."""
    from bot.journeys.model import check_tz

    configured = rt.settings.platforms
    problems: list[tuple[int, str]] = []
    keyed: dict[RosterKey, tuple[int, dict[str, str]]] = {}
    for line, row in rows:
        platform, user_id = row.get("platform", ""), row.get("user_id", "")
        if not platform or not user_id:
            problems.append((line, "platform and user_id are required"))
            continue
        if platform not in configured:
            problems.append((line, f"platform '{platform}' is not configured (configured: {', '.join(configured)})"))
            continue
        if row.get("tz"):
            try:
                check_tz(row["tz"])
            except ValueError as exc:
                problems.append((line, str(exc)))
        workspace = row.get("workspace") or rt.default_workspace(platform)
        if workspace is None:
            problems.append(
                (line, f"{platform} serves several workspaces; add a 'workspace' column naming this row's")
            )
            continue
        key = (platform, workspace, user_id)
        if key in keyed:
            problems.append((line, f"duplicate of line {keyed[key][0]} ({platform} user {user_id})"))
            continue
        keyed[key] = (line, row)
    return keyed, problems


def _upsert_people(
    session: Any, keyed: dict[RosterKey, tuple[int, dict[str, str]]], wanted: set[RosterKey], now: Any
) -> tuple[dict[RosterKey, Any], int]:
    """Create or update the roster's people (one batched INSERT for the new ones), then link their managers."""
    from bot.storage.models import Person

    people = {(p.platform, p.workspace, p.user_id): p for p in _people(session, wanted)}
    created = 0
    for key, (_, row) in keyed.items():
        person = people.get(key)
        if person is None:
            platform, workspace, user_id = key
            person = Person(platform=platform, workspace=workspace, user_id=user_id, roles="", created_at=now)
            session.add(person)
            people[key] = person
            created += 1
        person.name = row.get("name") or person.name or key[2]
        person.email = row.get("email") or person.email
        if row.get("tz"):
            person.tz = row["tz"]
            person.tz_locked = True  # the roster wins over the platform profile
    session.flush()  # one batched INSERT for the new people, so managers have ids
    for (platform, workspace, user_id), (_, row) in keyed.items():
        if row.get("manager"):
            people[(platform, workspace, user_id)].manager_id = people[(platform, workspace, row["manager"])].id
    return people, created


def _people(session: Any, keys: set[tuple[str, str, str]]) -> list[Any]:
    """The stored people among ``keys`` (platform, workspace, user id), read in chunks rather than one by one."""
    from sqlalchemy import select

    from bot.storage.models import Person

    by_space: dict[tuple[str, str], list[str]] = {}
    for platform, workspace, user_id in keys:
        by_space.setdefault((platform, workspace), []).append(user_id)
    found: list[Any] = []
    for (platform, workspace), user_ids in by_space.items():
        for start in range(0, len(user_ids), 500):
            found += session.scalars(
                select(Person).where(
                    Person.platform == platform,
                    Person.workspace == workspace,
                    Person.user_id.in_(user_ids[start : start + 500]),
                )
            )
    return found


# ---------------------------------------------------------------------- cohorts
def _platform(rt: Any, platform: str | None) -> str:
    """The platform a command means: the one given, which must be configured, or the only one configured."""
    configured: list[str] = list(rt.settings.platforms)
    if platform is None:
        if len(configured) == 1:
            return configured[0]
        raise BlendwiseError(f"--platform: several platforms are configured; choose one of {', '.join(configured)}")
    if platform not in configured:
        raise BlendwiseError(f"--platform: '{platform}' is not configured (configured: {', '.join(configured)})")
    return platform


def _workspace(rt: Any, platform: str, workspace: str | None) -> str:
    if workspace:
        return workspace
    resolved: str | None = rt.default_workspace(platform)
    if resolved is None:
        raise BlendwiseError(f"--workspace: {platform} serves several workspaces; say which one")
    return resolved


def _cohort(session: Any, name: str, workspace: str | None) -> Any:
    """The cohort called ``name``: names are unique per workspace only, so a name found in several workspaces is
    refused rather than guessed."""
    from sqlalchemy import select

    from bot.errors import NotFound
    from bot.storage.models import Cohort

    query = select(Cohort).where(Cohort.name == name)
    if workspace:
        query = query.where(Cohort.workspace == workspace)
    found = list(session.scalars(query.order_by(Cohort.workspace)))
    if not found:
        raise NotFound("cohort", name)
    if len(found) > 1:
        spaces = ", ".join(f"{c.platform}:{c.workspace}" for c in found)
        raise BlendwiseError(f"cohort '{name}' exists in several workspaces ({spaces}); add --workspace")
    return found[0]


@cohort_app.command("create")
def cohort_create(
    name: str,
    program: Annotated[str, typer.Option(help="Program id.")],
    start: Annotated[str, typer.Option(help="Start date, YYYY-MM-DD.")],
    platform: Annotated[
        str | None, typer.Option(help="A configured platform (default: the only one configured).")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Slack team id / Discord guild id (default: the one the platform serves).")
    ] = None,
    tz: Annotated[str | None, typer.Option(help="Cohort time zone (default: the program's).")] = None,
    channel: Annotated[str | None, typer.Option(help="Cohort channel id.")] = None,
    lead: Annotated[list[str] | None, typer.Option(help="Lead user id (repeatable).")] = None,
    join_url: Annotated[
        list[str] | None,
        typer.Option("--join-url", help="SESSION=URL: this cohort's video-call link for a live session (repeatable)."),
    ] = None,
) -> None:
    """Create a cohort of a program."""
    from bot.errors import InvalidInput, NotFound
    from bot.storage.db import transaction

    start_date = _start_date(start)
    if tz is not None:
        _zone_option("--tz", tz)
    rt = runtime(adapters={})
    platform = _platform(rt, platform)
    if program not in rt.library:
        raise NotFound("program", program)
    ws = _workspace(rt, platform, workspace)
    links = _join_urls(rt.library.program(program), join_url or [])
    with transaction(rt.factory) as session:
        leads = [rt.engine.person(session, platform, ws, u) for u in lead or []]
        try:
            cohort = rt.engine.create_cohort(
                session, name=name, program_id=program, platform=platform, workspace=ws, start=start_date, tz=tz,
                channel=channel, leads=leads, join_urls=links,
            )
        except InvalidInput as exc:
            raise BlendwiseError(f"{exc} (workspace {ws}); choose another name") from None
        out.print(f"Created cohort {cohort.name} ({program}), starting {start_date} in {cohort.tz}.", markup=False)


def _join_urls(program: Any, pairs: list[str]) -> dict[str, str]:
    """``--join-url SESSION=URL`` pairs, each naming a live session of the program and an http(s) link."""
    sessions = [s.id for s in program.sessions]
    links: dict[str, str] = {}
    for pair in pairs:
        step, sep, url = pair.partition("=")
        if not sep or step.strip() not in sessions:
            raise BlendwiseError(
                f"--join-url: '{pair}' must be SESSION=URL with a live session of {program.id} "
                f"({', '.join(sessions) or 'it has none'})"
            )
        if not re.match(r"^https?://\S+$", url.strip()):
            raise BlendwiseError(f"--join-url: '{url}' is not an http(s) link")
        links[step.strip()] = url.strip()
    return links


@cohort_app.command("enroll")
def cohort_enroll(
    name: str,
    users: Annotated[list[str] | None, typer.Argument(help="User ids on the cohort's platform.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="CSV with a user_id column (a roster), or one user id a line.")
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create people not imported yet instead of refusing them.")
    ] = False,
    workspace: Annotated[
        str | None, typer.Option(help="The cohort's workspace, when its name exists in several.")
    ] = None,
) -> None:
    """Enroll people in a cohort, set-wise (100,000 take seconds). Unknown user ids are refused (a typo would
    create a ghost learner) unless --create is given."""
    from bot.journeys.enrolment import resolve_people
    from bot.storage.db import transaction

    wanted = list(users or [])
    if file is not None:
        wanted += _user_ids(file)
    if not wanted:
        raise BlendwiseError("cohort enroll: give user ids or --file roster.csv")
    rt = runtime(adapters={})
    with transaction(rt.factory) as session:
        cohort = _cohort(session, name, workspace)
        people, unknown = resolve_people(
            session, cohort.platform, cohort.workspace, wanted, now=rt.clock.now(), create=create
        )
        if unknown:
            shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise BlendwiseError(
                f"unknown user id(s) in {cohort.platform}:{cohort.workspace}: {shown} "
                "(import them with 'people import', or pass --create)"
            )
        rt.engine.enroll_many(session, cohort, people)
    out.print(f"Enrolled {len(people)} in {name}.", markup=False)


def _user_ids(path: Path) -> list[str]:
    """User ids from a roster CSV (its ``user_id`` column) or a plain list, one a line; blank lines are skipped."""
    if not path.exists():
        raise BlendwiseError(f"{path}: no such file")
    lines = _text(path).splitlines()
    if not lines:
        return []
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    if "user_id" in header:
        rows = list(csv.DictReader(lines))
        ids = []
        for i, row in enumerate(rows, start=2):
            user = (row.get("user_id") or "").strip()
            if not user and any((v or "").strip() for v in row.values() if isinstance(v, str)):
                raise BlendwiseError(f"{path}:{i}: user_id is empty")
            if user:
                ids.append(user)
        return ids
    if len(header) > 1:
        raise BlendwiseError(f"{path}:1: a CSV roster needs a user_id column")
    return [line.strip() for line in lines if line.strip()]


@cohort_app.command("list")
def cohort_list() -> None:
    """List cohorts with their enrolment counts."""
    from sqlalchemy import func, select

    from bot.storage.models import Cohort, Enrollment

    rt = runtime(adapters={}, content_optional=True)
    table = Table("cohort", "program", "platform", "start", "tz", "channel", "learners")
    with rt.factory() as session:
        for cohort, n in session.execute(
            select(Cohort, func.count(Enrollment.id)).outerjoin(Enrollment).group_by(Cohort.id).order_by(Cohort.name)
        ):
            table.add_row(cohort.name, cohort.program_id, cohort.platform, str(cohort.start_date), cohort.tz,
                          cohort.channel or "", str(n))
    out.print(table)


# ---------------------------------------------------------------------- reports
def _print_report(rt: Any, **filters: Any) -> None:
    from bot.reporting import Filters, build_report

    with rt.factory() as session:
        report = build_report(session, rt.engine, Filters(**filters))
    table = Table(title="Unified report: completion and attendance", title_justify="left")
    for col in ("learner", "cohort", "steps", "on time", "quiz avg", "live", "missed", "replies", "status"):
        table.add_column(col, justify="right" if col not in ("learner", "cohort", "status") else "left")
    for r in report.learners:
        # Table cells are Rich markup: a name such as "[link=https://x]me[/link]" must stay text.
        table.add_row(
            Text(r.name),
            Text(r.cohort),
            f"{r.steps_completed}/{r.steps_total}",
            str(r.on_time),
            "-" if r.quiz_average is None else f"{r.quiz_average:.0f}%",
            f"{r.sessions_attended}/{r.sessions_total}"
            + (f" (+{r.sessions_not_applicable} n/a)" if r.sessions_not_applicable else ""),
            str(r.sessions_missed) + (f" (+{r.sessions_caught_up} caught up)" if r.sessions_caught_up else ""),
            str(r.replies),
            r.status,
        )
    out.print(table)
    for c in report.cohorts:
        out.print(
            f"[bold]{escape(c.cohort)}[/bold] ({escape(c.program)}): {c.learners} learners, completion {c.completion_rate:.0f}% "
            f"({c.completed}/{c.learners}), live attendance {c.attendance_rate:.0f}%",
            markup=True,
        )
        for s in c.sessions:
            out.print(f"  {s['title']}: {s['attended']}/{s['invited']} attended ({s['rsvp_yes']} said yes)", markup=False)
        for q in c.evaluation:
            answers = ", ".join(f"{o['label']} {o['count']}" for o in q["options"])
            out.print(f"  Evaluation L{q['level']} ({q['responses']} answers) {q['question']}: {answers}", markup=False)


@app.command()
def report(
    cohort: Annotated[str | None, typer.Option(help="Only this cohort.")] = None,
    program: Annotated[str | None, typer.Option(help="Only this program id.")] = None,
    manager: Annotated[str | None, typer.Option(help="Only this manager's reports (user id, name or email).")] = None,
    person: Annotated[str | None, typer.Option(help="Only this person (user id, name or email).")] = None,
    since: Annotated[str | None, typer.Option(help="Active since YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Enrolled until YYYY-MM-DD.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or html.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """The unified report: completion and attendance in one view."""
    from datetime import UTC, datetime

    from bot.reporting import Filters, build_report

    if fmt not in ("table", "csv", "json", "html"):
        raise BlendwiseError(f"--format must be table, csv, json or html (got '{fmt}')")

    def day(value: str | None, flag: str) -> datetime | None:
        if value is None:
            return None
        try:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            raise BlendwiseError(f"{flag}: '{value}' is not a date (YYYY-MM-DD)") from None

    filters = Filters(cohort=cohort, program=program, manager=manager, person=person,
                      since=day(since, "--since"), until=day(until, "--until"))
    rt = runtime(adapters={}, content_optional=True)
    with rt.factory() as session:
        _check_filters(session, filters)
    if fmt == "table":
        _print_report(rt, **filters.__dict__)
        return
    with rt.factory() as session:
        rep = build_report(session, rt.engine, filters)
        if fmt == "html":
            rt.require("reporting")  # the charts need matplotlib: say which extra, exit code 2
            from bot.reporting.html import render_html

            text = render_html(session, rt.engine, rep)
        else:
            # A file gets a byte order mark so spreadsheet programs read UTF-8 names; stdout stays pipe-friendly.
            text = rep.to_csv(bom=output is not None) if fmt == "csv" else rep.to_json()
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"Wrote {output}", markup=False)
    else:
        sys.stdout.write(text)


def _check_filters(session: Any, filters: Any) -> None:
    """An unknown filter value is a typo, not an empty report: refuse it, naming the flag."""
    from sqlalchemy import or_, select

    from bot.storage.models import Cohort, Enrollment, Person

    if filters.cohort and session.scalar(select(Cohort.id).where(Cohort.name == filters.cohort).limit(1)) is None:
        raise BlendwiseError(f"--cohort: no cohort named '{filters.cohort}' (see 'blendwise cohort list')")
    if filters.program and (
        session.scalar(select(Enrollment.id).where(Enrollment.program_id == filters.program).limit(1)) is None
        and session.scalar(select(Cohort.id).where(Cohort.program_id == filters.program).limit(1)) is None
    ):
        raise BlendwiseError(f"--program: no cohort runs a program '{filters.program}'")
    for flag, needle in (("--manager", filters.manager), ("--person", filters.person)):
        if not needle:
            continue
        match = or_(Person.user_id == needle, Person.name == needle, Person.email == needle)
        if needle.isdigit():
            match = or_(match, Person.id == int(needle))
        if session.scalar(select(Person.id).where(match).limit(1)) is None:
            raise BlendwiseError(f"{flag}: nobody with user id, name or email '{needle}'")


# ---------------------------------------------------------------------- xapi
@xapi_app.command("export")
def xapi_export(
    since: Annotated[str | None, typer.Option(help="Only events on or after YYYY-MM-DD (UTC).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write JSON lines to this file.")] = None,
) -> None:
    """Write every learning event as an xAPI 1.0.3 statement, one JSON object per line."""
    import json
    from datetime import UTC, datetime

    from bot.records.xapi import export_statements
    from bot.storage.db import transaction

    start = None
    if since is not None:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            raise BlendwiseError(f"--since: '{since}' is not a date (YYYY-MM-DD)") from None
    rt = runtime(adapters={})
    count = 0
    fh = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with transaction(rt.factory) as session:
            for statement in export_statements(session, rt.library, rt.settings.lrs, since=start):
                fh.write(json.dumps(statement, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
    finally:
        if output:
            fh.close()
    if output:
        err.print(f"Wrote {count} statement(s) to {output}", markup=False)


@xapi_app.command("forward")
def xapi_forward(
    force: Annotated[bool, typer.Option(help="Try now even if the last failure asked to wait.")] = True,
) -> None:
    """Send statements not yet forwarded to the LRS configured under 'lrs' (endpoint, username, password)."""
    from bot.records.lrs import forward_pending

    rt = runtime(adapters={})
    result = forward_pending(rt.factory, rt.library, rt.settings.lrs, rt.clock.now(), force=force)
    if result.error:
        raise BlendwiseError(f"{result.error} ({result.sent} sent before the failure; the rest wait in the outbox)")
    more = " (more pending: run again)" if result.pending else ""
    out.print(f"Forwarded {result.sent} statement(s) in {result.batches} batch(es){more}.", markup=False)


# ---------------------------------------------------------------------- slack
@slack_app.command("manifest")
def slack_manifest() -> None:
    """Print a ready-to-paste Slack app manifest."""
    try:
        from bot.adapters.slack.manifest import manifest_text
    except ImportError:
        raise BlendwiseError("the Slack adapter is not installed: pip install 'blendwise[slack]'") from None
    sys.stdout.write(manifest_text())


# Optional features add their commands (live sessions, search, quiz drafting...) through the registry, and so do
# platforms that declare a command-line module in their PlatformSpec.
load_cli(
    CliRegistry(app, {"content": content_app, "cohort": cohort_app, "people": people_app}, runtime, out),
    FEATURES + tuple(spec.cli for spec in registered() if spec.cli),
)


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with the global options moved in front of the subcommand, wherever the user wrote them.

    Everything after a ``--`` is left alone, as is a value that merely follows an option taking one.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        takes_value = GLOBAL_OPTIONS.get(name)
        if takes_value is None:
            rest.append(arg)
        elif takes_value and "=" not in arg and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        else:
            front.append(arg)
        i += 1
    return front + rest


def main() -> None:
    """Entry point: one line for expected errors, never a traceback for them."""
    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="blendwise")
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except BlendwiseError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if state.debug:
            raise
        err.print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
