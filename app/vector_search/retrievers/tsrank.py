"""``tsrank``: OR-ed lexemes ranked by length-normalised ``ts_rank``."""

from __future__ import annotations

from vector_search.retrievers.base import QUOTED_LEXEME, LexicalRetriever, register


@register
class TsRankRetriever(LexicalRetriever):
    """OR-ed lexemes ranked by length-normalised ``ts_rank``; the GIN index finds matches."""

    name = "tsrank"
    summary = "OR-ed lexemes ranked by ts_rank"

    def cte(self, filters_sql: str) -> str:
        return f"""
        SELECT c.id, ts_rank(c.tsv, q.query, 1) AS lex_score
        FROM document_chunks c,
             (SELECT (SELECT string_agg({QUOTED_LEXEME}, ' | ')
                      FROM unnest(tsvector_to_array(
                          to_tsvector(%(tsconfig)s::regconfig, %(query)s))) AS lexeme
                     )::tsquery AS query) AS q
        WHERE q.query IS NOT NULL AND c.tsv @@ q.query AND {filters_sql}
        ORDER BY lex_score DESC, c.id
        LIMIT %(candidates)s"""
