"""Each shipped program, simulated: plausible completion and attendance for every live session, every message
within 1,200 characters with no span cut, the recording and catch-up of the program's own first session, and
the evaluation recorded with its Kirkpatrick level (issue 14, "programs ready for Monday").

The cohort is the issue's: 30 learners, two seeds, and no session's attendance or the completion below 30 %. Each
run took 10 to 25 s on a two-core machine at load 3 (up to 67 s at load 5), so the eight are marked slow. ``blendwise demo --program X
--learners 30 --seed 1`` shows the same figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.demo import run_demo
from bot.journeys.chunks import MAX_CHUNK
from bot.reporting import Filters, build_report
from bot.states import Verb
from bot.storage.models import LearningEvent, LiveSessionRow
from tests.conftest import CONTENT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROGRAMS = sorted(p.name for p in CONTENT.iterdir() if (p / "program.yaml").is_file())


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("program_id", PROGRAMS)
def test_a_simulated_cohort_of_each_program_is_plausible(tmp_path: Path, program_id: str, seed: int) -> None:
    result = run_demo(
        program_id=program_id, learners=30, seed=seed, database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        content_dir=CONTENT,
    )
    rt, console = result.runtime, result.console
    try:
        for sent in console.sent:
            body = sent.message.body or ""
            assert len(body) <= MAX_CHUNK, f"{sent.message.title}: {len(body)} characters"
            assert body.count("**") % 2 == 0, f"{sent.message.title}: a bold span is cut: {body[-120:]!r}"
        with rt.factory() as session:
            report = build_report(session, rt.engine, Filters(program=program_id))
            (cohort,) = report.cohorts
            # A rule that starves a session or blocks completion (the defects of issue 14: learners cut off after
            # completing early, 12 seats for a cohort of 30) shows as 0 % to 27 %; 30 % is the floor.
            assert cohort.completion_rate >= 30, (program_id, seed, cohort.completion_rate)
            for live in cohort.sessions:
                assert live["rate"] >= 30, (program_id, seed, live)
            assert [q["level"] for q in cohort.evaluation] == [1, 2, 3]
            assert cohort.evaluation[0]["responses"] > 0
            levels = [
                (e.context or {}).get("extensions", {}).get("kirkpatrick-level")
                for e in session.scalars(select(LearningEvent).where(LearningEvent.verb == Verb.VOTED))
                if "/step/evaluation-" in e.object_id
            ]
            assert levels and set(levels) <= {1, 2, 3}
            first = session.scalars(select(LiveSessionRow).order_by(LiveSessionRow.start_at)).first()
            assert first is not None and first.recording_url is not None
            assert f"/{program_id}/{first.step_id}" in first.recording_url
        catch_ups = [s.message for s in console.sent if s.message.title == f"Catch-up: {first.title}"]
        assert catch_ups, "nobody who missed the first session received its catch-up lesson"
    finally:
        rt.db.dispose()
