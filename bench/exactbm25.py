"""Exact BM25 by brute force, and how much of its top 10 the service's lexical
retriever finds (issue 15: overlap@10 >= 0.95 at 100k chunks, >= 0.99 at 10k).

The exact side shares nothing with the service's retriever but the definition
(``Bm25Retriever``'s docstring): every chunk sharing a lexeme with the query is
scored, with statistics counted here from the chunks themselves rather than read
from the trigger-kept tables:

- N = the chunks, avgdl = their ``token_count`` summed / N (once per database);
- df = the chunks whose ``tsv`` holds the lexeme, whatever their clearance;
- tf = the lexeme's positions in the chunk's ``tsv``, document length ``token_count``;
- idf = ln(1 + (N - df + 0.5) / (df + 0.5)); score = sum over the query's
  lexemes of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl)).

The caller's filter is the service's own predicate (``filter_predicate``), so
a chunk the caller may not see is never in either list; ties go by chunk id, as
in the service. Each matching chunk's tsvector is trimmed to the query's lexemes
before it is unnested (``setweight`` marks their positions B, ``ts_filter`` keeps
lexemes with a B position, the join on the query's lexemes drops any other):
the same tf as unnesting the whole vector at a fraction of the cost
(``trim=False`` unnests it whole; the tests compare both).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from vector_search.search import (
    Filters,
    QueryConfig,
    SearchEngine,
    SearchRequest,
    filter_predicate,
    parse_operators,
)

# SQL: the text column "lexeme" as a quoted tsquery operand (quotes doubled,
# backslashes escaped), so no query text is ever parsed as tsquery syntax
_QUOTED = r"'''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''''"


def exact_sql(predicate: str, trim: bool = True) -> str:
    """Exact BM25 top ``%(k)s``: params query, tsconfig, n, avgdl, k1, b, k and
    whatever ``predicate`` (over ``c``) uses."""
    terms = (
        "unnest(ts_filter(setweight(c.tsv, 'B', q.lexemes), '{b}'))"
        if trim
        else "unnest(c.tsv)"
    )
    return f"""
    WITH q AS (
        SELECT array_agg(lexeme) AS lexemes,
               (string_agg({_QUOTED}, ' | '))::tsquery AS query
        FROM (SELECT DISTINCT lexeme
              FROM unnest(tsvector_to_array(
                  to_tsvector(%(tsconfig)s::regconfig, %(query)s))) AS lexeme) AS l
    ), hits AS MATERIALIZED (
        SELECT c.id, c.token_count, ({predicate}) AS visible, u.lexeme,
               coalesce(array_length(u.positions, 1), 1) AS tf
        FROM document_chunks c
        CROSS JOIN q
        CROSS JOIN LATERAL {terms} AS u
        WHERE q.query IS NOT NULL AND c.tsv @@ q.query AND u.lexeme = ANY(q.lexemes)
    ), idf AS (
        SELECT lexeme,
               ln(1 + (%(n)s - count(*) + 0.5) / (count(*) + 0.5)) AS idf
        FROM hits GROUP BY lexeme
    )
    SELECT h.id,
           sum(i.idf * h.tf * (%(k1)s + 1)
               / (h.tf + %(k1)s * (1 - %(b)s + %(b)s * h.token_count / %(avgdl)s))) AS score
    FROM hits h JOIN idf i USING (lexeme)
    WHERE h.visible
    GROUP BY h.id
    ORDER BY score DESC, h.id
    LIMIT %(k)s"""


def corpus_statistics(conn: psycopg.Connection[Any]) -> tuple[int, float]:
    """(N, avgdl) counted from the chunks."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(token_count), 0) FROM document_chunks"
    ).fetchone()
    n, total = (int(row[0]), float(row[1])) if row else (0, 0.0)
    return n, total / max(n, 1)


def exact_top(
    conn: psycopg.Connection[Any],
    query: str,
    *,
    tsconfig: str,
    k1: float,
    b: float,
    clearance: int,
    k: int = 10,
    stats: tuple[int, float] | None = None,
    trim: bool = True,
) -> list[tuple[int, float]]:
    """The exact BM25 top ``k`` (chunk id, score) for the caller's clearance."""
    n, avgdl = stats or corpus_statistics(conn)
    rows = conn.execute(
        exact_sql(filter_predicate(Filters()), trim),  # type: ignore[arg-type]
        {
            "query": parse_operators(query).text,
            "tsconfig": tsconfig,
            "n": n,
            "avgdl": avgdl,
            "k1": k1,
            "b": b,
            "k": k,
            "clearance": clearance,
        },
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def service_top(
    conn: psycopg.Connection[Any],
    engine: SearchEngine,
    query: str,
    clearance: int,
    vector: list[float],
    k: int = 10,
) -> list[int]:
    """The service's lexical top ``k``: the retriever's CTE alone, as the hybrid
    SQL embeds it (``lex AS MATERIALIZED``, its rows ranked by score, then id),
    with the engine's own parameters and transaction settings. Both lists score
    the text the retriever scores (``parse_operators(query).text``: a Cranfield
    question's "-dash" is not a word to exclude here), under the caller's
    clearance filter alone, as the relevance section runs the retriever."""
    request = SearchRequest(query, config=QueryConfig(max_results=k))
    sql = (
        f"WITH lex AS MATERIALIZED ({engine.retriever.cte(filter_predicate(request.filters))}\n) "
        "SELECT id FROM lex ORDER BY lex_score DESC, id LIMIT %(top)s"
    )
    with conn.transaction():
        engine.prepare(conn)
        rows = conn.execute(
            sql,  # type: ignore[arg-type]
            {**engine.params(request, vector, clearance), "top": k},
        ).fetchall()
    return [int(r[0]) for r in rows]


def overlap(service: list[int], exact: list[int], k: int = 10) -> float | None:
    """|service top k ∩ exact top k| / min(k, |exact top k|); None when the exact
    list is empty (no chunk the caller may see shares a lexeme with the query)."""
    truth = exact[:k]
    if not truth:
        return None
    return len(set(service[:k]) & set(truth)) / min(k, len(truth))


@dataclass
class OverlapRow:
    corpus: str
    chunks: int
    queries: int  # with at least one exact match
    empty: int  # queries no chunk matched
    overlap10: float  # mean over the queries
    worst10: float
    perfect: int  # queries with overlap 1
    exact_ms: float  # p50 of the brute force per query
    retriever: str = ""
    per_query: list[float] = field(default_factory=list)


def measure(
    conn: psycopg.Connection[Any],
    engine: SearchEngine,
    corpus: str,
    chunks: int,
    queries: list[str],
    vectors: list[list[float]],
    clearance: int,
    k1: float,
    b: float,
    k: int = 10,
) -> OverlapRow:
    """overlap@k of the service's lexical list with exact BM25 (``k1``, ``b``:
    the service's BM25_K1 and BM25_B) over ``queries``."""
    stats = corpus_statistics(conn)
    scores: list[float] = []
    times: list[float] = []
    empty = 0
    for query, vector in zip(queries, vectors, strict=True):
        started = time.perf_counter()
        exact = exact_top(
            conn,
            query,
            tsconfig=engine.text_search_config,
            k1=k1,
            b=b,
            clearance=clearance,
            k=k,
            stats=stats,
        )
        times.append((time.perf_counter() - started) * 1000)
        top = service_top(conn, engine, query, clearance, vector, k)
        got = overlap(top, [i for i, _ in exact], k)
        if got is None:
            empty += 1
        else:
            scores.append(got)
    return OverlapRow(
        corpus,
        chunks,
        len(scores),
        empty,
        statistics.fmean(scores) if scores else float("nan"),
        min(scores) if scores else float("nan"),
        sum(1 for s in scores if s == 1.0),
        statistics.median(times) if times else float("nan"),
        engine.retriever.name,
        scores,
    )
