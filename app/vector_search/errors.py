"""Failures of dependencies, mapped to HTTP 503 by the API."""

from __future__ import annotations


class DependencyUnavailable(RuntimeError):
    """A dependency cannot serve right now; the client should retry later."""

    component = "dependency"
    retry_after = 5


class DatabaseUnavailable(DependencyUnavailable):
    component = "database"


class EmbedderUnavailable(DependencyUnavailable):
    component = "embedder"


class SearchColumnUnavailable(DependencyUnavailable):
    """No vector column holds the configured model, filled and indexed (reindex)."""

    component = "search index"
    retry_after = 30


class EmbedderError(RuntimeError):
    """The embedder answered, but not with what we need (e.g. wrong dimension)."""


class CacheUnavailable(DependencyUnavailable):
    component = "cache"
