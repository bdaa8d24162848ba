"""Charts drawn with matplotlib's Agg backend (no display, thread-safe use through the object API).

The pyplot state machine is never used: each chart builds its own :class:`~matplotlib.figure.Figure`, so charts can
be drawn from the sender's thread while an adapter runs on another.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bot.reporting.compute import LearnerRow

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
BRAND = "#2563eb"
BRAND_LIGHT = "#bfdbfe"
STATUS_COLOURS = {"done": "#15803d", "on track": "#2563eb", "behind": "#d97706", "paused": "#9ca3af"}
#: Bundled with matplotlib, so charts look the same on every machine and no font lookup fails.
FONT = ["DejaVu Sans"]


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=9, length=0)
    ax.set_axisbelow(True)
    return fig, ax


def _rc() -> Any:  # matplotlib types rcParams keys as literals
    return {
        "font.family": "sans-serif",
        "font.sans-serif": FONT,
        "svg.fonttype": "none",
        "svg.hashsalt": "blendwise",
    }


def to_svg(fig: Figure, uid: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), with ids unique to ``uid``.

    Several charts share one HTML page, so matplotlib's internal ids (clip paths, glyphs) are prefixed per chart;
    otherwise the second chart would clip to the first chart's rectangles.
    """
    buf = io.StringIO()
    rc = _rc()
    rc["svg.hashsalt"] = uid
    with matplotlib.rc_context(rc):
        fig.savefig(
            buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None}, transparent=True
        )
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    prefix = re.sub(r"[^a-zA-Z0-9_-]", "-", uid)
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', svg)
    # Scale with the page instead of a fixed point size.
    svg = re.sub(
        r'<svg([^>]*?) width="[^"]+" height="[^"]+"',
        r'<svg\1 class="chart" role="img" preserveAspectRatio="xMinYMin meet"',
        svg,
        count=1,
    )
    return svg


def funnel_svg(steps: Sequence[tuple[str, int]], learners: int, uid: str) -> str:
    """Horizontal bars: learners who completed each step, in program order."""
    with matplotlib.rc_context(_rc()):
        height = 0.9 + 0.3 * max(len(steps), 1)
        fig, ax = _figure(11.0, height)
        labels = [_short(t, 38) for t, _ in steps]
        values = [n for _, n in steps]
        y = list(range(len(steps)))
        top = max(learners, 1)
        ax.barh(y, [top] * len(steps), color="#f1f5f9", height=0.62)
        ax.barh(y, values, color=BRAND, height=0.62)
        ax.set_yticks(y, labels=labels, color=INK)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.12)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= top])
        ax.xaxis.grid(True, color=GRID, linewidth=0.8)
        ax.spines["left"].set_visible(False)
        ax.spines["bottom"].set_visible(False)
        for yi, v in zip(y, values, strict=True):
            pct = f"{round(100 * v / learners)}%" if learners else "0%"
            ax.text(top * 1.01, yi, f"{v} · {pct}", va="center", ha="left", fontsize=8.5, color=INK)
        ax.set_xlabel("learners who completed the step", color=MUTED, fontsize=9)
        return to_svg(fig, uid)


def attendance_svg(sessions: Sequence[dict[str, Any]], uid: str) -> str:
    """Grouped bars per live session: invited, said yes, attended."""
    with matplotlib.rc_context(_rc()):
        fig, ax = _figure(5.6, 2.9)
        n = len(sessions)
        xs = list(range(n))
        w = 0.26
        invited = [s["invited"] for s in sessions]
        yes = [s["rsvp_yes"] for s in sessions]
        attended = [s["attended"] for s in sessions]
        ax.bar([x - w for x in xs], invited, w, color="#e2e8f0", label="invited")
        ax.bar(xs, yes, w, color=BRAND_LIGHT, label="said yes")
        bars = ax.bar([x + w for x in xs], attended, w, color=BRAND, label="attended")
        for rect, s in zip(bars, sessions, strict=True):
            ax.text(
                rect.get_x() + rect.get_width() / 2,
                rect.get_height(),
                f"{s['rate']:.0f}%",
                ha="center",
                va="bottom",
                fontsize=8.5,
                color=INK,
            )
        ax.set_xticks(xs, labels=[_short(s["title"], 24) for s in sessions])
        ax.yaxis.grid(True, color=GRID, linewidth=0.8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(
            frameon=False,
            fontsize=8.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=3,
            labelcolor=MUTED,
        )
        return to_svg(fig, uid)


def weekly_svg(weeks: Sequence[tuple[str, int]], learners: int, uid: str) -> str:
    """Active learners per week (a learner is active in a week if they completed, answered, attended or replied)."""
    with matplotlib.rc_context(_rc()):
        fig, ax = _figure(5.6, 2.7)
        xs = list(range(len(weeks)))
        values = [n for _, n in weeks]
        ax.fill_between(xs, values, color=BRAND_LIGHT, alpha=0.6, linewidth=0)
        ax.plot(xs, values, color=BRAND, linewidth=2, marker="o", markersize=4)
        ax.set_xticks(xs, labels=[_week_label(w) for w, _ in weeks])
        if len(xs) > 8:
            for i, label in enumerate(ax.get_xticklabels()):
                label.set_visible(i % 2 == 0)
        ax.set_xlabel("week starting (Monday)", color=MUTED, fontsize=9)
        ax.set_ylim(0, max([learners, *values, 1]) * 1.1)
        ax.yaxis.grid(True, color=GRID, linewidth=0.8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        for x, v in zip(xs, values, strict=True):
            ax.annotate(
                str(v),
                (x, v),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8.5,
                color=INK,
            )
        return to_svg(fig, uid)


def team_progress_png(rows: Sequence[LearnerRow]) -> bytes:
    """A small PNG for the manager digest: steps done per report and enrolment, coloured by status."""
    with matplotlib.rc_context(_rc()):
        fig, ax = _figure(6.0, 0.8 + 0.38 * max(len(rows), 1))
        labels = [_short(f"{r.name} · {r.program}", 40) for r in rows]
        y = list(range(len(rows)))
        totals = [max(r.steps_total, 1) for r in rows]
        done = [r.steps_completed for r in rows]
        ax.barh(y, totals, color="#eef2f7", height=0.6)
        ax.barh(y, done, color=[STATUS_COLOURS.get(r.status, BRAND) for r in rows], height=0.6)
        ax.set_yticks(y, labels=labels, fontsize=9, color=INK)
        ax.invert_yaxis()
        ax.spines["left"].set_visible(False)
        for yi, r, t in zip(y, rows, totals, strict=True):
            ax.text(
                t, yi, f"  {r.steps_completed}/{r.steps_total} · {r.status}", va="center", fontsize=8.5, color=MUTED
            )
        ax.set_xlim(0, max(totals, default=1) * 1.35)
        ax.set_xticks([])
        ax.set_title("Team progress: steps completed", loc="left", fontsize=10.5, color=INK)
        buf = io.BytesIO()
        fig.savefig(
            buf, format="png", dpi=110, bbox_inches="tight", facecolor="white", metadata={"Software": None}
        )
        return buf.getvalue()


def _week_label(iso_day: str) -> str:
    from datetime import date

    d = date.fromisoformat(iso_day)
    return f"{d.day} {d:%b}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
