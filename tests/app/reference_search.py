"""The hybrid search SQL as it was before issue 15's no-change speedups, kept
verbatim as a reference: tests compare the service's SQL with it (same rows,
same scores) and the benchmark's cost section measures both side by side.

Only the two pieces that changed are kept; everything else is the service's own
``SearchEngine.sql``, and the BM25 candidates and term statistics are the
service's too (``Bm25Retriever.candidates_sql``), so the comparison is about
the SQL's shape:
- ``LegacyBm25Retriever.cte``: unnests every candidate's whole tsvector
  (~60 lexemes each) to score the few query lexemes;
- ``LegacySearchEngine._feedback_sql``: the feedback vector's CTE is not
  ``MATERIALIZED``, so PostgreSQL inlines it and rebuilds the vector for every
  candidate row.
"""

from __future__ import annotations

from vector_search.retrievers.bm25 import Bm25Retriever
from vector_search.search import SearchEngine

__all__ = ["LegacyBm25Retriever", "LegacySearchEngine", "legacy_engine"]


class LegacyBm25Retriever(Bm25Retriever):
    """Bm25Retriever with its pre-issue-15 scoring (the service's candidates)."""

    def cte(self, filters_sql: str) -> str:
        return f"""
        WITH {self.candidates_sql(filters_sql)}
        SELECT m.id,
               sum(t.idf * (e.tf * (%(bm25_k1)s + 1))
                   / (e.tf + %(bm25_k1)s * (1 - %(bm25_b)s
                                             + %(bm25_b)s * m.token_count / t.avg_len))) AS lex_score
        FROM matches m
        CROSS JOIN LATERAL (
            SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf FROM unnest(m.tsv) AS u
        ) AS e
        JOIN query_terms t ON t.lexeme = e.lexeme
        GROUP BY m.id
        ORDER BY lex_score DESC, m.id
        LIMIT %(candidates)s"""


class LegacySearchEngine(SearchEngine):
    """SearchEngine with its pre-issue-15 feedback CTEs."""

    def _feedback_sql(self, lists: int) -> str:
        """Pseudo-relevance feedback (Rocchio on the query vector): the query
        vector plus FEEDBACK_WEIGHT times the mean embedding of the first pass's
        top FEEDBACK_CHUNKS candidates re-scores the same candidates. Only candidates the caller may see take part."""
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
        ), feedback AS (
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


def legacy_engine(engine: SearchEngine) -> LegacySearchEngine:
    """The same engine (same settings) with the old SQL; a BM25 retriever is
    replaced by its old form, any other retriever kept."""
    retriever = engine.retriever
    if isinstance(retriever, Bm25Retriever):
        retriever = LegacyBm25Retriever(
            retriever.k1, retriever.b, retriever.max_candidates
        )
    return LegacySearchEngine(
        retriever,
        engine.candidates,
        engine.rrf_k,
        engine.text_search_config,
        engine.fusion,
        engine.lexical_weight,
        engine.feedback_chunks,
        engine.feedback_weight,
        engine.embedding_model,
        engine.embedding_dimension,
    )
