"""Learning records: xAPI statements and forwarding them to a Learning Record Store.

:func:`setup` (a feature, see :mod:`bot.registry`) makes sure the cursor table exists
and, when an LRS endpoint is configured, adds LRS forwarding as its own interval job, because it talks to the
network and must never slow the tick down. Spaced reinforcement (:mod:`bot.reinforcement`) and the reporting
package (:mod:`bot.reporting`) are separate features.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.records.models import RECORDS_TABLES

if TYPE_CHECKING:
    from bot.app import Runtime
    from bot.registry import Registry

log = logging.getLogger(__name__)

LRS_FORWARD_SECONDS = 60.0


def ensure_tables(runtime: Runtime) -> None:
    """Create this feature's tables if the migrations do not have them yet.

    The tables are declared on the core ``Base``, so the next Alembic revision picks them up; until it exists this
    keeps a fresh database usable. ``checkfirst`` makes it a no-op once the migration has run.
    """
    from bot.storage.models import Base

    Base.metadata.create_all(runtime.db, tables=RECORDS_TABLES, checkfirst=True)


#: xAPI and LRS forwarding use the standard library only.
EXTRA: str | None = None
REQUIRES: tuple[str, ...] = ()


def setup(registry: Registry) -> None:
    runtime = registry.runtime
    ensure_tables(runtime)
    if runtime.settings.lrs.endpoint:
        registry.add_job("lrs-forward", LRS_FORWARD_SECONDS, lambda: forward(runtime))


def forward(runtime: Runtime) -> Any:
    """Forward pending statements to the configured LRS (the scheduler's job; also ``blendwise xapi forward``)."""
    from bot.records.lrs import forward_pending

    return forward_pending(runtime.factory, runtime.library, runtime.settings.lrs, runtime.clock.now())
