"""Forwarding statements to a Learning Record Store.

The outbox is the append-only event log itself, read from a cursor (``records_cursors`` row ``lrs``): everything
after the cursor is pending. A batch is POSTed to ``{endpoint}/statements``; the cursor moves only after the LRS
accepted it, in the same transaction that reads it. So nothing is lost while the LRS is down (the cursor waits and
the next run resumes there) and nothing is stored twice (statement ids are stable UUIDs, so a batch re-sent after
a crash between the POST and the commit is recognised by the LRS).

Uses urllib from the standard library: no extra dependency for one POST.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import LRSSettings
from bot.errors import BlendwiseError
from bot.journeys.library import Library
from bot.records.models import RecordsCursor
from bot.records.xapi import XAPI_VERSION, StatementBuilder, cursor
from bot.storage.db import transaction
from bot.storage.models import LearningEvent

log = logging.getLogger(__name__)

#: How long the forwarder waits at a hole in the event ids before stepping over it. On PostgreSQL a transaction
#: that took id 41 may commit after the one that took id 42; reading past 41 at once would skip it for good. A hole
#: that outlives this grace belongs to a rolled-back transaction (or a deleted person) and is stepped over.
GAP_GRACE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(minutes=30)


class LRSError(BlendwiseError):
    """The LRS refused or could not be reached."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass
class ForwardResult:
    sent: int = 0
    batches: int = 0
    pending: bool = False
    error: str | None = None
    waiting_until: datetime | None = None


class LRSClient:
    """A minimal xAPI client: POST/PUT/GET statements with basic auth and the version header."""

    def __init__(self, settings: LRSSettings, *, opener: Callable[..., Any] | None = None) -> None:
        if not settings.endpoint:
            raise BlendwiseError(
                "lrs.endpoint is not set; add it to app.yaml (e.g. https://lrs.example.com/xAPI)"
            )
        self.endpoint = settings.endpoint.rstrip("/")
        self.timeout = settings.timeout_seconds
        self._auth: str | None = None
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            token = base64.b64encode(f"{settings.username}:{password}".encode()).decode()
            self._auth = f"Basic {token}"
        self._open = opener or urllib.request.urlopen

    def __repr__(self) -> str:  # never show the credentials
        return f"LRSClient({self.endpoint!r})"

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        url = f"{self.endpoint}/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - endpoint comes from config
        req.add_header("X-Experience-API-Version", XAPI_VERSION)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with self._open(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            retryable = exc.code in (408, 425, 429) or exc.code >= 500
            raise LRSError(
                f"LRS answered {exc.code} to {method} /{path}: {detail}", retryable=retryable, status=exc.code
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LRSError(f"LRS at {self.endpoint} is unreachable: {reason}") from None

    def post_statements(self, statements: list[dict[str, Any]]) -> None:
        """Store a batch. On 409 (some ids already stored: a re-send after a crash) store them one by one."""
        try:
            self._request("POST", "statements", statements)
        except LRSError as exc:
            if exc.status != 409:
                raise
            log.info(
                "LRS reported a conflict for a batch of %d; storing statements one by one", len(statements)
            )
            for st in statements:
                self.put_statement(st)

    def put_statement(self, statement: dict[str, Any]) -> None:
        try:
            self._request("PUT", "statements", statement, {"statementId": statement["id"]})
        except LRSError as exc:
            if exc.status == 409:
                return  # already stored under this id: exactly what idempotent re-sending expects
            raise

    def get_statements(self, **params: str) -> dict[str, Any]:
        return self._request("GET", "statements", params=params) or {}


def retry(
    call: Callable[[], None],
    *,
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``call`` with a short exponential backoff for transient errors (a blip, not an outage)."""
    for i in range(attempts):
        try:
            call()
            return
        except LRSError as exc:
            if not exc.retryable or i == attempts - 1:
                raise
            sleep(base_delay * 2**i)


def forward_pending(
    factory: sessionmaker[Session],
    library: Library,
    settings: LRSSettings,
    now: datetime,
    *,
    client: LRSClient | None = None,
    max_batches: int = 50,
    sleep: Callable[[float], None] = time.sleep,
    force: bool = False,
) -> ForwardResult:
    """Send statements for events after the cursor, batch by batch. Safe to call often and from several workers.

    Like the sender, each batch is read in one short transaction, POSTed with no transaction open (so a slow LRS
    never holds a database lock), and recorded in a second one that moves the cursor only if nobody else moved it
    meanwhile. Two workers racing send the same statements at worst, which the stable ids make harmless. An outage
    stops the run, records the error and sets ``next_attempt_at`` with an exponential backoff; calls before that
    return at once unless ``force``.
    """
    client = client or LRSClient(settings)
    result = ForwardResult()
    for _ in range(max_batches):
        with transaction(factory) as session:
            cur = cursor(session, "lrs", now)
            if not force and cur.next_attempt_at is not None and now < cur.next_attempt_at:
                result.pending, result.waiting_until = True, cur.next_attempt_at
                return result
            start = cur.position
            events = _next_events(session, cur, now, settings.batch)
            if not events:
                return result
            statements = StatementBuilder(session, library, settings, cur.salt).build_all(events)
            end = events[-1].id
        try:
            retry(partial(client.post_statements, statements), sleep=sleep)
        except LRSError as exc:
            with transaction(factory) as session:
                cur = cursor(session, "lrs", now)
                cur.failures += 1
                cur.last_error = str(exc)[:500]
                delay = min(timedelta(seconds=30 * 2 ** (cur.failures - 1)), MAX_BACKOFF)
                cur.next_attempt_at = now + delay
                cur.updated_at = now
            log.warning(
                "LRS forwarding paused (%s); %d statement(s) wait, next try in %s",
                exc,
                len(statements),
                delay,
            )
            result.pending, result.error, result.waiting_until = True, str(exc), now + delay
            return result
        with transaction(factory) as session:
            moved = session.execute(  # type: ignore[attr-defined]
                update(RecordsCursor)
                .where(RecordsCursor.name == "lrs", RecordsCursor.position == start)
                .values(position=end, failures=0, last_error=None, next_attempt_at=None, updated_at=now)
            ).rowcount
        if not moved:
            log.info("another worker forwarded events %d-%d first", start + 1, end)
        result.sent += len(statements)
        result.batches += 1
    result.pending = True
    return result


def _next_events(session: Session, cur: RecordsCursor, now: datetime, limit: int) -> list[LearningEvent]:
    events = list(
        session.scalars(
            select(LearningEvent)
            .where(LearningEvent.id > cur.position)
            .order_by(LearningEvent.id)
            .limit(limit)
        )
    )
    expected = cur.position + 1
    for i, event in enumerate(events):
        if event.id != expected:
            if cur.gap_id == expected and cur.gap_seen_at is not None and now - cur.gap_seen_at >= GAP_GRACE:
                # An old hole: nothing will ever fill it. Step over it and everything else consecutive after it.
                cur.gap_id, cur.gap_seen_at = None, None
                expected = event.id + 1
                continue
            if cur.gap_id != expected:
                cur.gap_id, cur.gap_seen_at = expected, now
            return events[:i]
        expected += 1
    if cur.gap_id is not None and cur.gap_id <= (events[-1].id if events else cur.position):
        cur.gap_id, cur.gap_seen_at = None, None
    return events


def lrs_status(session: Session, now: datetime) -> dict[str, Any]:
    """Where forwarding stands: cursor, backlog, last error (for the CLI and health checks)."""
    from sqlalchemy import func

    cur = cursor(session, "lrs", now)
    backlog = session.scalar(
        select(func.count()).select_from(LearningEvent).where(LearningEvent.id > cur.position)
    )
    return {
        "position": cur.position,
        "backlog": int(backlog or 0),
        "failures": cur.failures,
        "last_error": cur.last_error,
        "next_attempt_at": cur.next_attempt_at.isoformat() if cur.next_attempt_at else None,
    }
