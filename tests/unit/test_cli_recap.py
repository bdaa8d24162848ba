"""``blendwise session attach`` on a released recap: a new draft for the leads, the released text stays."""

from __future__ import annotations

import pytest

from tests.e2e.test_recap_versions import SECOND
from tests.unit.test_cli import run, workdir  # noqa: F401  (the fixture)

# Nine CLI start-ups (about a second each, several on a loaded machine).
pytestmark = pytest.mark.timeout(600)

FIRST = """WEBVTT

00:00:01.000 --> 00:00:06.000
<v Rui>Welcome to the kickoff. Today we agree how one-on-ones and delegation will work in this cohort.

00:00:06.000 --> 00:00:12.000
<v Ana>I will start weekly one-on-ones with each report and delegate the status report this month.
"""


def test_attaching_again_after_release_drafts_a_new_version_and_says_so(workdir):  # noqa: F811
    (workdir / "first.vtt").write_text(FIRST, encoding="utf-8")
    (workdir / "second.vtt").write_bytes(SECOND)
    steps = [
        ("cohort", "create", "spring", "--program", "new-manager-onboarding", "--start", "2026-03-02", "--lead", "lee"),
        ("session", "attach", "kickoff", "--cohort", "spring", "--transcript", "first.vtt"),
        ("session", "recap", "kickoff", "--cohort", "spring", "--release"),
    ]
    for args in steps:
        done = run(workdir, *args)
        assert done.returncode == 0, (args, done.stderr)
    again = run(workdir, "session", "attach", "kickoff", "--cohort", "spring", "--transcript", "second.vtt")
    assert again.returncode == 0, again.stderr
    assert "learners keep the released recap until you release this one" in again.stdout
    assert "The cohort's leads get it to review" in again.stdout
    shown = run(workdir, "session", "recap", "kickoff", "--cohort", "spring", "--show")
    assert "# state: draft" in shown.stdout and "flamingo" in shown.stdout
    assert "flamingo" not in run(workdir, "search", "flamingo").stdout
    assert "one-on-ones" in run(workdir, "search", "one-on-ones").stdout
    assert run(workdir, "session", "recap", "kickoff", "--cohort", "spring", "--release").returncode == 0
    assert "flamingo" in run(workdir, "search", "flamingo").stdout
