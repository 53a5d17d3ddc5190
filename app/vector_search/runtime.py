"""The long-lived objects an API process uses (pool, Redis cache, embedder, engine,
metrics), built from settings: the process's runtime, not systemd services."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg_pool

from vector_search.auth_failures import AuthFailures
from vector_search.cache import Cache, create_client
from vector_search.config import Settings
from vector_search.db import create_pool
from vector_search.embedder import OllamaEmbedder
from vector_search.key_cache import KeyCache
from vector_search.keys import KeyStats
from vector_search.metrics import Metrics
from vector_search.retrievers import make as make_retriever
from vector_search.search import SearchEngine


@dataclass
class Services:
    settings: Settings
    pool: psycopg_pool.ConnectionPool
    cache: Cache
    embedder: OllamaEmbedder
    engine: SearchEngine
    metrics: Metrics
    auth_failures: AuthFailures
    key_cache: KeyCache

    @classmethod
    def build(cls, settings: Settings) -> Services:
        metrics = Metrics()
        pool = create_pool(settings)
        metrics.watch_pool(pool.get_stats)
        metrics.watch_keys(KeyStats(pool, settings).summary)
        client = create_client(settings)
        return cls(
            settings=settings,
            pool=pool,
            cache=Cache(
                client,
                settings,
                metrics.record_cache,
                metrics.record_cache_write_skipped,
            ),
            embedder=OllamaEmbedder(settings, metrics.observe_embed),
            engine=build_engine(settings),
            metrics=metrics,
            auth_failures=AuthFailures(
                client,
                settings.cache_namespace,
                settings.auth_failure_limit,
                settings.auth_failure_window,
            ),
            key_cache=KeyCache(
                settings.api_key_cache_seconds, metrics.record_key_cache
            ),
        )

    def close(self) -> None:
        self.pool.close(timeout=2)
        self.embedder.close()
        self.cache.client.close()


def build_engine(settings: Settings) -> SearchEngine:
    """The search engine these settings describe (retriever, fusion, feedback)."""
    return SearchEngine(
        make_retriever(settings.lexical_retriever, settings),
        settings.search_candidates,
        settings.rrf_k,
        settings.text_search_config,
        fusion=settings.fusion,
        lexical_weight=settings.lexical_weight,
        feedback_chunks=settings.feedback_chunks,
        feedback_weight=settings.feedback_weight,
        embedding_model=settings.embedding_model,
        embedding_dimension=settings.embedding_dimension,
    )
