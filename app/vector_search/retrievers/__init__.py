"""The lexical retrievers, one module each, and their registry.

Every module of this package except ``base`` is imported here, found by
``pkgutil`` rather than listed: a module's ``@register`` class is then
selectable as ``LEXICAL_RETRIEVER``, counted in the fusion and named in the
setting's help and errors, so a new retriever is one new file (a list here
would be a second place to edit and could drift from the files). The package
holds retrievers only; any module in it is imported when ``vector_search.config``
is.
"""

from __future__ import annotations

import importlib
import pkgutil

from vector_search.retrievers.base import (
    QUOTED_LEXEME,
    REGISTRY,
    LexicalRetriever,
    RetrieverSettings,
    register,
)

__all__ = [
    "QUOTED_LEXEME",
    "REGISTRY",
    "LexicalRetriever",
    "RetrieverSettings",
    "make",
    "names",
    "register",
]

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def names() -> tuple[str, ...]:
    """Every retriever's ``LEXICAL_RETRIEVER`` name, in registry order."""
    return tuple(REGISTRY)


def make(name: str, settings: RetrieverSettings) -> LexicalRetriever:
    """The retriever called ``name``, configured from ``settings``."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown lexical retriever {name!r}; known: {', '.join(REGISTRY)}"
        ) from None
    return cls.from_settings(settings)
