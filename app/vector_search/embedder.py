"""Client of the Ollama embedding API (``POST /api/embed`` with list input)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from vector_search.config import Settings
from vector_search.errors import EmbedderError, EmbedderUnavailable


class Embedder(Protocol):
    """What ingest, reindex and search need of an embedder (OllamaEmbedder)."""

    @property
    def model(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(
        self, texts: Sequence[str], check_dimension: bool = True
    ) -> list[list[float]]: ...

    def close(self) -> None: ...


def for_model(settings: Settings, model: str, dimension: int) -> OllamaEmbedder:
    """An embedder of another model on the configured Ollama (reindex, ingest)."""
    return OllamaEmbedder(
        dataclasses.replace(
            settings, embedding_model=model, embedding_dimension=dimension
        )
    )


class OllamaEmbedder:
    def __init__(
        self,
        settings: Settings,
        observe: Callable[[float, bool], None] | None = None,
    ) -> None:
        self._url = settings.ollama_url
        self._model = settings.embedding_model
        self._dimension = settings.embedding_dimension
        self._keep_alive = settings.ollama_keep_alive
        self._client = httpx.Client(timeout=settings.ollama_timeout)
        self._observe = observe

    @property
    def model(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        self._client.close()

    def _keep_alive_value(self) -> Any:
        try:
            return int(self._keep_alive)
        except ValueError:
            return self._keep_alive

    def embed(
        self, texts: Sequence[str], check_dimension: bool = True
    ) -> list[list[float]]:
        if not texts:
            return []
        started = time.perf_counter()
        ok = False
        try:
            vectors = self._post(texts)
            if check_dimension and any(len(v) != self._dimension for v in vectors):
                raise EmbedderError(
                    f"embedder returned {len(vectors[0])}-dimensional vectors but "
                    f"EMBEDDING_DIMENSION is {self._dimension} (model {self._model})"
                )
            ok = True
            return vectors
        finally:
            if self._observe is not None:
                self._observe(time.perf_counter() - started, ok)

    def _post(self, texts: Sequence[str]) -> list[list[float]]:
        try:
            response = self._client.post(
                f"{self._url}/api/embed",
                json={
                    "model": self._model,
                    "input": list(texts),
                    "truncate": True,
                    "keep_alive": self._keep_alive_value(),
                },
            )
        except httpx.HTTPError as exc:
            raise EmbedderUnavailable(
                f"embedder unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code == 404:
            raise EmbedderUnavailable(
                f"embedding model {self._model!r} is not available on the embedder "
                f"(pull it: ollama pull {self._model})"
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise EmbedderUnavailable(f"embedder answered {response.status_code}")
        if response.status_code != 200:
            raise EmbedderError(
                f"embedder answered {response.status_code}: {response.text[:200]}"
            )
        try:
            vectors = response.json().get("embeddings")
        except ValueError as exc:
            raise EmbedderError("embedder returned invalid JSON") from exc
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise EmbedderError("embedder returned a malformed response")
        return [[float(x) for x in v] for v in vectors]

    def version(self) -> str:
        try:
            response = self._client.get(f"{self._url}/api/version")
            response.raise_for_status()
            return str(response.json().get("version", "unknown"))
        except (httpx.HTTPError, ValueError) as exc:
            raise EmbedderUnavailable(
                f"embedder unreachable: {type(exc).__name__}"
            ) from exc
