"""What a runtime start does for speed must not change what it does: the migration shortcut never skips a due
migration, and the collector thresholds are the runtime's only when the process left Python's defaults."""

from __future__ import annotations

import gc

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.app import DEFAULT_GC_THRESHOLDS, GC_THRESHOLDS, build
from bot.storage.db import at_head, head_revisions, make_engine, migrations_dir, upgrade
from tests.conftest import make_settings


def _config(conn: object) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = conn
    return cfg


def test_the_heads_read_from_the_scripts_are_alembics_own():
    assert head_revisions() == set(ScriptDirectory(str(migrations_dir())).get_heads())


def test_a_database_one_migration_behind_is_upgraded(db_url):
    engine = make_engine(db_url)
    assert not at_head(engine)  # no schema at all
    upgrade(engine)
    assert at_head(engine)
    with engine.begin() as conn:
        command.downgrade(_config(conn), "-1")
    assert not at_head(engine)
    upgrade(engine)
    assert at_head(engine)
    # The last migration's change is really there again, not only the version row.
    pending = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("deliveries")}
    assert pending["ix_deliveries_pending_due"] == ["due_at", "priority", "id"]
    engine.dispose()


def test_a_runtime_collects_garbage_less_often_unless_the_process_chose_its_own_thresholds(sqlite_url):
    saved = gc.get_threshold()
    try:
        gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
        build(make_settings(sqlite_url), adapters={}).db.dispose()
        assert gc.get_threshold() == GC_THRESHOLDS
        gc.set_threshold(5000, 10, 10)
        build(make_settings(sqlite_url), adapters={}).db.dispose()
        assert gc.get_threshold() == (5000, 10, 10)
    finally:
        gc.set_threshold(*saved)
