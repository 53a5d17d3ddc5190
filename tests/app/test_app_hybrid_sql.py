"""Issue 15's no-change speedups of the hybrid SQL change no result: the service's
SQL returns the same rows, ranks and scores as the SQL it replaced
(tests/app/reference_search.py), on the sample corpus in real PostgreSQL."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from reference_search import legacy_engine
from vector_search.embedder import OllamaEmbedder
from vector_search.retrievers import make as make_retriever
from vector_search.retrievers.bm25 import Bm25Retriever
from vector_search.search import (
    Filters,
    QueryConfig,
    SearchEngine,
    SearchRequest,
    parse_operators,
)
from vs_services import Postgres, SettingsFactory, owner_connection

QUERIES = [
    "password reset instructions",
    "how do I connect to the eduroam wireless network?",
    "library opening hours and how many books can I borrow",
    "report a leaking roof in a university building",
    "security incident compromised account runbook",
    'report "leaking roofs"',
    "eduroam wifi -eduroam",
    "the and of which",  # stopwords only: no lexical side
    "zzzzqqqq xxyyzz",  # no lexeme in the corpus
    "university",  # in most chunks
]


def _engine(retriever: str, **options: Any) -> SearchEngine:
    max_candidates = options.pop("max_candidates", 2000)
    return SearchEngine(
        make_retriever(
            retriever,
            SimpleNamespace(
                bm25_k1=1.2, bm25_b=0.75, bm25_max_candidates=max_candidates
            ),
        ),
        options.pop("candidates", 100),
        60,
        "english",
        **options,
    )


# the service's defaults first; then each path through the changed SQL
ENGINES = {
    "defaults (bm25, weighted, feedback 3)": lambda: _engine(
        "bm25", fusion="weighted", lexical_weight=0.25, feedback_chunks=3
    ),
    "bm25, rrf, no feedback": lambda: _engine("bm25", fusion="rrf"),
    "bm25, candidate cap binds, feedback 5 x 2.0": lambda: _engine(
        "bm25",
        max_candidates=3,
        candidates=10,
        fusion="weighted",
        lexical_weight=0.25,
        feedback_chunks=5,
        feedback_weight=2.0,
    ),
    "tsrank, rrf, feedback 3": lambda: _engine(
        "tsrank", fusion="rrf", feedback_chunks=3
    ),
    "vectors only, feedback 3": lambda: _engine(
        "none", fusion="weighted", feedback_chunks=3
    ),
}

FILTERS = [
    Filters(),
    Filters(departments=("IT Services", "Estates"), min_priority=2),
]


@pytest.fixture(scope="module")
def vectors(make_settings: SettingsFactory) -> dict[str, list[float]]:
    embedder = OllamaEmbedder(make_settings())
    try:
        return dict(zip(QUERIES, embedder.embed(QUERIES), strict=True))
    finally:
        embedder.close()


@pytest.fixture(scope="module")
def conn(
    postgres: Postgres, main_db: str, corpus_ingested: object
) -> Iterator[psycopg.Connection[Any]]:
    with owner_connection(postgres, main_db) as connection:
        register_vector(connection)
        yield connection


def _rows(
    conn: psycopg.Connection[Any],
    engine: SearchEngine,
    request: SearchRequest,
    vector: list[float],
    clearance: int,
) -> list[dict[str, Any]]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        column = engine.prepare(conn)
        cur.execute(
            engine.sql(request.filters, parse_operators(request.query), column),  # type: ignore[arg-type]
            engine.params(request, vector, clearance),
        )
        return cur.fetchall()


def _same(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    assert [r["chunk_id"] for r in new] == [r["chunk_id"] for r in old]
    for o, n in zip(old, new, strict=True):
        assert n.keys() == o.keys()
        for key, value in o.items():
            if isinstance(value, float):
                assert math.isclose(n[key], value, rel_tol=1e-12, abs_tol=1e-15), key
            else:
                assert n[key] == value, key


@pytest.mark.parametrize("name", list(ENGINES))
def test_new_sql_returns_what_the_old_sql_returned(
    conn: psycopg.Connection[Any], vectors: dict[str, list[float]], name: str
) -> None:
    engine = ENGINES[name]()
    old = legacy_engine(engine)
    assert engine.sql(Filters()) != old.sql(Filters())  # the reference is the old text
    with_lexical = 0  # searches whose results include lexical candidates
    for query in QUERIES:
        for filters in FILTERS:
            for clearance in (1, 4):
                request = SearchRequest(
                    query, filters, QueryConfig(similarity_threshold=-1, max_results=50)
                )
                want = _rows(conn, old, request, vectors[query], clearance)
                got = _rows(conn, engine, request, vectors[query], clearance)
                assert want, (query, filters, clearance)
                _same(want, got)
                with_lexical += any(r["lexical_rank"] is not None for r in got)
    # 40 searches; 8 of the 10 queries have lexemes in the corpus
    assert with_lexical >= (20 if engine.retriever.name != "none" else 0)


@pytest.mark.parametrize("query", QUERIES)
def test_trimmed_tsvector_keeps_every_position_of_the_query_lexemes(
    conn: psycopg.Connection[Any], query: str
) -> None:
    """Over every chunk: the trimmed vector's query lexemes and their positions
    (heading positions weighted A included) are the whole vector's."""
    row = conn.execute(
        "SELECT tsvector_to_array(to_tsvector('english', %s)) || "
        "(SELECT array_agg(lexeme) FROM (SELECT lexeme FROM lexeme_stats "
        " ORDER BY doc_freq DESC, lexeme LIMIT 3) AS common)",
        (parse_operators(query).text,),
    ).fetchone()
    lexemes = row[0] if row else []
    differing, compared = conn.execute(
        """
        SELECT count(*) FILTER (WHERE trimmed IS DISTINCT FROM whole), count(whole)
        FROM (SELECT (SELECT array_agg(u.lexeme || ':' || array_to_string(u.positions, ',')
                                       ORDER BY u.lexeme)
                      FROM unnest(ts_filter(setweight(c.tsv, 'B', %(q)s), '{b}')) AS u
                      WHERE u.lexeme = ANY(%(q)s)) AS trimmed,
                     (SELECT array_agg(u.lexeme || ':' || array_to_string(u.positions, ',')
                                       ORDER BY u.lexeme)
                      FROM unnest(c.tsv) AS u WHERE u.lexeme = ANY(%(q)s)) AS whole
              FROM document_chunks c) AS t
        """,
        {"q": lexemes},
    ).fetchone() or (None, None)
    assert differing == 0
    assert compared and compared > 0


def test_bm25_trims_before_unnesting() -> None:
    sql = Bm25Retriever().cte("true")
    assert "unnest(ts_filter(setweight(m.tsv, 'B', ql.lexemes), '{b}'))" in sql
    assert "unnest(m.tsv)" not in sql


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_feedback_vector_is_computed_once(
    conn: psycopg.Connection[Any], vectors: dict[str, list[float]]
) -> None:
    """The feedback CTE is materialized (a CTE node run once), not inlined and
    rebuilt for every candidate row."""
    engine = ENGINES["defaults (bm25, weighted, feedback 3)"]()
    query = QUERIES[0]
    request = SearchRequest(query, Filters(), QueryConfig(similarity_threshold=-1))
    with conn.transaction():
        column = engine.prepare(conn)
        row = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) "
            + engine.sql(Filters(), parse_operators(query), column),  # type: ignore[operator]
            engine.params(request, vectors[query], 4),
        ).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    feedback = [
        node
        for node in _plan_nodes(plan[0]["Plan"])
        if node.get("Subplan Name") == "CTE feedback"
    ]
    assert len(feedback) == 1 and feedback[0]["Actual Loops"] == 1
