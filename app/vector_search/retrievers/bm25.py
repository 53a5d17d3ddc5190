"""``bm25``: Okapi BM25 from exact term statistics (the default retriever)."""

from __future__ import annotations

from typing import Any

from vector_search.retrievers.base import (
    QUOTED_LEXEME,
    LexicalRetriever,
    RetrieverSettings,
    register,
)

# The query's lexemes with their BM25 idf and the average chunk length, from the
# statistics of the chunks at or below the caller's clearance (%(clearance)s, the
# same value the filter predicate uses; migration 7): a lexeme only restricted
# chunks hold is not a query term for this caller, and its scores do not move
# when restricted chunks are added or removed.
QUERY_TERMS = """
            SELECT s.lexeme,
                   s.doc_freq,
                   ln(1 + (cs.chunk_count - s.doc_freq + 0.5) / (s.doc_freq + 0.5)) AS idf,
                   cs.total_tokens::float8 / greatest(cs.chunk_count, 1) AS avg_len
            FROM (SELECT ls.lexeme, sum(ls.doc_freq) AS doc_freq
                  FROM lexeme_level_stats ls
                  WHERE ls.lexeme = ANY(tsvector_to_array(
                            to_tsvector(%(tsconfig)s::regconfig, %(query)s)))
                    AND ls.clearance_level <= %(clearance)s
                  GROUP BY ls.lexeme) AS s
            CROSS JOIN (SELECT sum(chunk_count) AS chunk_count, sum(total_tokens) AS total_tokens
                        FROM corpus_level_stats
                        WHERE clearance_level <= %(clearance)s) AS cs
            WHERE s.doc_freq > 0"""


# Above the candidate budget, half of it goes to chunks holding two of this many
# of the query's rarest lexemes (measured on 100k chunks: 4 gave the best
# overlap with exact BM25 on real text; 6 pairs in the OR).
PAIR_LEXEMES = 4


@register
class Bm25Retriever(LexicalRetriever):
    """Okapi BM25 over the chunks' tsvectors, from term statistics that triggers keep
    exact per clearance level (``lexeme_level_stats``: chunks per lexeme and level;
    ``corpus_level_stats``: chunk count and total tokens per level; migration 7),
    summed over the levels the caller may see. At most ``max_candidates`` chunks
    are scored (``candidates_sql``): every chunk sharing a lexeme with the query
    below that budget; above it, half for the rarest lexemes and half for chunks
    holding two of the rarest few, so the work stays bounded as the corpus grows.
    Candidates are scored exactly with all query lexemes: tf from the tsvector
    positions, document length from ``token_count``,
    idf = ln(1 + (N - df + 0.5) / (df + 0.5)).

    Each candidate's tsvector (~60 lexemes) is trimmed to the query's lexemes
    before it is unnested: ``setweight(tsv, 'B', query lexemes)`` marks every
    position of those lexemes B and ``ts_filter(..., '{b}')`` keeps the lexemes
    with a B position, so all of a query lexeme's positions (its tf) survive and
    few others do (the schema weights headings A and text D; a lexeme already
    weighted B elsewhere passes the filter but not the join on query_terms).
    Identical scores to unnesting the whole vector (tests/app/reference_search.py)
    at a fraction of the cost: unnest builds a row, a text and two arrays per
    lexeme. It relies on every lexeme having positions (ts_filter drops those
    without), which ``to_tsvector`` guarantees for the generated ``tsv``."""

    name = "bm25"
    summary = "Okapi BM25 from term statistics"

    def __init__(
        self, k1: float = 1.2, b: float = 0.75, max_candidates: int = 2000
    ) -> None:
        self.k1, self.b, self.max_candidates = k1, b, max_candidates

    @classmethod
    def from_settings(cls, settings: RetrieverSettings) -> Bm25Retriever:
        return cls(settings.bm25_k1, settings.bm25_b, settings.bm25_max_candidates)

    def params(self) -> dict[str, Any]:
        return {
            "bm25_k1": self.k1,
            "bm25_b": self.b,
            "bm25_max_candidates": self.max_candidates,
        }

    def candidates_sql(self, filters_sql: str) -> str:
        """The CTEs up to ``matches`` (id, tsv, token_count): the chunks scored.

        Every chunk sharing a lexeme with the query when their document
        frequencies add up to at most ``max_candidates``. Above that, half the
        budget goes to the chunks holding the rarest lexemes (rarest first while
        their frequencies stay under the half, at least the rarest one) and the
        other half to chunks holding two of the PAIR_LEXEMES rarest lexemes
        (one GIN match of the OR of their pairs): the best BM25 chunks share
        several query words, which the rarest words alone miss once common words
        match most of the corpus (bench section 7)."""
        pair = f"(SELECT lexeme, {QUOTED_LEXEME} AS q FROM top_lexemes)"
        return f"""
        query_terms AS ({QUERY_TERMS}
        ), budget AS (
            SELECT CASE WHEN coalesce(sum(doc_freq), 0) <= %(bm25_max_candidates)s
                        THEN %(bm25_max_candidates)s
                        ELSE %(bm25_max_candidates)s / 2 END AS rare
            FROM query_terms
        ), selective AS (
            -- rarest lexemes first, while the chunks they can match stay under the budget
            SELECT r.lexeme
            FROM (SELECT lexeme, doc_freq,
                         sum(doc_freq) OVER (ORDER BY doc_freq, lexeme) AS running
                  FROM query_terms) AS r, budget
            WHERE r.running - r.doc_freq < budget.rare
        ), rare_ts AS (
            SELECT (string_agg({QUOTED_LEXEME}, ' | '))::tsquery AS query FROM selective
        ), top_lexemes AS (
            SELECT lexeme FROM query_terms ORDER BY doc_freq, lexeme LIMIT {PAIR_LEXEMES}
        ), pair_ts AS (
            SELECT (string_agg('(' || a.q || ' & ' || b.q || ')', ' | '))::tsquery AS query
            FROM {pair} AS a JOIN {pair} AS b ON a.lexeme < b.lexeme
        ), candidate_ids AS MATERIALIZED (
            (SELECT c.id FROM document_chunks c, rare_ts
             WHERE rare_ts.query IS NOT NULL AND c.tsv @@ rare_ts.query AND {filters_sql}
             LIMIT (SELECT rare FROM budget))
            UNION
            (SELECT c.id FROM document_chunks c, pair_ts
             WHERE pair_ts.query IS NOT NULL AND c.tsv @@ pair_ts.query AND {filters_sql}
             LIMIT %(bm25_max_candidates)s - (SELECT rare FROM budget))
        ), query_lexemes AS (
            SELECT array_agg(lexeme) AS lexemes FROM query_terms
        ), matches AS MATERIALIZED (
            SELECT c.id, c.tsv, c.token_count
            FROM document_chunks c
            WHERE c.id IN (SELECT id FROM candidate_ids)
        )"""

    def cte(self, filters_sql: str) -> str:
        return f"""
        WITH {self.candidates_sql(filters_sql)}
        SELECT m.id,
               sum(t.idf * (e.tf * (%(bm25_k1)s + 1))
                   / (e.tf + %(bm25_k1)s * (1 - %(bm25_b)s
                                             + %(bm25_b)s * m.token_count / t.avg_len))) AS lex_score
        FROM matches m
        CROSS JOIN query_lexemes ql
        CROSS JOIN LATERAL (
            SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
            FROM unnest(ts_filter(setweight(m.tsv, 'B', ql.lexemes), '{{b}}')) AS u
        ) AS e
        JOIN query_terms t ON t.lexeme = e.lexeme
        GROUP BY m.id
        ORDER BY lex_score DESC, m.id
        LIMIT %(candidates)s"""
