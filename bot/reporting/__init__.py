"""Reporting in one place: the per-learner computation and every view of it.

* :mod:`bot.reporting.compute`: :func:`build_report`, one row per learner per program (:class:`LearnerRow`) and one
  summary per cohort, with the CSV and JSON forms (a documented contract, ``docs/reports.md``);
* :mod:`bot.reporting.html`: the self-contained HTML report;
* :mod:`bot.reporting.charts`: matplotlib charts for the HTML report and the manager digest.

matplotlib is an optional extra (``blendwise[reports]``), so nothing here imports :mod:`bot.reporting.charts` at
module level: the core, the CSV/JSON report and the digest text work without it.

:func:`setup` (a feature, see :mod:`bot.registry`) attaches a team-progress chart to
the manager digest when matplotlib is installed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.reporting.compute import CSV_COLUMNS, CohortSummary, Filters, LearnerRow, Report, build_report

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.journeys.engine import Engine
    from bot.messages import Attachment
    from bot.nudges.purposes import DueRow
    from bot.registry import Registry

__all__ = [
    "CSV_COLUMNS",
    "CohortSummary",
    "Filters",
    "LearnerRow",
    "Report",
    "build_report",
    "digest_with_chart",
    "setup",
]

log = logging.getLogger(__name__)


#: Charts (the HTML report's and the digest's) need matplotlib, in the ``reports`` extra. Without it the feature is
#: off: the CSV/JSON report and the digest text still work, ``report --format html`` answers which extra to install.
EXTRA = "reports"
REQUIRES = ("matplotlib",)


#: The :attr:`~bot.messages.Attachment.source` kind of a manager's team-progress chart: ``digest-chart:<person id>``.
CHART_SOURCE = "digest-chart"


def setup(registry: Registry) -> None:
    from bot.states import PurposeName

    engine = registry.runtime.engine
    if PurposeName.DIGEST in registry.runtime.sender.purposes:
        registry.wrap_purpose(PurposeName.DIGEST, lambda render: digest_with_chart(engine, render))
        registry.add_attachment(CHART_SOURCE, lambda session, source: chart_of(session, engine, source))


def team_chart(session: Session, engine: Engine, manager_id: int) -> Attachment | None:
    """The PNG of the manager's team progress now, or ``None`` (no such person, or no team).

    The chart is drawn from :func:`bot.nudges.digests.team_rows`, the same rows as the digest text, so it covers
    exactly the manager's own reports (direct, plus indirect ones when ``digest.include_indirect`` is set). The rows
    are read now, in the caller's session; the PNG is drawn only when an adapter asks for the bytes
    (:meth:`~bot.messages.Attachment.data`: an adapter that uploads files, or serves a link when it is opened), so
    the console, an unopened link and a skipped send never load matplotlib.
    """
    from bot.messages import Attachment
    from bot.nudges.digests import team_rows
    from bot.storage.models import Person

    manager = session.get(Person, manager_id)
    if manager is None:
        return None
    rows = team_rows(session, engine, manager)
    if not rows:
        return None
    person_id = manager.id

    def draw() -> bytes | None:
        try:
            from bot.reporting.charts import team_progress_png

            return team_progress_png(rows)
        except Exception:  # a chart is a nicety; the digest text must still go out
            log.exception("could not draw the digest chart for manager %s", person_id)
            return None

    return Attachment(filename="team-progress.png", content=b"", mimetype="image/png", title="Team progress",
                      source=f"{CHART_SOURCE}:{person_id}", draw=draw)


def chart_of(session: Session, engine: Engine, source: str) -> Attachment | None:
    """The chart ``digest-chart:<person id>`` names, drawn again (a platform that links to files serves it)."""
    kind, _, manager_id = source.partition(":")
    return team_chart(session, engine, int(manager_id)) if kind == CHART_SOURCE and manager_id.isdigit() else None


def digest_with_chart(engine: Engine, render: Any) -> Any:
    """Wrap the digest renderer: same message, plus a PNG of the manager's team progress (:func:`team_chart`)."""
    from bot.nudges.digests import TEAM_ROWS_MEMO

    def wrapped(session: Session, delivery: DueRow) -> Any:
        # The text and the chart read the same rows, with nothing written in between: compute them once.
        session.info[TEAM_ROWS_MEMO] = {}
        try:
            out = render(session, delivery)
            if not out or delivery.person_id is None:
                return out
            chart = team_chart(session, engine, delivery.person_id)
        finally:
            del session.info[TEAM_ROWS_MEMO]
        # A large team's digest comes in parts: the chart goes with the last one, under the whole list.
        message = out[-1] if isinstance(out, list) else out
        if chart is not None:
            message.attachments = [*message.attachments, chart]
        return out

    return wrapped
