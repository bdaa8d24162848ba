"""A database created empty is not migrated script by script: :func:`bot.storage.db.create_fresh` creates the head
schema from the models and stamps Alembic's heads. That is only honest while the result is exactly what replaying
every migration gives, so this compares the two on each database (SQLite always, PostgreSQL when configured): the
tables, their columns in order with types, nullability and defaults, primary and foreign keys, indexes (with their
conditions), unique and check constraints, and Alembic's version table. It is also the check that a model change
comes with its migration and the other way round."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from bot.live.search import ensure_schema
from bot.storage.db import at_head, create_fresh, head_revisions, make_engine, migrations_dir, upgrade
from tests.conftest import _reset_postgres


def _migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _schema(engine: Engine) -> dict[str, Any]:
    ensure_schema(engine)  # what every runtime start adds (full-text search DDL), on either path
    insp = inspect(engine)
    found: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                for c in insp.get_columns(table)
            ],
            "primary key": insp.get_pk_constraint(table),
            "foreign keys": sorted(map(repr, insp.get_foreign_keys(table))),
            "indexes": sorted(
                repr((i["name"], i["column_names"], i.get("expressions"), i["unique"],
                      {k: str(v) for k, v in (i.get("dialect_options") or {}).items()}))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(map(repr, insp.get_unique_constraints(table))),
            "checks": sorted(map(repr, insp.get_check_constraints(table))),
        }
    with engine.connect() as conn:
        found["versions"] = sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))
    return found


def test_an_empty_database_is_created_as_the_migrations_would_leave_it(db_url: str, tmp_path: Path) -> None:
    migrated_url = f"sqlite:///{tmp_path / 'migrated.db'}" if db_url.startswith("sqlite") else db_url
    engine = make_engine(migrated_url)
    _migrate(engine)
    migrated = _schema(engine)
    engine.dispose()
    if migrated_url == db_url:
        _reset_postgres(db_url)

    engine = make_engine(db_url)
    assert create_fresh(engine)
    fresh = _schema(engine)
    assert fresh == migrated
    assert fresh["versions"] == sorted(head_revisions() or ())
    # Stamped at head: a start does nothing more, and Alembic itself agrees there is nothing to apply.
    assert at_head(engine)
    _migrate(engine)
    assert _schema(engine) == migrated
    engine.dispose()


def test_a_database_holding_tables_is_never_created_over(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    assert not create_fresh(engine)
    assert inspect(engine).get_table_names() == ["someone_elses"]
    upgrade(engine)  # Alembic then migrates beside the table, as before
    assert at_head(engine)
    engine.dispose()


def test_workers_starting_together_on_an_empty_database_create_it_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process (bot.storage.locks.single_worker); PostgreSQL serves many workers")
    engines = [make_engine(db_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))

    def start(engine: Engine) -> bool:
        barrier.wait()
        return create_fresh(engine)

    with ThreadPoolExecutor(len(engines)) as pool:
        created = list(pool.map(start, engines))
    assert sorted(created) == [False, False, True]
    for engine in engines:
        upgrade(engine)  # each worker's start goes on as usual: at head, nothing to apply
        assert at_head(engine)
        engine.dispose()
