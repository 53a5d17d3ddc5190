"""Lexical retrievers: SQL fragments that rank chunks for a text query.

A retriever yields the body of a CTE named ``lex`` with columns
``(id, lex_score)``, at most ``%(candidates)s`` rows, best first, obeying the
same filter predicate as the vector side. The hybrid query fuses it with the
vector list by Reciprocal Rank Fusion.

Both retrievers OR the query's lexemes: question-style queries AND-ed by
``websearch_to_tsquery`` match almost nothing. Lexemes are quoted into a
``tsquery`` literal (quotes doubled, backslashes escaped), so user input is
never parsed as tsquery syntax.

Each retriever is one module of this package whose class derives from
:class:`LexicalRetriever` and is decorated with :func:`register`; the package
imports every module in it, so the registry (``LEXICAL_RETRIEVER``'s choices,
the fused list count) follows the files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, TypeVar

# SQL: the text column "lexeme" as a quoted tsquery operand
QUOTED_LEXEME = r"'''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''''"


class RetrieverSettings(Protocol):
    """The settings retrievers read; ``vector_search.config.Settings`` satisfies it.

    A protocol rather than ``Settings`` itself: config imports this package for
    the retriever names, so this package must not import config. A retriever with
    a setting of its own adds the ``Spec`` and field in config.py and the
    property here."""

    @property
    def bm25_k1(self) -> float: ...

    @property
    def bm25_b(self) -> float: ...

    @property
    def bm25_max_candidates(self) -> int: ...


class LexicalRetriever(ABC):
    """One way to rank chunks lexically; subclasses set ``name`` and ``summary``."""

    name: ClassVar[str]
    """``LEXICAL_RETRIEVER``'s value that selects it."""
    summary: ClassVar[str]
    """What it does, for ``LEXICAL_RETRIEVER``'s help (the example env file)."""
    lists: ClassVar[int] = 1
    """Ranked lists it adds to the fusion: 1, or 0 for one whose ``lex`` is always
    empty (RRF normalises by the number of lists a chunk can be first in)."""

    @classmethod
    def from_settings(cls, settings: RetrieverSettings) -> LexicalRetriever:
        """The retriever these settings describe."""
        return cls()

    @abstractmethod
    def cte(self, filters_sql: str) -> str:
        """SQL for ``lex AS MATERIALIZED (...)``; may use %(query)s, %(tsconfig)s, %(candidates)s."""

    def params(self) -> dict[str, Any]:
        """Extra query parameters the CTE uses."""
        return {}


REGISTRY: dict[str, type[LexicalRetriever]] = {}
"""Every retriever by name, in the order their modules were imported."""

_R = TypeVar("_R", bound=type[LexicalRetriever])


def register(cls: _R) -> _R:
    """Class decorator: make ``cls`` selectable as ``LEXICAL_RETRIEVER=cls.name``."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a class attribute name")
    if name != name.strip().lower():
        raise TypeError(f"retriever name {name!r} must be lower case, no spaces")
    if not isinstance(getattr(cls, "summary", None), str):
        raise TypeError(f"{cls.__qualname__} needs a class attribute summary")
    if cls.lists not in (0, 1):
        raise TypeError(f"{cls.__qualname__}.lists must be 0 or 1")
    other = REGISTRY.get(name)
    if other is not None and other is not cls:
        raise TypeError(
            f"retriever name {name!r} is taken by {other.__module__}.{other.__qualname__}"
        )
    REGISTRY[name] = cls
    return cls
