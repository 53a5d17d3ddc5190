"""Lexical retrievers: SQL fragments that rank chunks for a text query.

A retriever yields the body of a CTE named ``lex`` with columns
``(id, lex_score)``, at most ``%(candidates)s`` rows, best first, obeying the
same filter predicate as the vector side. The hybrid query fuses it with the
vector list by Reciprocal Rank Fusion. A BM25 retriever (issue 10) plugs in
here without touching the rest of the query.
"""

from __future__ import annotations

from typing import Protocol


class LexicalRetriever(Protocol):
    name: str

    def cte(self, filters_sql: str) -> str:
        """SQL for ``lex AS MATERIALIZED (...)``; may use %(query)s, %(tsconfig)s, %(candidates)s."""
        ...


class TsRankRetriever:
    """The query's lexemes OR-ed (not AND-ed: questions would match nothing), ranked
    by length-normalised ``ts_rank``; the GIN index finds the matches."""

    name = "tsrank"

    def cte(self, filters_sql: str) -> str:
        return f"""
        SELECT c.id, ts_rank(c.tsv, q.query, 1) AS lex_score
        FROM document_chunks c,
             (SELECT (SELECT string_agg(
                         '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''',
                         ' | ')
                      FROM unnest(tsvector_to_array(
                          to_tsvector(%(tsconfig)s::regconfig, %(query)s))) AS lexeme
                     )::tsquery AS query) AS q
        WHERE q.query IS NOT NULL AND c.tsv @@ q.query AND {filters_sql}
        ORDER BY lex_score DESC, c.id
        LIMIT %(candidates)s"""


class NoLexicalRetriever:
    """Vectors only."""

    name = "none"

    def cte(self, filters_sql: str) -> str:
        return "SELECT NULL::bigint AS id, NULL::real AS lex_score WHERE false"


def make_retriever(name: str) -> LexicalRetriever:
    if name == "tsrank":
        return TsRankRetriever()
    if name == "none":
        return NoLexicalRetriever()
    raise ValueError(f"unknown lexical retriever {name!r}")
