"""The bench's exact BM25 (bench/exactbm25.py) on a real PostgreSQL, against
BM25 computed by hand for a five-chunk corpus, and the service's lexical top 10
measured against it (issue 15)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from vector_search.config import Settings, load_settings
from vector_search.migrations import migrate
from vector_search.runtime import build_engine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "app"))

from vs_services import Postgres, create_database, start_postgres

from bench import exactbm25, realtext

# one chunk per document; document d gets clearance 1 + d % 3 (the corpus pattern)
TEXTS = (
    "cat cat dog",  # clearance 1, 3 tokens
    "cat fish",  # clearance 2, 2 tokens
    "bird",  # clearance 3, 1 token: hidden from a clearance-2 caller
    "dog dog dog bird",  # clearance 1, 4 tokens
    "fish bird",  # clearance 2, 2 tokens
)
K1, B = 1.2, 0.75
# N = 5 chunks, 12 tokens: avgdl 2.4; k1 * (1 - b + b * len / avgdl) per length
NORM = {1: 1.2 * (0.25 + 0.75 * 1 / 2.4), 2: 1.05, 3: 1.425, 4: 1.8}


def _settings(pg: Postgres, dbname: str) -> Settings:
    return load_settings(
        environ={
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_PORT": str(pg.port),
            "DATABASE_NAME": dbname,
            "DATABASE_USER": "vs_app",
            "DATABASE_PASSWORD": "app-pw",
            "DATABASE_OWNER_USER": "vs_owner",
            "DATABASE_OWNER_PASSWORD": "owner-pw",
            "DATABASE_SSLMODE": "disable",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "OLLAMA_URL": "http://127.0.0.1:1",
            "EMBEDDING_DIMENSION": "8",
            "LEXICAL_RETRIEVER": "bm25",
        },
        env_file="/dev/null",
    )


@pytest.fixture(scope="module")
def corpus() -> Iterator[tuple[psycopg.Connection[Any], Settings, dict[str, int]]]:
    pg = start_postgres()
    try:
        create_database(pg, "exact_bm25")
        settings = _settings(pg, "exact_bm25")
        conn = psycopg.connect(
            pg.dsn("exact_bm25", "vs_owner", "owner-pw"), autocommit=True
        )
        register_vector(conn)
        migrate(conn, settings)
        docs = [
            realtext.Chunked(realtext.TextDoc(f"doc-{d}", "", ""), [text])
            for d, text in enumerate(TEXTS)
        ]
        realtext.load_chunks(
            conn,
            docs,
            8,
            lambda d, n: np.full((n, 8), 1 / math.sqrt(8), dtype=np.float32),
            ["dept-0"],
        )
        ids = {
            text: int(row[0])
            for text, row in zip(
                TEXTS,
                [
                    conn.execute(
                        "SELECT c.id FROM document_chunks c JOIN documents d "
                        "ON d.id = c.document_id WHERE d.external_id = %s",
                        (f"doc-{d}",),
                    ).fetchone()
                    for d in range(len(TEXTS))
                ],
                strict=True,
            )
        }
        yield conn, settings, ids
        conn.close()
    finally:
        pg.stop()


def _top(
    conn: psycopg.Connection[Any], query: str, clearance: int, trim: bool = True
) -> list[tuple[int, float]]:
    return exactbm25.exact_top(
        conn, query, tsconfig="english", k1=K1, b=B, clearance=clearance, trim=trim
    )


def test_loaded_as_the_corpus_pattern_says(corpus: Any) -> None:
    conn, _, _ = corpus
    rows = conn.execute(
        "SELECT c.text, c.clearance_level, c.department, c.priority, c.token_count "
        "FROM document_chunks c ORDER BY c.id"
    ).fetchall()
    assert rows == [
        ("cat cat dog", 1, "dept-0", 3, 3),
        ("cat fish", 2, "dept-0", 3, 2),
        ("bird", 3, "dept-0", 3, 1),
        ("dog dog dog bird", 1, "dept-0", 3, 4),
        ("fish bird", 2, "dept-0", 3, 2),
    ]
    assert exactbm25.corpus_statistics(conn) == (5, 2.4)


def test_scores_match_bm25_by_hand(corpus: Any) -> None:
    conn, _, ids = corpus
    # cat: df 2, dog: df 2 -> idf ln(1 + 3.5 / 2.5) = ln 2.4 for both
    idf = math.log(2.4)
    expected = [
        (ids["cat cat dog"], idf * (2 * 2.2 / (2 + NORM[3]) + 2.2 / (1 + NORM[3]))),
        (ids["dog dog dog bird"], idf * 3 * 2.2 / (3 + NORM[4])),
        (ids["cat fish"], idf * 2.2 / (1 + NORM[2])),
    ]
    for trim in (True, False):
        got = _top(conn, "Cats and dogs?", 5, trim)
        assert [i for i, _ in got] == [i for i, _ in expected]
        for (_, score), (_, want) in zip(got, expected, strict=True):
            assert score == pytest.approx(want, rel=1e-9)


def test_clearance_filters_results_not_statistics(corpus: Any) -> None:
    conn, _, ids = corpus
    # bird: df 3 counting the chunk the caller may not see
    idf = math.log(1 + 2.5 / 3.5)
    got = _top(conn, "bird", 2)
    assert [i for i, _ in got] == [ids["fish bird"], ids["dog dog dog bird"]]
    assert got[0][1] == pytest.approx(idf * 2.2 / (1 + NORM[2]), rel=1e-9)
    assert got[1][1] == pytest.approx(idf * 2.2 / (1 + NORM[4]), rel=1e-9)
    assert _top(conn, "bird", 3)[0][0] == ids["bird"]  # visible: the shortest


def test_ties_go_by_chunk_id_and_no_match_is_empty(corpus: Any) -> None:
    conn, _, ids = corpus
    # "fish": chunks "cat fish" and "fish bird", same tf and length: a tie
    got = _top(conn, "fish", 5)
    assert [i for i, _ in got] == sorted([ids["cat fish"], ids["fish bird"]])
    assert got[0][1] == got[1][1]
    assert _top(conn, "zebra", 5) == []
    assert _top(conn, "the and of", 5) == []  # stop words only
    # tsquery syntax in the text is never parsed as such
    assert _top(conn, "o'reilly\\ 'cat' | !", 5)[0][0] == ids["cat cat dog"]


def test_service_lexical_list_measured_against_it(corpus: Any) -> None:
    conn, settings, ids = corpus
    engine = build_engine(settings)
    vector = [1 / math.sqrt(8)] * 8
    top = exactbm25.service_top(conn, engine, "cat dog", 5, vector)
    assert set(top) == {ids["cat cat dog"], ids["dog dog dog bird"], ids["cat fish"]}
    row = exactbm25.measure(
        conn,
        engine,
        "synthetic",
        5,
        ["cat dog", "bird", "zebra"],
        [vector] * 3,
        2,
        K1,
        B,
    )
    assert (row.queries, row.empty, row.overlap10, row.perfect) == (2, 1, 1.0, 2)
    # operators: both sides score the text the retriever scores, "-dog" dropped
    with_operators = exactbm25.service_top(conn, engine, 'cat -dog "fish"', 5, vector)
    exact = _top(conn, 'cat -dog "fish"', 5)
    assert with_operators == [i for i, _ in exact]
    assert ids["dog dog dog bird"] not in with_operators
