"""Full-text search over lessons, released session summaries and transcripts.

One table (``search_docs``) holds plain-text documents; each database ranks them with its own full-text engine:

* SQLite: FTS5 with the Porter stemmer, as an external-content table kept in step by triggers, ranked with
  ``bm25`` (title weighted 4x) and ``snippet``.
* PostgreSQL: ``websearch_to_tsquery`` against a weighted ``tsvector`` (title A, body B) with a GIN expression
  index, ranked with ``ts_rank`` and ``ts_headline``.

All terms must match; when nothing does, any term may (the results then say so). Permissions are part of the
query: learners see lessons of programs they are enrolled in and session texts of their own cohorts; leads also
see their cohorts; admins see their workspace. The CLI without ``--user`` sees everything.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, Table, column, desc, func, literal_column, select, table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.journeys.model import LessonStep
from bot.live.models import LIVE_TABLES, SearchDoc, pg_document
from bot.live.recaps import released_recap
from bot.storage.models import Base, Cohort, CohortLead, Enrollment, LiveSessionRow, Person

if TYPE_CHECKING:
    from bot.journeys.library import Library
    from bot.live.service import Live

log = logging.getLogger(__name__)

SNIPPET_MARK = "**"
_FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5("
    "title, body, content='search_docs', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS search_docs_ai AFTER INSERT ON search_docs BEGIN "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS search_docs_ad AFTER DELETE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS search_docs_au AFTER UPDATE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)


def ensure_schema(db: Engine) -> None:
    """Create the feature's tables if no migration has yet, and the SQLite FTS5 index (raw DDL: Alembic has no
    notion of virtual tables). Idempotent, so every start may call it."""
    Base.metadata.create_all(db, tables=list(LIVE_TABLES), checkfirst=True)  # type: ignore[arg-type]
    if db.dialect.name == "postgresql":
        # The migration creates search_docs portably; the GIN expression index is PostgreSQL-only DDL.
        for index in cast(Table, SearchDoc.__table__).indexes:
            if index.name == "ix_search_docs_fts":
                index.create(db, checkfirst=True)
    if db.dialect.name == "sqlite":
        with db.begin() as conn:
            for ddl in _FTS_DDL:
                conn.exec_driver_sql(ddl)


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_SYNTAX = re.compile(r"(^|\s)#{1,6}\s+|[*_`>~]+|^\s*[-+]\s+|\{\{.*?\}\}|\{%.*?%\}", re.M)


def plain_text(markdown: str) -> str:
    """Markdown and authored Jinja to plain words: snippets must not cut markup in half."""
    text_ = _MD_LINK.sub(r"\1", markdown)
    text_ = _MD_SYNTAX.sub(" ", text_)
    return re.sub(r"[ \t]+", " ", text_).strip()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Hit:
    doc_id: int
    kind: str
    title: str
    program_id: str
    step_id: str
    cohort_id: int | None
    session_id: int | None
    snippet: str
    score: float


@dataclass
class Scope:
    """What a viewer may see. ``None`` means no restriction (the CLI without ``--user``)."""

    programs: set[str] | None = None
    cohorts: set[int] | None = None
    workspace: str | None = None
    everything: bool = False


@dataclass
class Results:
    hits: list[Hit] = field(default_factory=list)
    loose: bool = False  # no document had every term; these match some


class Search:
    def __init__(self, live: Live) -> None:
        self.live = live

    # ------------------------------------------------------------------ indexing
    def _upsert(
        self,
        session: Session,
        *,
        key: str,
        kind: str,
        program_id: str,
        step_id: str,
        title: str,
        body: str,
        cohort_id: int | None = None,
        session_id: int | None = None,
    ) -> bool:
        digest = _digest(title, body)
        doc = session.scalar(select(SearchDoc).where(SearchDoc.key == key))
        if doc is not None and doc.digest == digest:
            return False
        if doc is None:
            doc = SearchDoc(key=key, kind=kind, program_id=program_id, step_id=step_id)
            session.add(doc)
        doc.title, doc.body, doc.digest = title[:200], body, digest
        doc.cohort_id, doc.session_id = cohort_id, session_id
        doc.updated_at = self.live.clock.now()
        session.flush()
        return True

    def index_lessons(self, session: Session, library: Library) -> int:
        changed = 0
        for program_id in library.ids():
            program = library.program(program_id)
            for step in program.steps:
                if isinstance(step, LessonStep):
                    body = plain_text(library.body(program_id, step.id))
                    changed += self._upsert(
                        session,
                        key=f"lesson:{program_id}:{step.id}",
                        kind="lesson",
                        program_id=program_id,
                        step_id=step.id,
                        title=step.title,
                        body=body,
                    )
        return changed

    def index_library(self) -> None:
        """Index every lesson at start; unchanged lessons cost a digest comparison."""
        from bot.storage.db import transaction

        try:
            with transaction(self.live.factory) as session:
                n = self.index_lessons(session, self.live.engine.library)
            if n:
                log.info("search: indexed %d lesson(s)", n)
        except IntegrityError:
            # Another process indexed the same lessons at the same moment; its rows are as good as ours.
            log.info("search: lessons were indexed concurrently")

    def index_session(self, session: Session, row: LiveSessionRow) -> None:
        """Index a released session's summary (with key points) and transcript for its cohort."""
        cohort = session.get(Cohort, row.cohort_id)
        assert cohort is not None
        recap = released_recap(row)  # never a newer draft: search shows what the lead released
        summary = "\n".join([recap.get("summary") or "", *recap.get("key_points", [])]).strip()
        transcript = recap.get("transcript")
        common: dict[str, Any] = {
            "program_id": cohort.program_id,
            "step_id": row.step_id,
            "cohort_id": cohort.id,
            "session_id": row.id,
        }
        if summary:
            self._upsert(
                session,
                key=f"summary:{row.id}",
                kind="summary",
                title=f"{row.title} (summary)",
                body=summary,
                **common,
            )
        if transcript:
            self._upsert(
                session,
                key=f"transcript:{row.id}",
                kind="transcript",
                title=f"{row.title} (transcript)",
                body=transcript,
                **common,
            )

    # ------------------------------------------------------------------ permissions
    def scope_for(self, session: Session, person: Person, *, roles: tuple[str, ...] = ()) -> Scope:
        engine = self.live.engine
        if engine.is_admin(person, roles):
            cohorts = set(session.scalars(select(Cohort.id).where(Cohort.workspace == person.workspace)))
            programs = set(
                session.scalars(select(Cohort.program_id).where(Cohort.workspace == person.workspace))
            )
            return Scope(
                programs=programs | set(engine.library.ids()), cohorts=cohorts, workspace=person.workspace
            )
        enrolled = session.execute(
            select(Enrollment.program_id, Enrollment.cohort_id).where(Enrollment.person_id == person.id)
        ).all()
        led = session.execute(
            select(Cohort.program_id, Cohort.id)
            .join(CohortLead, CohortLead.cohort_id == Cohort.id)
            .where(CohortLead.person_id == person.id, Cohort.workspace == person.workspace)
        ).all()
        rows = [*enrolled, *led]
        return Scope(programs={p for p, _ in rows}, cohorts={c for _, c in rows}, workspace=person.workspace)

    # ------------------------------------------------------------------ querying
    def search(self, session: Session, terms: str, scope: Scope, *, limit: int = 8) -> Results:
        # A typed word such as "one-on-ones" stays one phrase; punctuation never reaches the query syntax.
        words = [
            " ".join(parts) for parts in (re.findall(r"\w+", t) for t in terms.lower().split()) if parts
        ][:12]
        if not words:
            return Results()
        if not scope.everything and not scope.programs:
            return Results()
        query = self._sqlite if session.get_bind().dialect.name == "sqlite" else self._postgres
        hits = query(session, words, scope, limit, loose=False)
        if hits or len(words) == 1:
            return Results(hits)
        return Results(query(session, words, scope, limit, loose=True), loose=True)

    @staticmethod
    def _permitted(stmt: Any, scope: Scope) -> Any:
        if scope.everything:
            return stmt
        programs = sorted(scope.programs or ())
        cohorts = sorted(scope.cohorts or ())
        lesson = (SearchDoc.kind == "lesson") & SearchDoc.program_id.in_(programs)
        if cohorts:
            return stmt.where(lesson | ((SearchDoc.kind != "lesson") & SearchDoc.cohort_id.in_(cohorts)))
        return stmt.where(lesson)

    def _sqlite(
        self, session: Session, words: list[str], scope: Scope, limit: int, *, loose: bool
    ) -> list[Hit]:
        # Each word is quoted, so FTS5 syntax typed by a person (AND, NEAR, column:) is read as plain words.
        match = (" OR " if loose else " ").join(f'"{w}"' for w in words)
        fts = table("search_fts", column("rowid"))
        score: Any = literal_column("bm25(search_fts, 4.0, 1.0)")
        snip: Any = literal_column(f"snippet(search_fts, 1, '{SNIPPET_MARK}', '{SNIPPET_MARK}', ' … ', 16)")
        stmt = (
            select(SearchDoc, score.label("score"), snip.label("snip"))
            .select_from(fts.join(SearchDoc.__table__, SearchDoc.id == fts.c.rowid))
            .where(text("search_fts MATCH :match").bindparams(match=match))
            .order_by(score, SearchDoc.id)
            .limit(limit)
        )
        rows = session.execute(self._permitted(stmt, scope)).all()
        return [self._hit(doc, -float(s), sn) for doc, s, sn in rows]

    def _postgres(
        self, session: Session, words: list[str], scope: Scope, limit: int, *, loose: bool
    ) -> list[Hit]:
        english: Any = literal_column("'english'::regconfig")
        phrases = ["-".join(w.split()) for w in words]
        tsquery = func.websearch_to_tsquery(english, (" or " if loose else " ").join(phrases))
        document = pg_document(SearchDoc.title, SearchDoc.body)
        score = func.ts_rank(document, tsquery)
        snip = func.ts_headline(
            english,
            SearchDoc.body,
            tsquery,
            f"StartSel={SNIPPET_MARK}, StopSel={SNIPPET_MARK}, MaxWords=28, MinWords=10, MaxFragments=1",
        )
        stmt = (
            select(SearchDoc, score.label("score"), snip.label("snip"))
            .where(document.op("@@")(tsquery))
            .order_by(desc("score"), SearchDoc.id)
            .limit(limit)
        )
        rows = session.execute(self._permitted(stmt, scope)).all()
        return [self._hit(doc, float(s), sn) for doc, s, sn in rows]

    @staticmethod
    def _hit(doc: SearchDoc, score: float, snippet: str | None) -> Hit:
        snip = " ".join((snippet or "").split())
        return Hit(
            doc.id,
            doc.kind,
            doc.title,
            doc.program_id,
            doc.step_id,
            doc.cohort_id,
            doc.session_id,
            snip,
            score,
        )
