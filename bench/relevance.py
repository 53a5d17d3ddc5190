"""Section 4: relevance on Cranfield, four methods side by side in one run.

- the service's lexical retriever alone (its ``lex`` CTE, as the API runs it);
- vectors alone (HNSW, the stand-in's all-minilm, 384 dims);
- the service's hybrid search (``SearchEngine.run``, the API's SQL);
- a BM25 library baseline (``bm25s``, Lucene's idf, the same k1/b) on the same
  tokens: each chunk's ``tsvector`` expanded to its lexemes (a lexeme repeated
  once per position) and the query's ``to_tsvector`` lexemes, so tokenisation,
  stemming and stop words are PostgreSQL's for both.

Every method ranks chunks; a document ranks by its best chunk (as the API
returns one result per document). nDCG@10 uses gain 5 - code; recall@100
counts codes 1..4 as relevant.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import psycopg
from vector_search.config import Settings
from vector_search.ingest import Ingestor
from vector_search.search import (
    Filters,
    QueryConfig,
    SearchRequest,
    filter_predicate,
)

from bench import cranfield
from bench.embcache import CachingEmbedder
from bench.services import Stack, engine_for

DEPTH = 100  # documents ranked per query (recall@100)
CHUNK_DEPTH = 300  # chunks taken from a single method to fill DEPTH documents


@dataclass
class MethodResult:
    name: str
    ndcg10: float
    recall100: float
    p50_ms: float
    note: str = ""


@dataclass
class RelevanceRun:
    docs: int
    queries: int
    chunks: int
    ingest_seconds: float
    chunks_embedded: int
    settings: dict[str, Any]
    methods: list[MethodResult] = field(default_factory=list)
    per_query: dict[str, list[list[str]]] = field(default_factory=dict)
    quick_note: str = ""


def _docs_by_best_chunk(chunk_docs: list[str], limit: int = DEPTH) -> list[str]:
    seen: dict[str, None] = {}
    for doc in chunk_docs:
        seen.setdefault(doc, None)
        if len(seen) >= limit:
            break
    return list(seen)


def ingest_cranfield(
    stack: Stack, settings: Settings, docs: list[cranfield.Doc], workdir: Path
) -> tuple[float, int]:
    path = workdir / "cranfield.jsonl"
    cranfield.write_jsonl(docs, path)
    embedder = CachingEmbedder(settings)
    try:
        with stack.owner(settings.database_name) as conn:
            summary = Ingestor(conn, embedder, settings).ingest(
                [path], source="cranfield"
            )
    finally:
        embedder.close()
    if summary.errors or summary.refused:
        raise RuntimeError(
            f"Cranfield ingest failed: {(summary.errors + summary.refused)[:3]}"
        )
    return summary.seconds, summary.chunks_embedded


def _chunk_doc_map(conn: psycopg.Connection[Any]) -> dict[int, str]:
    rows = conn.execute(
        "SELECT c.id, d.external_id FROM document_chunks c JOIN documents d ON d.id = c.document_id"
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


def _library_baseline(
    conn: psycopg.Connection[Any],
    settings: Settings,
    queries: list[str],
    chunk_doc: dict[int, str],
) -> list[list[str]]:
    rows = conn.execute(
        "SELECT c.id, array_agg(u.lexeme ORDER BY u.lexeme), "
        "array_agg(coalesce(array_length(u.positions, 1), 1) ORDER BY u.lexeme) "
        "FROM document_chunks c, unnest(c.tsv) AS u GROUP BY c.id ORDER BY c.id"
    ).fetchall()
    ids = [int(r[0]) for r in rows]
    corpus = [
        [lex for lex, n in zip(r[1], r[2], strict=True) for _ in range(n)] for r in rows
    ]
    model = bm25s.BM25(method="lucene", k1=settings.bm25_k1, b=settings.bm25_b)
    model.index(corpus, show_progress=False)
    ranked: list[list[str]] = []
    for query in queries:
        (terms,) = conn.execute(
            "SELECT coalesce(array_agg(DISTINCT l), '{}') FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) AS l",
            (settings.text_search_config, query),
        ).fetchone() or ([],)
        scores = model.get_scores(list(terms)) if terms else np.zeros(len(ids))
        order = np.argsort(-scores, kind="stable")[:CHUNK_DEPTH]
        ranked.append(
            _docs_by_best_chunk([chunk_doc[ids[i]] for i in order if scores[i] > 0])
        )
    return ranked


def evaluate(
    stack: Stack,
    settings: Settings,
    queries: list[str],
    qrels: dict[int, dict[str, float]],
    vectors: list[list[float]],
) -> tuple[list[MethodResult], dict[str, list[list[str]]]]:
    engine = engine_for(settings)
    predicate = filter_predicate(Filters())
    lexical_sql = f"WITH lex AS MATERIALIZED ({engine.retriever.cte(predicate)}) SELECT id FROM lex"
    vector_sql = (
        "SELECT c.id FROM document_chunks c WHERE c.clearance_level <= %(clearance)s "
        "ORDER BY c.embedding <=> %(qvec)s LIMIT %(candidates)s"
    )
    ranked: dict[str, list[list[str]]] = {"lexical": [], "vectors": [], "hybrid": []}
    latency: dict[str, list[float]] = {k: [] for k in ranked}
    with psycopg.connect(stack.app_dsn(settings.database_name)) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        chunk_doc = _chunk_doc_map(conn)
        conn.commit()
        for query, vector in zip(queries, vectors, strict=True):
            request = SearchRequest(
                query,
                config=QueryConfig(
                    similarity_threshold=settings.default_similarity_threshold,
                    max_results=DEPTH,
                ),
            )
            params = engine.params(request, vector, 5)
            for name in ("lexical", "vectors"):
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                        (str(CHUNK_DEPTH),),
                    )
                    rows = conn.execute(
                        lexical_sql if name == "lexical" else vector_sql,  # type: ignore[arg-type]
                        {**params, "candidates": CHUNK_DEPTH},
                    ).fetchall()
                latency[name].append(time.perf_counter() - started)
                ranked[name].append(
                    _docs_by_best_chunk([chunk_doc[int(r[0])] for r in rows])
                )
            started = time.perf_counter()
            with conn.transaction():
                results = engine.run(conn, request, vector, 5)
            latency["hybrid"].append(time.perf_counter() - started)
            ranked["hybrid"].append([r["document_id"] for r in results])
        started = time.perf_counter()
        ranked["bm25-library"] = _library_baseline(conn, settings, queries, chunk_doc)
        library_seconds = time.perf_counter() - started
    results_out: list[MethodResult] = []
    labels = {
        "lexical": f"service lexical ({settings.lexical_retriever})",
        "vectors": "vectors (HNSW, all-minilm 384)",
        "hybrid": "service hybrid",
        "bm25-library": f"BM25 library (bm25s {bm25s.__version__}, same tokens)",
    }
    for name, lists in ranked.items():
        ndcg = statistics.fmean(
            cranfield.ndcg_at(r, qrels.get(i + 1, {})) for i, r in enumerate(lists)
        )
        recall = statistics.fmean(
            cranfield.recall_at(r, qrels.get(i + 1, {})) for i, r in enumerate(lists)
        )
        p50 = (
            statistics.median(latency[name]) * 1000
            if name in latency
            else library_seconds / len(queries) * 1000
        )
        results_out.append(MethodResult(labels[name], ndcg, recall, p50))
    return results_out, ranked


def embed_queries(settings: Settings, queries: list[str]) -> list[list[float]]:
    embedder = CachingEmbedder(settings)
    try:
        out: list[list[float]] = []
        for start in range(0, len(queries), 32):
            out.extend(
                [
                    list(map(float, v))
                    for v in embedder.embed(queries[start : start + 32])
                ]
            )
        return out
    finally:
        embedder.close()


def run(
    stack: Stack, directory: Path, quick: bool, overrides: dict[str, str] | None = None
) -> RelevanceRun:
    docs = cranfield.load_docs(directory)
    queries = cranfield.load_queries(directory)
    qrels = cranfield.load_qrels(directory)
    if quick:
        # the first 100 documents and the queries judged against them
        docs = docs[:100]
        kept = {d.doc_id for d in docs}
        picked = [i for i in range(len(queries)) if kept & set(qrels.get(i + 1, {}))][
            :20
        ]
        queries = [queries[i] for i in picked]
        qrels = {
            n + 1: {d: g for d, g in qrels[i + 1].items() if d in kept}
            for n, i in enumerate(picked)
        }
    settings = stack.new_database("bench_cranfield", **(overrides or {}))
    with tempfile.TemporaryDirectory(prefix="bench-cran-") as tmp:
        seconds, embedded = ingest_cranfield(stack, settings, docs, Path(tmp))
    with stack.owner(settings.database_name) as conn:
        (chunks,) = conn.execute("SELECT count(*) FROM document_chunks").fetchone() or (
            0,
        )
    vectors = embed_queries(settings, queries)
    methods, ranked = evaluate(stack, settings, queries, qrels, vectors)
    return RelevanceRun(
        docs=len(docs),
        queries=len(queries),
        chunks=int(chunks),
        ingest_seconds=seconds,
        chunks_embedded=embedded,
        settings={
            "LEXICAL_RETRIEVER": settings.lexical_retriever,
            "BM25_K1": settings.bm25_k1,
            "BM25_B": settings.bm25_b,
            "BM25_MAX_CANDIDATES": settings.bm25_max_candidates,
            "SEARCH_CANDIDATES": settings.search_candidates,
            "RRF_K": settings.rrf_k,
            "CHUNK_TOKENS": settings.chunk_tokens,
            "FUSION": settings.fusion,
            "LEXICAL_WEIGHT": settings.lexical_weight,
            "FEEDBACK_CHUNKS": settings.feedback_chunks,
            "FEEDBACK_WEIGHT": settings.feedback_weight,
        },
        methods=methods,
        per_query=ranked,
        quick_note="Quick mode: a 100-document subset with its judged queries; not comparable with full runs."
        if quick
        else "",
    )
