"""Every runtime start upgrades the database; when it already stands at head, Alembic is not even imported.
The shortcut must never skip a migration that is due."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.storage.db import at_head, head_revisions, make_engine, migrations_dir, upgrade


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
    assert "mirror_refused" in {c["name"] for c in inspect(engine).get_columns("sessions")}
    engine.dispose()
