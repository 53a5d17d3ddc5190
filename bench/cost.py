"""Section 5 (issue 15): what one hybrid search costs PostgreSQL, side by side
with the HNSW top-10 query alone.

Three paths on one database per corpus and size (the synthetic corpus with the
Cranfield queries, the real-text one with its own questions, ``bench/realtext.py``),
one connection (one backend) each:
- ``HNSW top-10 alone``: ``ORDER BY embedding <=> q LIMIT 10`` with the
  caller's clearance filter, in a transaction with the service's HNSW settings
  (``SearchEngine.prepare``: ``hnsw.ef_search`` 100, iterative scan);
- ``hybrid SQL before issue 15``: the pre-issue-15 SQL kept in
  ``tests/app/reference_search.py`` (whole tsvectors unnested, the feedback CTE
  inlined), same settings;
- ``hybrid SQL (service)``: ``SearchEngine`` as the API runs it.

The queries are interleaved (query i on every path, the order rotating, so
load from other processes and cache warmth hit the paths alike). CPU time is
the backend's own, read from ``/proc/<pid>/schedstat`` (nanoseconds; the
coarser ``/proc/<pid>/stat`` where that file is missing) around each query: it
includes planning and excludes the client and the network; the plans start no
parallel workers (reported per row from ``pg_stat_database`` where PostgreSQL
counts them, 18+). Latency is the client's wall time at 1 client, p50/p95.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from vector_search.search import QueryConfig, SearchEngine, SearchRequest

from bench.labside import percentile
from bench.services import Stack, engine_for

KNN = "HNSW top-10 alone"
OLD = "hybrid SQL before issue 15"
NEW = "hybrid SQL (service)"
PATHS = (KNN, OLD, NEW)

KNN_SQL = (
    "SELECT c.id, c.{column} <=> %s AS distance FROM document_chunks c "
    "WHERE c.clearance_level <= %s ORDER BY c.{column} <=> %s LIMIT 10"
)


@dataclass
class CostRow:
    chunks: int
    path: str
    queries: int
    cpu_ms: float  # backend CPU per query
    p50_ms: float
    p95_ms: float
    parallel_workers: int | None = None  # launched during the path's queries
    corpus: str = "synthetic"  # or "real text" (bench/realtext.py)


@dataclass
class CostRun:
    rows: list[CostRow] = field(default_factory=list)
    # (corpus, chunks) -> (queries whose results were identical old vs new, queries)
    identical: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    cpu_source: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def _cpu_reader(pid: int) -> tuple[Any, str]:
    schedstat = Path(f"/proc/{pid}/schedstat")
    try:
        int(schedstat.read_text().split()[0])

        def read() -> float:
            return int(schedstat.read_text().split()[0]) / 1e6

        return read, "/proc/<pid>/schedstat (ns)"
    except (OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat")
        tick = os.sysconf("SC_CLK_TCK")

        def read_ticks() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 1000 / tick

        return read_ticks, f"/proc/<pid>/stat (utime + stime, 1/{tick} s ticks)"


def _parallel_workers(conn: psycopg.Connection[Any]) -> int | None:
    try:
        row = conn.execute(
            "SELECT parallel_workers_launched FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    except psycopg.errors.UndefinedColumn:  # PostgreSQL < 18
        return None
    return int(row[0]) if row else None


class _Path:
    """One path on its own connection: runs query n, measures its backend."""

    def __init__(self, dsn: str, prepare_threshold: int | None) -> None:
        self.conn = psycopg.connect(
            dsn, autocommit=True, prepare_threshold=prepare_threshold
        )
        register_vector(self.conn)
        pid = int((self.conn.execute("SELECT pg_backend_pid()").fetchone() or (0,))[0])
        self.cpu, self.source = _cpu_reader(pid)
        self.cpu_ms = 0.0
        self.wall: list[float] = []

    def measure(self, call: Any) -> Any:
        cpu, started = self.cpu(), time.perf_counter()
        result = call(self.conn)
        self.wall.append(time.perf_counter() - started)
        self.cpu_ms += self.cpu() - cpu
        return result


def _knn(engine: SearchEngine, vector: list[float], clearance: int) -> Any:
    def call(conn: psycopg.Connection[Any]) -> list[Any]:
        with conn.transaction():
            column = engine.prepare(conn)
            q = Vector(vector)
            return conn.execute(
                KNN_SQL.format(column=column),  # type: ignore[arg-type]
                (q, clearance, q),
            ).fetchall()

    return call


def _hybrid(
    engine: SearchEngine,
    request: SearchRequest,
    vector: list[float],
    clearance: int,
) -> Any:
    def call(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        with conn.transaction():
            return engine.run(conn, request, vector, clearance)

    return call


def measure(
    stack: Stack,
    settings: Any,
    chunks: int,
    queries: list[str],
    vectors: list[list[float]],
    clearance: int,
    max_results: int,
    threshold: float,
    rounds: int,
    warm: int = 3,
) -> tuple[list[CostRow], tuple[int, int], str]:
    """The three paths over ``queries`` x ``rounds`` on one database."""
    from reference_search import (
        legacy_engine,
    )  # tests/app, on sys.path via bench.services

    new = engine_for(settings)
    old = legacy_engine(new)
    requests = [
        SearchRequest(
            q,
            config=QueryConfig(similarity_threshold=threshold, max_results=max_results),
        )
        for q in queries
    ]
    dsn = stack.app_dsn(settings.database_name)
    paths = {p: _Path(dsn, settings.database_prepare_threshold) for p in PATHS}
    try:

        def call(path: str, n: int) -> Any:
            if path == KNN:
                return _knn(new, vectors[n], clearance)
            engine = old if path == OLD else new
            return _hybrid(engine, requests[n], vectors[n], clearance)

        for n in range(min(warm, len(queries))):  # pages cached, statements prepared
            for path in PATHS:
                call(path, n)(paths[path].conn)
        workers = {p: _parallel_workers(paths[p].conn) for p in PATHS}
        identical = 0
        for r in range(rounds):
            for n in range(len(queries)):
                order = PATHS[(n + r) % 3 :] + PATHS[: (n + r) % 3]
                results = {p: paths[p].measure(call(p, n)) for p in order}
                if r == 0 and results[OLD] == results[NEW]:
                    identical += 1
        rows = []
        total = len(queries) * rounds
        for p in PATHS:
            before, after = workers[p], _parallel_workers(paths[p].conn)
            rows.append(
                CostRow(
                    chunks,
                    p,
                    total,
                    paths[p].cpu_ms / total,
                    percentile(paths[p].wall, 50),
                    percentile(paths[p].wall, 95),
                    None if before is None or after is None else after - before,
                )
            )
        return rows, (identical, len(queries)), paths[KNN].source
    finally:
        for p in paths.values():
            p.conn.close()


def run(
    stack: Stack,
    corpora: list[Any],
    queries: list[str],
    vectors: list[list[float]],
    clearance: int,
    max_results: int,
    threshold: float,
    rounds: int,
) -> CostRun:
    result = CostRun()
    for corpus in corpora:
        label = getattr(corpus, "corpus", "synthetic")
        rows, identical, source = measure(
            stack,
            corpus.settings,
            corpus.chunks,
            queries,
            vectors,
            clearance,
            max_results,
            threshold,
            rounds,
        )
        for row in rows:
            row.corpus = label
        result.rows += rows
        result.identical[(label, corpus.chunks)] = identical
        result.cpu_source = source
    s = corpora[0].settings if corpora else None
    if s is not None:
        result.settings = {
            "LEXICAL_RETRIEVER": s.lexical_retriever,
            "BM25_MAX_CANDIDATES": str(s.bm25_max_candidates),
            "SEARCH_CANDIDATES": str(s.search_candidates),
            "FUSION": s.fusion,
            "FEEDBACK_CHUNKS": str(s.feedback_chunks),
        }
    return result
