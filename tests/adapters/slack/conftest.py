"""Fixtures for the Slack adapter tests: a fake Slack Web API, a recording inbound handler and a started adapter
serving HTTP on a free port (see ``harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.slack.harness import RecordingHandler, SlackHarness, make_adapter
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def recording_handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def slack(fake_slack: FakeSlack, recording_handler: RecordingHandler) -> Iterator[SlackHarness]:
    adapter = make_adapter(fake_slack, workers=1)
    adapter.start(recording_handler)
    try:
        yield SlackHarness(adapter, fake_slack, recording_handler)
    finally:
        adapter.stop()
