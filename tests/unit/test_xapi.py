"""xAPI statements: shape for every verb, stable ids, and forwarding to a fake LRS that can be down."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import LRSSettings
from bot.records.lrs import LRSClient, forward_pending
from bot.records.models import RecordsCursor
from bot.records.xapi import VERB_IRIS, StatementBuilder, export_statements, install_salt, validate_statement
from bot.storage.db import transaction
from bot.storage.events import VERBS, record
from bot.storage.models import Enrollment, LearningEvent, Person
from tests.unit.test_report import drive_cohort


class FakeLRS:
    """A tiny xAPI endpoint: stores POSTed statements by id, answers 503 while ``down``, records every request."""

    def __init__(self) -> None:
        self.statements: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self.down = False
        self.duplicates = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if fake.down:
                    fake.requests.append(("POST", headers, 503))
                    self.send_response(503)
                    self.end_headers()
                    return
                fake.requests.append(("POST", headers, 200))
                for st in body:
                    if st["id"] in fake.statements:
                        fake.duplicates += 1
                    fake.statements.setdefault(st["id"], st)
                out = json.dumps([st["id"] for st in body]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xAPI"

    def __enter__(self) -> FakeLRS:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def lrs() -> Iterator[FakeLRS]:
    with FakeLRS() as fake:
        yield fake


def _lrs_settings(url: str, **extra: Any) -> LRSSettings:
    return LRSSettings.model_validate(
        {"endpoint": url, "username": "blendwise", "password": "s3cret", "batch": 7, **extra}
    )


def _statements(rt, **lrs: Any) -> list[dict[str, Any]]:
    with transaction(rt.factory) as session:
        return list(export_statements(session, rt.library, LRSSettings.model_validate(lrs)))


def test_every_verb_maps_to_a_valid_statement(rt, clock, console):
    drive_cohort(rt, clock, console)
    # Verbs the small cohort does not produce on its own are recorded directly, as their features would.
    with transaction(rt.factory) as session:
        e = session.scalars(select(Enrollment)).first()
        have = set(session.scalars(select(LearningEvent.verb).distinct()))
        for verb in set(VERBS) - have:
            record(
                session,
                ts=clock.now(),
                person_id=e.person_id,
                verb=verb,
                object_type="step",
                object_id=f"program/{e.program_id}/step/sbi-model",
                enrollment_id=e.id,
                cohort_id=e.cohort_id,
                result={"response": "x"},
            )
    statements = _statements(rt)
    assert {s["verb"]["id"] for s in statements} == set(VERB_IRIS.values())
    for st in statements:
        assert validate_statement(st) == [], (st["verb"]["id"], validate_statement(st))
        assert st["version"] == "1.0.3"
        assert st["timestamp"].endswith("Z")
        assert st["actor"]["account"] == {
            "homePage": "https://blendwise.local/console",
            "name": st["actor"]["account"]["name"],
        }
        ctx = st["context"]
        assert ctx["contextActivities"]["grouping"][-1]["id"].startswith(
            "https://blendwise.local/xapi/cohort/"
        )
    with rt.factory() as session:
        registrations = set(session.scalars(select(Enrollment.registration)))
    assert {s["context"]["registration"] for s in statements} <= registrations
    quiz_passed = next(s for s in statements if s["verb"]["id"].endswith("/passed"))
    assert quiz_passed["result"]["score"] == {"scaled": 0.75, "raw": 3, "min": 0, "max": 4}
    assert quiz_passed["result"]["success"] is True
    answered = next(s for s in statements if s["verb"]["id"].endswith("/answered"))
    assert answered["object"]["id"].startswith(
        "https://blendwise.local/xapi/program/feedback-fundamentals/step/feedback-check/question/"
    )
    assert answered["context"]["contextActivities"]["parent"][0]["id"].endswith("/step/feedback-check")
    assert isinstance(answered["result"]["success"], bool) and isinstance(answered["result"]["response"], str)
    step_done = next(
        s for s in statements if s["verb"]["id"].endswith("/completed") and "/step/" in s["object"]["id"]
    )
    assert (
        step_done["context"]["contextActivities"]["parent"][0]["id"]
        == "https://blendwise.local/xapi/program/feedback-fundamentals"
    )
    session_st = next(s for s in statements if s["verb"]["id"].endswith("/attended"))
    assert session_st["object"]["definition"]["type"] == "http://adlnet.gov/expapi/activities/meeting"


def test_statement_ids_are_stable_and_mbox_is_opt_in(rt, clock, console):
    drive_cohort(rt, clock, console)
    with transaction(rt.factory) as session:
        session.scalar(select(Person).where(Person.user_id == "ana")).email = "ana@example.com"
    first = _statements(rt, activity_base="https://lms.example.com/xapi/")
    again = _statements(rt, activity_base="https://lms.example.com/xapi/", use_mbox=True)
    assert [s["id"] for s in first] == [s["id"] for s in again]
    assert len({s["id"] for s in first}) == len(first)
    assert all(
        s["object"]["id"].startswith("https://lms.example.com/xapi/program/")
        for s in first
        if "/cohort/" not in s["object"]["id"]
    )
    ana = [s for s in again if s["actor"].get("mbox")]
    assert ana and all(s["actor"] == {"objectType": "Agent", "mbox": "mailto:ana@example.com"} for s in ana)
    assert all("mbox" not in s["actor"] for s in first)
    # Another install (another salt) gives other ids for the same event ids.
    with transaction(rt.factory) as session:
        salt = install_salt(session)
        event = session.scalars(select(LearningEvent)).first()
        other = StatementBuilder(session, rt.library, LRSSettings(), "another-install").build(event)
        mine = StatementBuilder(session, rt.library, LRSSettings(), salt).build(event)
    assert other["id"] != mine["id"] == first[0]["id"]


def test_validator_rejects_bad_shapes():
    good = {
        "id": "6f1f0c52-8d4e-5b7a-9a51-3c2f0e4b9d17",
        "actor": {"objectType": "Agent", "account": {"homePage": "https://x.example", "name": "U1"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "https://x.example/a"},
        "timestamp": "2026-03-02T10:00:00.000Z",
    }
    assert validate_statement(good) == []
    assert validate_statement({**good, "id": "nope"})
    assert validate_statement({**good, "actor": {"mbox": "ana@example.com"}})
    assert validate_statement({**good, "actor": {**good["actor"], "mbox": "mailto:a@b.c"}})  # two identifiers
    assert validate_statement({**good, "verb": {"id": "completed"}})
    assert validate_statement({**good, "result": {"score": {"scaled": 1.5}}})
    assert validate_statement({**good, "result": {"extensions": {"on_time": True}}})
    assert validate_statement({**good, "context": {"registration": "123"}})
    assert validate_statement({**good, "timestamp": "2026-03-02 10:00"})


def test_forwarding_round_trip_batches_auth_and_headers(rt, clock, console, lrs):
    drive_cohort(rt, clock, console)
    with rt.factory() as session:
        total = session.scalar(select(func.count()).select_from(LearningEvent))
    settings = _lrs_settings(lrs.url)
    result = forward_pending(rt.factory, rt.library, settings, clock.now(), sleep=lambda s: None)
    assert (result.sent, result.error) == (total, None)
    assert len(lrs.statements) == total and lrs.duplicates == 0
    assert result.batches == -(-total // 7) == len(lrs.requests)
    _, headers, _ = lrs.requests[0]
    assert headers["x-experience-api-version"] == "1.0.3"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"blendwise:s3cret").decode()
    assert headers["content-type"] == "application/json"
    # Nothing new: nothing sent. New events: only they are sent.
    assert forward_pending(rt.factory, rt.library, settings, clock.now()).sent == 0
    clock.advance(timedelta(hours=1))
    sent, button = console.last_with_button("ana", "reflection.open")
    console.press("ana", sent, button)
    console.submit_modal(
        "ana", "I will ask one more question before giving advice, and write it down first. " * 3
    )
    with rt.factory() as session:
        now_total = session.scalar(select(func.count()).select_from(LearningEvent))
    assert now_total > total
    forward_pending(rt.factory, rt.library, settings, clock.now())
    assert len(lrs.statements) == now_total and lrs.duplicates == 0


def test_lrs_down_loses_nothing_and_sends_nothing_twice(rt, clock, console, lrs, caplog):
    drive_cohort(rt, clock, console)
    settings = _lrs_settings(lrs.url)
    with rt.factory() as session:
        total = session.scalar(select(func.count()).select_from(LearningEvent))
    lrs.down = True
    sleeps: list[float] = []
    result = forward_pending(rt.factory, rt.library, settings, clock.now(), sleep=sleeps.append)
    assert result.sent == 0 and "503" in (result.error or "")
    assert sleeps == [0.5, 1.0]  # three tries with backoff, then the outbox waits
    assert "s3cret" not in caplog.text
    with rt.factory() as session:
        cur = session.get(RecordsCursor, "lrs")
        assert (cur.position, cur.failures) == (0, 1)
        assert cur.next_attempt_at == clock.now() + timedelta(seconds=30)
    # Before the backoff expires the forwarder does not even try.
    before = len(lrs.requests)
    assert forward_pending(rt.factory, rt.library, settings, clock.now()).waiting_until is not None
    assert len(lrs.requests) == before
    # The LRS comes back halfway: some batches go, then it fails again; then it recovers for good.
    lrs.down = False
    clock.advance(timedelta(seconds=31))
    partial = forward_pending(rt.factory, rt.library, settings, clock.now(), max_batches=2)
    assert partial.sent == 14 and partial.pending
    lrs.down = True
    clock.advance(timedelta(minutes=5))
    assert forward_pending(rt.factory, rt.library, settings, clock.now(), sleep=lambda s: None).sent == 0
    lrs.down = False
    clock.advance(timedelta(minutes=5))
    rest = forward_pending(rt.factory, rt.library, settings, clock.now())
    assert partial.sent + rest.sent == total
    assert len(lrs.statements) == total and lrs.duplicates == 0
    with rt.factory() as session:
        exported = [s["id"] for s in export_statements(session, rt.library, settings)]
    assert sorted(exported) == sorted(lrs.statements)


def test_a_hole_in_event_ids_is_waited_for_then_stepped_over(rt, clock, console, lrs):
    """An id taken by a transaction that has not committed yet must not be skipped; a rolled-back one is."""
    drive_cohort(rt, clock, console)
    settings = _lrs_settings(lrs.url, batch=1000)
    forward_pending(rt.factory, rt.library, settings, clock.now())
    with transaction(rt.factory) as session:
        e = session.scalars(select(Enrollment)).first()
        last = session.scalar(select(func.max(LearningEvent.id)))
        # Ids last+1 and last+2 are "in flight" (never committed); last+3 is visible.
        session.add(
            LearningEvent(
                id=last + 3,
                ts=clock.now(),
                person_id=e.person_id,
                verb="opened",
                object_type="program",
                object_id=f"program/{e.program_id}",
                enrollment_id=e.id,
                cohort_id=e.cohort_id,
            )
        )
    assert forward_pending(rt.factory, rt.library, settings, clock.now()).sent == 0
    clock.advance(timedelta(seconds=30))
    assert forward_pending(rt.factory, rt.library, settings, clock.now()).sent == 0
    clock.advance(timedelta(minutes=3))
    assert forward_pending(rt.factory, rt.library, settings, clock.now()).sent == 1


def test_client_never_shows_the_password():
    client = LRSClient(_lrs_settings("https://lrs.example.com/xAPI"))
    assert "s3cret" not in repr(client) and "s3cret" not in str(vars(client).get("endpoint"))
