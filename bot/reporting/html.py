"""The unified report as one self-contained HTML file.

The one template loader (:mod:`bot.templating`, HTML flavour) renders ``templates/report.html.j2`` with autoescape
on, so every learner-provided string (names, e-mails, cohort names) is escaped. The only markup passed through unescaped is the charts: SVG that matplotlib generated
from numbers and authored titles, which matplotlib escapes itself. CSS is inline and there is no JavaScript and no
external asset, so the file can be e-mailed or archived and opens the same way offline.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from bot.journeys.engine import Engine
from bot.reporting.compute import CohortSummary, LearnerRow, Report
from bot.templating import add_filter, templates

STATUS_ORDER = {"behind": 0, "paused": 1, "on track": 2, "done": 3}


# The report's own number formats, available to every template through the one loader.
add_filter("pct", lambda v: "–" if v is None else f"{v:.0f}%")
add_filter("day", lambda v: v[:10] if v else "–")


def _svg(svg: str) -> Markup:
    """Chart SVG passes unescaped: matplotlib generated it from numbers and authored titles, and escapes text."""
    return Markup(svg)  # noqa: S704


def _cohort_view(c: CohortSummary, learners: list[LearnerRow], index: int) -> dict[str, Any]:
    from bot.reporting.charts import attendance_svg, funnel_svg, weekly_svg

    mine = [r for r in learners if r.cohort == c.cohort]
    quiz = [r.quiz_average for r in mine if r.quiz_average is not None]
    retention = [r.retention for r in mine if r.retention is not None]
    statuses = {s: sum(1 for r in mine if r.status == s) for s in ("on track", "behind", "paused", "done")}
    return {
        "summary": c,
        "anchor": f"cohort-{index}",
        "quiz_average": round(sum(quiz) / len(quiz), 1) if quiz else None,
        "retention": round(sum(retention) / len(retention), 1) if retention else None,
        "statuses": statuses,
        "replies": sum(r.replies for r in mine),
        "funnel": _svg(funnel_svg(c.funnel, c.learners, f"c{index}-funnel")) if c.funnel else None,
        "attendance": _svg(attendance_svg(c.sessions, f"c{index}-att")) if c.sessions else None,
        "weekly": _svg(weekly_svg(c.weekly_active, c.learners, f"c{index}-weekly"))
        if c.weekly_active
        else None,
    }


def render_html(session: Session, engine: Engine, report: Report) -> str:
    """Render ``report`` as a standalone HTML page with charts (``blendwise report --format html``)."""
    cohorts = [_cohort_view(c, report.learners, i) for i, c in enumerate(report.cohorts, start=1)]
    learners = sorted(
        report.learners, key=lambda r: (r.cohort, STATUS_ORDER.get(r.status, 9), r.name.lower())
    )
    totals = {
        "learners": len(report.learners),
        "completed": sum(1 for r in report.learners if r.status == "done"),
        "behind": sum(1 for r in report.learners if r.status == "behind"),
        "attended": sum(r.sessions_attended for r in report.learners),
        "sessions": sum(r.sessions_total for r in report.learners),
    }
    return templates.html(
        "report",
        report=report,
        generated=report.generated_at.strftime("%d %b %Y, %H:%M UTC"),
        cohorts=cohorts,
        learners=learners,
        totals=totals,
    )
