"""University hybrid search service (PostgreSQL + pgvector, Redis, Ollama embeddings)."""

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("vector-search")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


__version__ = _version()
