"""The CLI refuses mistakes instead of creating ghosts (issue 11, point 5).

Every case runs the installed ``blendwise`` as a subprocess, as a new admin would, and checks the exit code and
that the complaint is one line (no traceback, no "unexpected" wrapper).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from bot.storage.db import make_engine
from bot.storage.models import Cohort, Person
from tests.conftest import CONTENT, ROOT

BLENDWISE = str(ROOT / ".venv" / "bin" / "blendwise")
ROSTER_HEADER = "platform,user_id,name,email,tz,manager\n"


def blendwise(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BLENDWISE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return blendwise(cwd, "--config", str(cwd / "app.yaml"), *args)


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single stderr line of an expected failure."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'cli.db'}\ncontent_dir: {CONTENT}\ntimezone: Europe/London\n",
        encoding="utf-8",
    )
    return tmp_path


def count(workdir: Path, model: type, *where: object) -> int:
    engine = make_engine(f"sqlite:///{workdir / 'cli.db'}")
    try:
        if not inspect(engine).has_table(model.__tablename__):  # type: ignore[attr-defined]
            return 0  # refused before the database was even opened
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())
    finally:
        engine.dispose()


def create(workdir: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(workdir, "cohort", "create", name, "--program", "feedback-fundamentals", "--start", "2026-03-02", *extra)


# ------------------------------------------------------------------------------------------------ cohorts
def test_cohort_create_refuses_an_unconfigured_platform(workdir: Path) -> None:
    line = one_line_error(create(workdir, "pilot", "--platform", "slak"))
    assert line == "error: --platform: 'slak' is not configured (configured: console)"
    assert count(workdir, Cohort) == 0


def test_cohort_create_refuses_a_duplicate_name(workdir: Path) -> None:
    assert create(workdir, "pilot").returncode == 0
    line = one_line_error(create(workdir, "pilot"))
    assert line.startswith("error: A cohort named 'pilot' already exists") and "console" in line
    assert count(workdir, Cohort) == 1


def test_cohort_create_refuses_an_unknown_time_zone(workdir: Path) -> None:
    line = one_line_error(create(workdir, "pilot", "--tz", "Mars/X"))
    assert line.startswith("error: --tz: unknown time zone 'Mars/X'")
    assert count(workdir, Cohort) == 0


def test_cohort_enroll_never_guesses_among_same_named_cohorts(workdir: Path) -> None:
    assert create(workdir, "pilot", "--workspace", "north").returncode == 0
    assert create(workdir, "pilot", "--workspace", "south").returncode == 0
    line = one_line_error(run(workdir, "cohort", "enroll", "pilot", "ana", "--create"))
    assert line == (
        "error: cohort 'pilot' exists in several workspaces (console:north, console:south); add --workspace"
    )
    done = run(workdir, "cohort", "enroll", "pilot", "ana", "--create", "--workspace", "south")
    assert (done.returncode, done.stdout.strip()) == (0, "Enrolled 1 in pilot."), done.stderr
    assert count(workdir, Person, Person.workspace == "south") == 1
    assert count(workdir, Person, Person.workspace == "north") == 0


def test_cohort_enroll_refuses_unknown_people_unless_told_to_create_them(workdir: Path) -> None:
    (workdir / "roster.csv").write_text(ROSTER_HEADER + "console,ana,Ana Silva,,,\n", encoding="utf-8")
    assert run(workdir, "people", "import", "roster.csv").returncode == 0
    assert create(workdir, "pilot").returncode == 0
    line = one_line_error(run(workdir, "cohort", "enroll", "pilot", "ana", "anna"))
    assert line == (
        "error: unknown user id(s) in console:console: anna (import them with 'people import', or pass --create)"
    )
    assert count(workdir, Person) == 1, "a typo creates no ghost learner"
    done = run(workdir, "cohort", "enroll", "pilot", "ana")
    assert (done.returncode, done.stdout.strip()) == (0, "Enrolled 1 in pilot."), done.stderr
    done = run(workdir, "cohort", "enroll", "pilot", "bo", "--create")
    assert (done.returncode, done.stdout.strip()) == (0, "Enrolled 1 in pilot."), done.stderr
    assert count(workdir, Person) == 2


# ------------------------------------------------------------------------------------------------ roster
def test_roster_duplicates_and_unknown_managers_name_their_line(workdir: Path) -> None:
    (workdir / "roster.csv").write_text(
        ROSTER_HEADER
        + "console,mia,Mia Manager,mia@example.com,,\n"
        + "console,ana,Ana Silva,,,mia\n"
        + "console,bo,Bo Berg,,,mia\n"
        + "console,ana,Ana Again,,,mia\n"
        + "console,cy,Cy Cole,,,mgr-nobody\n",
        encoding="utf-8",
    )
    done = run(workdir, "people", "import", "roster.csv")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "roster.csv:5: duplicate of line 3 (console user ana)",
        "roster.csv:6: unknown manager 'mgr-nobody' (add them as a row of the roster)",
    ]
    assert count(workdir, Person) == 0, "nothing is imported from a roster with errors"


def test_roster_import_count_is_truthful_and_managers_may_already_exist(workdir: Path) -> None:
    (workdir / "managers.csv").write_text(ROSTER_HEADER + "console,mia,Mia Manager,,,\n", encoding="utf-8")
    (workdir / "team.csv").write_text(
        ROSTER_HEADER + "console,ana,Ana Silva,,,mia\nconsole,mia,Mia M.,,Europe/Paris,\n", encoding="utf-8"
    )
    first = run(workdir, "people", "import", "managers.csv")
    assert first.stdout.strip() == "Imported 1 people from managers.csv (1 new, 0 updated).", first.stderr
    second = run(workdir, "people", "import", "team.csv")
    assert second.stdout.strip() == "Imported 2 people from team.csv (1 new, 1 updated).", second.stderr
    assert count(workdir, Person) == 2


def test_roster_with_a_byte_order_mark_imports(workdir: Path) -> None:
    # What a spreadsheet writes for "CSV UTF-8": a BOM before the header.
    (workdir / "roster.csv").write_bytes(
        (ROSTER_HEADER + "console,ana,Ana Müller,,Europe/Berlin,\n").encode("utf-8-sig")
    )
    done = run(workdir, "people", "import", "roster.csv")
    assert done.returncode == 0, done.stderr
    engine = make_engine(f"sqlite:///{workdir / 'cli.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(select(Person.name, Person.tz)).all() == [("Ana Müller", "Europe/Berlin")]
    finally:
        engine.dispose()


def test_roster_in_another_encoding_names_the_line(workdir: Path) -> None:
    (workdir / "roster.csv").write_bytes(
        (ROSTER_HEADER + "console,ana,Ana Silva,,,\nconsole,jo,José Díaz,,,\n").encode("cp1252")
    )
    line = one_line_error(run(workdir, "people", "import", "roster.csv"))
    assert line == "error: roster.csv:3: not UTF-8 text (byte 0xe9); save the file as CSV UTF-8"
    assert create(workdir, "pilot").returncode == 0
    line = one_line_error(run(workdir, "cohort", "enroll", "pilot", "--file", "roster.csv", "--create"))
    assert line == "error: roster.csv:3: not UTF-8 text (byte 0xe9); save the file as CSV UTF-8"


def test_roster_platform_must_be_configured(workdir: Path) -> None:
    (workdir / "roster.csv").write_text(ROSTER_HEADER + "slak,U1,Ana Silva,,,\n", encoding="utf-8")
    done = run(workdir, "people", "import", "roster.csv")
    assert done.returncode == 1
    assert done.stderr.strip() == "roster.csv:2: platform 'slak' is not configured (configured: console)"


def test_roster_needs_a_workspace_column_when_the_platform_serves_several(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        f"database_url: sqlite:///{tmp_path / 'cli.db'}\ncontent_dir: {CONTENT}\nplatforms: [discord]\n"
        "discord:\n  token: ${DISCORD_TOKEN}\n  guild_ids: ['1100000000000000001', '1100000000000000002']\n",
        encoding="utf-8",
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER_HEADER + "discord,1300000000000000001,Ana Silva,,,\n", encoding="utf-8")
    env_run = subprocess.run(
        [BLENDWISE, "--config", str(tmp_path / "app.yaml"), "people", "import", "roster.csv"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={"DISCORD_TOKEN": "fake-token", "PATH": ""},
    )
    assert env_run.returncode == 1
    assert env_run.stderr.strip() == (
        "roster.csv:2: discord serves several workspaces; add a 'workspace' column naming this row's"
    )
    roster.write_text(
        "platform,workspace,user_id,name,email,tz,manager\n"
        "discord,1100000000000000002,1300000000000000001,Ana Silva,,,\n",
        encoding="utf-8",
    )
    env_run = subprocess.run(
        [BLENDWISE, "--config", str(tmp_path / "app.yaml"), "people", "import", "roster.csv"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={"DISCORD_TOKEN": "fake-token", "PATH": ""},
    )
    assert env_run.returncode == 0, env_run.stderr
    cohort = subprocess.run(
        [BLENDWISE, "--config", str(tmp_path / "app.yaml"), "cohort", "create", "pilot", "--program",
         "feedback-fundamentals", "--start", "2026-03-02"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={"DISCORD_TOKEN": "fake-token", "PATH": ""},
    )
    assert one_line_error(cohort) == "error: --workspace: discord serves several workspaces; say which one"


# ------------------------------------------------------------------------------------------------ report
@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--cohort", "nosuch", "error: --cohort: no cohort named 'nosuch' (see 'blendwise cohort list')"),
        ("--program", "nosuch", "error: --program: no cohort runs a program 'nosuch'"),
        ("--manager", "nosuch", "error: --manager: nobody with user id, name or email 'nosuch'"),
        ("--person", "nosuch", "error: --person: nobody with user id, name or email 'nosuch'"),
    ],
)
def test_report_refuses_an_unknown_filter_value(workdir: Path, flag: str, value: str, expected: str) -> None:
    assert create(workdir, "pilot").returncode == 0
    assert run(workdir, "cohort", "enroll", "pilot", "ana", "--create").returncode == 0
    assert one_line_error(run(workdir, "report", flag, value)) == expected
    known = {"--cohort": "pilot", "--program": "feedback-fundamentals", "--manager": "ana", "--person": "ana"}
    assert run(workdir, "report", flag, known[flag]).returncode == 0


# ------------------------------------------------------------------------------------------------ global options
def test_global_options_work_after_the_subcommand(workdir: Path) -> None:
    assert create(workdir, "pilot").returncode == 0
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    url = f"sqlite:///{workdir / 'cli.db'}"
    # The form the docs and the demo's closing hint use: the option after the subcommand, no app.yaml here and
    # no content folder (a report needs none).
    done = blendwise(elsewhere, "report", "--database-url", url, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("person_id,platform,user_id")
    assert done.stderr.strip().startswith("note: no content folder at")
    listing = blendwise(elsewhere, "cohort", "list", f"--database-url={url}")
    assert listing.returncode == 0 and "pilot" in listing.stdout, listing.stderr
    listing = blendwise(workdir, "cohort", "list", "--config", str(workdir / "app.yaml"), "--debug")
    assert listing.returncode == 0 and "pilot" in listing.stdout, listing.stderr


def test_version() -> None:
    done = subprocess.run([BLENDWISE, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("blendwise ") and done.stdout.split()[1][0].isdigit()


def test_help_has_no_flag_types_or_rest_markup() -> None:
    """Every command's --help: flags show no ``<bool>`` type and docstrings leak no reST backticks."""
    import typer
    from typer.testing import CliRunner

    from bot.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(group, [])
    assert len(paths) > 15
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        assert "``" not in result.output, (path, result.output)
