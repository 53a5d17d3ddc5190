"""Hybrid search: HNSW vector candidates + lexical candidates, fused by RRF,
then the seed's weighted re-ranking, similarity threshold and limit.

Scoring: ``relevance`` is the mean of the chunk's cosine similarity and its RRF
score normalised to [0, 1] (1 = first in every list); RRF alone is too flat
(rank 1 vs 2 differ by 1/61 vs 1/62) to stand against the priority and
popularity terms. ``score = similarity_weight * relevance + priority_weight *
priority / 5 + popularity_weight * popularity + department_weight * match``.
The threshold applies to cosine similarity. One result per document (its best
chunk).

Clearance is enforced inside both candidate queries, so a chunk above the
caller's clearance can never be a candidate. Per-transaction settings use
``set_config(..., true)`` (SET LOCAL): safe behind PgBouncer transaction pooling.

The vector column is the one ``embedding_columns`` names for the engine's
embedding model (``embedding``, or ``embedding_next`` during a reindex), looked
up in the statement that sets the per-transaction settings: no extra round
trip, and a reindex that renames columns is followed at the next search.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg
from pgvector import Vector
from psycopg.rows import dict_row

from vector_search.embedding_columns import COLUMNS, PRIMARY, searchable_column
from vector_search.errors import SearchColumnUnavailable
from vector_search.retrievers import LexicalRetriever


@dataclass(frozen=True)
class Filters:
    departments: tuple[str, ...] = ()
    campuses: tuple[str, ...] = ()
    min_priority: int | None = None
    max_clearance: int | None = None


@dataclass(frozen=True)
class QueryConfig:
    similarity_threshold: float = 0.2
    max_results: int = 10
    similarity_weight: float = 0.6
    priority_weight: float = 0.2
    popularity_weight: float = 0.1
    department_weight: float = 0.1
    preferred_department: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    query: str
    filters: Filters = field(default_factory=Filters)
    config: QueryConfig = field(default_factory=QueryConfig)

    def capped(self, max_results: int) -> SearchRequest:
        """The request as it runs under a role allowing at most ``max_results``."""
        if self.config.max_results <= max_results:
            return self
        return replace(self, config=replace(self.config, max_results=max_results))

    def cache_payload(self, role: str, clearance: int) -> dict[str, Any]:
        """What a cached response depends on. Call it on the capped request:
        requests for 50 and 100 results under a cap of 20 are the same search
        and share one entry."""
        return {
            "query": self.query,
            "filters": asdict(self.filters),
            "config": asdict(self.config),
            "role": role,
            "clearance": clearance,
        }


def filter_predicate(filters: Filters) -> str:
    parts = ["c.clearance_level <= %(clearance)s"]
    if filters.departments:
        parts.append("c.department = ANY(%(departments)s)")
    if filters.campuses:
        parts.append("c.campus = ANY(%(campuses)s)")
    if filters.min_priority is not None:
        parts.append("c.priority >= %(min_priority)s")
    return " AND ".join(parts)


_PHRASE = re.compile(r'"([^"]*)"')
_EXCLUDED = re.compile(r"(?:^|(?<=\s))-(\w[\w'.-]*)")


@dataclass(frozen=True)
class QueryOperators:
    """Operators power users type: ``"quoted phrases"`` and ``-term``.

    ``text`` is what the lexical retriever scores (the query without the
    excluded terms and quote marks). Each phrase must occur in a lexical
    candidate (``phraseto_tsquery``); a chunk holding any excluded term is never
    a candidate of either list. Everything else is OR-ed plain text.
    """

    text: str
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def parse_operators(query: str) -> QueryOperators:
    phrases = tuple(p.strip() for p in _PHRASE.findall(query) if p.strip())
    excluded = tuple(_EXCLUDED.findall(query))
    text = _EXCLUDED.sub(" ", query).replace('"', " ")
    return QueryOperators(" ".join(text.split()), phrases, excluded)


def _exclusion_predicate(operators: QueryOperators) -> str:
    if not operators.excluded:
        return ""
    return " AND NOT (c.tsv @@ websearch_to_tsquery(%(tsconfig)s::regconfig, %(excluded)s))"


def _phrase_predicate(operators: QueryOperators) -> str:
    return "".join(
        f" AND (numnode(phraseto_tsquery(%(tsconfig)s::regconfig, %(phrase_{i})s)) = 0"
        f" OR c.tsv @@ phraseto_tsquery(%(tsconfig)s::regconfig, %(phrase_{i})s))"
        for i in range(len(operators.phrases))
    )


class SearchEngine:
    def __init__(
        self,
        retriever: LexicalRetriever,
        candidates: int,
        rrf_k: int,
        text_search_config: str,
        fusion: str = "rrf",
        lexical_weight: float = 0.25,
        feedback_chunks: int = 0,
        feedback_weight: float = 1.0,
        embedding_model: str | None = None,
        embedding_dimension: int | None = None,
    ) -> None:
        """Without ``embedding_model`` the engine searches ``embedding`` unchecked."""
        self.retriever = retriever
        self.embedding_model = embedding_model
        self.embedding_dimension = embedding_dimension
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.text_search_config = text_search_config
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"unknown fusion {fusion!r}")
        self.fusion = fusion
        self.lexical_weight = lexical_weight
        self.feedback_chunks = feedback_chunks
        self.feedback_weight = feedback_weight

    def _relevance(self, similarity: str, lists: int, document: str = "") -> str:
        """Relevance in [0, 1] (about) from a cosine similarity and the fused lists.

        With ``document`` (the document id column), weighted fusion scores the
        document: its best normalised lexical score and its best similarity,
        which may come from different chunks."""
        if self.fusion == "weighted":
            lexical = "coalesce(f.lex_score / nullif(lm.max_lex, 0), 0)"
            vector = f"({similarity})"
            if document:
                lexical = f"max({lexical}) OVER (PARTITION BY {document})"
                vector = f"max({vector}) OVER (PARTITION BY {document})"
            return f"(%(lexical_weight)s * {lexical} + (1 - %(lexical_weight)s) * {vector})"
        return f"(({similarity}) + f.rrf / ({lists}.0 / (%(rrf_k)s + 1))) / 2"

    def sql(
        self,
        filters: Filters,
        operators: QueryOperators | None = None,
        column: str = PRIMARY,
    ) -> str:
        if column not in COLUMNS:
            raise ValueError(f"not a vector column: {column!r}")
        operators = operators or QueryOperators("")
        predicate = filter_predicate(filters) + _exclusion_predicate(operators)
        lexical_predicate = predicate + _phrase_predicate(operators)
        lists = 1 + self.retriever.lists  # the vector list and the retriever's
        return f"""
        WITH vec AS MATERIALIZED (
            SELECT c.id, c.{column} <=> %(qvec)s AS distance
            FROM document_chunks c
            WHERE {predicate}
            ORDER BY c.{column} <=> %(qvec)s
            LIMIT %(candidates)s
        ), vec_ranked AS (
            SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM vec
        ), lex AS MATERIALIZED ({self.retriever.cte(lexical_predicate)}
        ), lex_ranked AS (
            SELECT id, lex_score, row_number() OVER (ORDER BY lex_score DESC, id) AS rank FROM lex
        ), fused AS (
            SELECT coalesce(v.id, l.id) AS id,
                   v.rank AS vector_rank,
                   l.rank AS lexical_rank,
                   l.lex_score,
                   coalesce(1.0 / (%(rrf_k)s + v.rank), 0)
                     + coalesce(1.0 / (%(rrf_k)s + l.rank), 0) AS rrf
            FROM vec_ranked v FULL OUTER JOIN lex_ranked l ON v.id = l.id
        ), lex_max AS (
            SELECT max(lex_score) AS max_lex FROM lex
        ), base AS MATERIALIZED (
            SELECT f.id AS chunk_id, f.vector_rank, f.lexical_rank, f.lex_score, f.rrf,
                   c.document_id, c.chunk_number, c.text, c.{column} AS embedding,
                   d.external_id, d.title, d.url, d.department, d.campus, d.priority,
                   d.clearance_level, d.popularity, d.metadata,
                   1 - (c.{column} <=> %(qvec)s) AS similarity,
                   {self._relevance(f"1 - (c.{column} <=> %(qvec)s)", lists)} AS first_relevance,
                   CASE WHEN %(preferred_department)s::text IS NOT NULL
                             AND d.department = %(preferred_department)s::text
                        THEN 1 ELSE 0 END AS department_match
            FROM fused f
            JOIN document_chunks c ON c.id = f.id
            JOIN documents d ON d.id = c.document_id
            CROSS JOIN lex_max lm
            WHERE c.clearance_level <= %(clearance)s AND d.clearance_level <= %(clearance)s
        ){self._feedback_sql(lists)}
        ), ranked AS (
            SELECT s.*,
                   %(w_sim)s * s.relevance
                     + %(w_pri)s * (s.priority / 5.0)
                     + %(w_pop)s * s.popularity
                     + %(w_dep)s * s.department_match AS score
            FROM scored s
            WHERE s.similarity >= %(threshold)s
        ), best_per_document AS (
            SELECT DISTINCT ON (document_id) *
            FROM ranked
            ORDER BY document_id, score DESC, similarity DESC, chunk_id
        )
        SELECT * FROM best_per_document
        ORDER BY score DESC, chunk_id
        LIMIT %(max_results)s
        """

    def _feedback_sql(self, lists: int) -> str:
        """Pseudo-relevance feedback (Rocchio on the query vector): the query
        vector plus FEEDBACK_WEIGHT times the mean embedding of the first pass's
        top FEEDBACK_CHUNKS candidates re-scores the same candidates. Only candidates the caller may see take part.

        ``feedback`` is MATERIALIZED: referenced once, PostgreSQL would inline it
        and build the vector (unnest, array_agg, cast) again for every candidate
        row (issue 15)."""
        columns = (
            "b.chunk_id, b.vector_rank, b.lexical_rank, b.lex_score, b.rrf, b.document_id, "
            "b.chunk_number, b.text, b.external_id, b.title, b.url, b.department, b.campus, "
            "b.priority, b.clearance_level, b.popularity, b.metadata, b.similarity, "
            "b.department_match"
        )
        if not self.feedback_chunks:
            relevance = self._relevance("b.similarity", lists, "b.document_id")
            return f""", scored AS (
            SELECT {columns}, {relevance} AS relevance
            FROM base b
            JOIN fused f ON f.id = b.chunk_id
            CROSS JOIN lex_max lm"""
        relevance = self._relevance(
            "1 - (b.embedding <=> fb.query)", lists, "b.document_id"
        )
        return f""", feedback_mean AS (
            SELECT avg(t.embedding) AS mean
            FROM (SELECT embedding FROM base
                  ORDER BY first_relevance DESC, chunk_id LIMIT %(feedback_chunks)s) AS t
        ), feedback AS MATERIALIZED (
            SELECT coalesce(
                       (SELECT array_agg(u.q + %(feedback_weight)s * u.t ORDER BY u.i)
                        FROM unnest(%(qvec)s::real[], m.mean::real[])
                             WITH ORDINALITY AS u(q, t, i))::vector,
                       %(qvec)s) AS query
            FROM feedback_mean m
        ), scored AS (
            SELECT {columns}, {relevance} AS relevance
            FROM base b
            CROSS JOIN feedback fb
            JOIN fused f ON f.id = b.chunk_id
            CROSS JOIN lex_max lm"""

    def params(
        self,
        request: SearchRequest,
        vector: list[float],
        clearance: int,
    ) -> dict[str, Any]:
        cfg, flt = request.config, request.filters
        effective_clearance = min(clearance, flt.max_clearance or clearance)
        operators = parse_operators(request.query)
        return {
            "qvec": Vector(vector),
            "query": operators.text,
            "excluded": " or ".join(operators.excluded),
            **{f"phrase_{i}": phrase for i, phrase in enumerate(operators.phrases)},
            "tsconfig": self.text_search_config,
            "candidates": self.candidates,
            "rrf_k": self.rrf_k,
            "lexical_weight": self.lexical_weight,
            "feedback_chunks": self.feedback_chunks,
            "feedback_weight": self.feedback_weight,
            "clearance": effective_clearance,
            "departments": list(flt.departments),
            "campuses": list(flt.campuses),
            "min_priority": flt.min_priority,
            "preferred_department": cfg.preferred_department,
            "threshold": cfg.similarity_threshold,
            "w_sim": cfg.similarity_weight,
            "w_pri": cfg.priority_weight,
            "w_pop": cfg.popularity_weight,
            "w_dep": cfg.department_weight,
            "max_results": cfg.max_results,
            **self.retriever.params(),
        }

    def run(
        self,
        conn: psycopg.Connection[Any],
        request: SearchRequest,
        vector: list[float],
        clearance: int,
    ) -> list[dict[str, Any]]:
        column = self.prepare(conn)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.sql(request.filters, parse_operators(request.query), column),  # type: ignore[arg-type,unused-ignore]
                self.params(request, vector, clearance),
            )
            return [format_result(row) for row in cur.fetchall()]

    def prepare(self, conn: psycopg.Connection[Any]) -> str:
        """Set the transaction's HNSW settings and return the vector column of the
        engine's model. The statement names document_chunks so that its ACCESS
        SHARE lock is taken before embedding_columns is read: a reindex finish
        (ACCESS EXCLUSIVE, renames the column) either committed before this
        transaction looked, or waits until it ends."""
        ef_search = str(max(40, min(self.candidates, 1000)))
        if self.embedding_model is None:
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                (ef_search,),
            )
            return PRIMARY
        row = conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "(SELECT e.column_name FROM embedding_columns e WHERE e.model = %s "
            "AND e.dimension = %s AND e.ready_at IS NOT NULL), "
            "(SELECT 1 FROM document_chunks LIMIT 0)",
            (ef_search, self.embedding_model, self.embedding_dimension),
        ).fetchone()
        column = row[2] if row else None
        if column in COLUMNS:
            return str(column)
        _, why = searchable_column(
            conn, self.embedding_model, self.embedding_dimension or 0
        )
        raise SearchColumnUnavailable(why)


def format_result(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "document_id": row["external_id"],
        "title": row["title"],
        "url": row["url"],
        "chunk_number": row["chunk_number"],
        "text": row["text"],
        "metadata": {
            **(row["metadata"] or {}),
            "department": row["department"],
            "campus": row["campus"],
            "priority": row["priority"],
            "clearance_level": row["clearance_level"],
            "popularity": float(row["popularity"]),
        },
        "score": round(float(row["score"]), 6),
        "score_parts": {
            "similarity": round(float(row["similarity"]), 6),
            "relevance": round(float(row["relevance"]), 6),
            "rrf": round(float(row["rrf"]), 6),
            "vector_rank": row["vector_rank"],
            "lexical_rank": row["lexical_rank"],
            "lexical_score": None
            if row["lex_score"] is None
            else round(float(row["lex_score"]), 6),
            "priority": row["priority"],
            "popularity": float(row["popularity"]),
            "department_match": bool(row["department_match"]),
        },
    }


# Decimals of the score shown to roles without admin rights; see public_result.
PUBLIC_SCORE_DECIMALS = 2


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result as every role but admin sees it: no ``score_parts`` and the score
    rounded to PUBLIC_SCORE_DECIMALS.

    The lexical statistics behind a caller's scores count only chunks at or
    below the caller's clearance (migration 7), so scores reveal nothing about
    restricted chunks; the parts and exact scores are still detail only an
    administrator needs (docs: app/README "What each caller learns")."""
    out = {k: v for k, v in result.items() if k != "score_parts"}
    out["score"] = round(float(result["score"]), PUBLIC_SCORE_DECIMALS)
    return out
