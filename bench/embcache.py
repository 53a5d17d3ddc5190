"""A disk cache of the stand-in's embeddings for the relevance section, so a
rerun does not re-embed Cranfield (the stand-in is deterministic; the first run
fills the cache through it). The ingestion section never uses it.
Location: ``$BENCH_CACHE_DIR`` or ``~/.cache/vector-search-bench``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from vector_search.embedder import OllamaEmbedder


def cache_dir() -> Path:
    return Path(
        os.environ.get(
            "BENCH_CACHE_DIR", Path.home() / ".cache" / "vector-search-bench"
        )
    )


class CachingEmbedder(OllamaEmbedder):
    hits = 0
    misses = 0

    def _path(self) -> Path:
        return (
            cache_dir()
            / f"embeddings-{self.model.replace('/', '_').replace(':', '_')}.jsonl"
        )

    def _load(self) -> dict[str, list[float]]:
        if not hasattr(self, "_memo"):
            self._memo: dict[str, list[float]] = {}
            path = self._path()
            if path.exists():
                for line in path.read_text().splitlines():
                    try:
                        key, vector = json.loads(line)
                    except ValueError:
                        continue
                    self._memo[key] = vector
        return self._memo

    def embed(
        self, texts: Sequence[str], check_dimension: bool = True
    ) -> list[list[float]]:
        memo = self._load()
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in memo]
        if missing:
            vectors = super().embed([texts[i] for i in missing], check_dimension)
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                for i, vector in zip(missing, vectors, strict=True):
                    memo[keys[i]] = vector
                    out.write(json.dumps([keys[i], vector]) + "\n")
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return [memo[k] for k in keys]
