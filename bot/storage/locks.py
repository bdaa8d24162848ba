"""Cluster-wide locks for jobs that must run on one worker at a time.

On PostgreSQL a job takes a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated connection; a
worker that does not get it skips that run, because another worker is doing the same work right now. The lock
dies with the connection, so a killed worker never leaves it held.

SQLite is the embedded, single-process default: :func:`single_worker` holds an exclusive lock on a file next to
the database for the life of ``blendwise run`` and refuses a second process with one clear line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text

from bot.errors import ConfigError


def lock_key(name: str) -> int:
    """The PostgreSQL advisory-lock key of ``name`` (every lock this project takes is named)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """``with exclusive(db, "digests") as mine:`` — ``mine`` is False when another worker holds ``name``."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()  # the lock is session-level: no transaction stays open while the job runs
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def single_worker(engine: Engine) -> IO[str] | None:
    """Refuse a second ``blendwise run`` on one SQLite file; returns the held lock file (keep it open)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:"):
        return None
    try:
        import fcntl
    except ImportError:  # not on a POSIX system: nothing to enforce with
        return None
    handle = Path(database + ".worker-lock").open("w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            "database_url",
            f"SQLite serves one 'blendwise run' process and another one already runs on {database}; "
            "use PostgreSQL to run several workers",
        ) from None
    return handle
