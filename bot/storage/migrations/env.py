"""Alembic environment: runs on the connection handed over by :func:`bot.storage.db.upgrade`, or on
``sqlalchemy.url`` when Alembic is driven from its own command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bot.storage.db import all_metadata

# Optional features keep their tables next to their code; all_metadata imports them so migrations know every table.
config = context.config
target_metadata, _ = all_metadata()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave SQLite's full-text search tables (created with raw DDL by bot.live.search) out of autogenerate."""
    return not (type_ == "table" and name is not None and name.startswith("search_fts"))


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///blendwise.db")
    with engine.begin() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()


run()
