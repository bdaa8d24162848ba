"""Engine and session handling.

SQLite is the embedded default and runs in WAL mode (readers never block the sender's writes) with foreign keys
on. PostgreSQL serves production through psycopg 3.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ConfigError


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the pragmas and pool settings Blendwise relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database_url", f"'{url}' is not a database URL") from exc
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Adapters run inbound handlers on their own threads; SQLite connections are safe to share across them
        # as long as one connection is used at a time, which the pool guarantees.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if database not in ("", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A 64 MB page cache and in-memory temp tables keep a burst tick (100,000 rows) well under a second.
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

    return engine


def rowcount(result: Any) -> int:
    """Rows touched by a DML statement (``Result`` is typed without ``rowcount``; its cursor result has it)."""
    return int(getattr(result, "rowcount", 0) or 0)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def migrations_dir() -> Path:
    return Path(__file__).parent / "migrations"


_REVISION = re.compile(r"^revision\b[^=]*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=]*=(.*)$", re.MULTILINE)


def head_revisions() -> set[str] | None:
    """The head revisions of the migration scripts, read from their ``revision``/``down_revision`` lines.

    Importing Alembic and loading its script directory costs a CLI start more than the command itself; this reads
    the same two lines Alembic reads. ``None`` when a script does not have the usual shape (then Alembic decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations_dir() / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        found, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if found is None or down is None:
            return None
        revisions.add(found.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return (revisions - parents) or None


def at_head(engine: Engine) -> bool:
    """Whether the database already stands at every head revision (so an upgrade to head has nothing to do)."""
    heads = head_revisions()
    if heads is None:
        return False
    try:
        with engine.connect() as conn:
            current = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:
        return False  # no schema yet
    return current == heads


#: The optional features keep their tables next to their code; Alembic's ``env.py`` and :func:`create_fresh` need
#: every table.
FEATURE_MODELS = ("bot.records.models", "bot.reinforcement.models", "bot.live.models")


def all_metadata() -> tuple[MetaData, bool]:
    """The models' metadata with every table the migrations create, and whether every feature's models imported
    (a feature whose dependency is missing leaves its tables out)."""
    from bot.storage.models import Base

    complete = True
    for name in FEATURE_MODELS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            complete = False
    return Base.metadata, complete


def create_fresh(engine: Engine) -> bool:
    """On a database without any table, create the head schema from the models and stamp Alembic's head revisions,
    in one transaction; ``False`` (nothing done) when the database holds a table or the heads are unclear.

    Replaying every migration (20-odd SQLite table rebuilds) cost the demo's start more than all its other set-up;
    the result is the same schema, which ``tests/unit/test_schema.py`` proves on SQLite and PostgreSQL (tables,
    columns and their order, keys, indexes, constraints and the version table).
    """
    heads = head_revisions()
    metadata, complete = all_metadata()
    if heads is None or not complete:
        return False
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Workers starting together on an empty database: one creates, the others wait here, then find tables
            # (and Alembic finds the version at head). SQLite serves one process (locks.single_worker).
            from bot.storage.locks import lock_key

            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("create-schema")})
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        version = _alembic_version_table()
        version.create(conn)
        conn.execute(version.insert(), [{"version_num": head} for head in sorted(heads)])
    return True


def _alembic_version_table() -> Table:
    """The table Alembic keeps its revision in, declared as Alembic declares it (``alembic.ddl.impl``)."""
    return Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (``blendwise db upgrade``).

    Every runtime start calls this; when the database is already at head, or is empty and is created at head
    (:func:`create_fresh`), it returns without importing Alembic.
    """
    if revision == "head" and (at_head(engine) or create_fresh(engine)):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def create_all(engine: Engine) -> None:
    """Create the schema from the models (tests); production uses :func:`upgrade`."""
    from bot.storage.models import Base

    Base.metadata.create_all(engine)
