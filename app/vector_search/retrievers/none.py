"""``none``: no lexical side, vectors only."""

from __future__ import annotations

from vector_search.retrievers.base import LexicalRetriever, register


@register
class NoLexicalRetriever(LexicalRetriever):
    """Vectors only."""

    name = "none"
    summary = "vectors only"
    lists = 0

    def cte(self, filters_sql: str) -> str:
        return "SELECT NULL::bigint AS id, NULL::real AS lex_score WHERE false"
