"""Prometheus metrics, one registry per app (one waitress process per instance)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vector_search import __version__

AUTH_FAILURE_REASONS = ("malformed", "unknown", "revoked", "expired", "missing")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        for name, key, doc in (
            (
                "vector_search_db_pool_size",
                "pool_size",
                "Connections currently in the pool",
            ),
            (
                "vector_search_db_pool_available",
                "pool_available",
                "Idle connections in the pool",
            ),
            ("vector_search_db_pool_max", "pool_max", "Maximum pool size"),
            (
                "vector_search_db_pool_waiting",
                "requests_waiting",
                "Requests waiting for a connection",
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=float(stats.get(key, 0)))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "vector_search_build_info",
            "Version of the running service",
            ["version"],
            registry=r,
        )
        self.build_info.labels(version=__version__).set(1)
        self.requests = Counter(
            "vector_search_http_requests_total",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "vector_search_http_request_duration_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.search_seconds = Histogram(
            "vector_search_search_duration_seconds",
            "Search latency (uncached searches)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.embed_seconds = Histogram(
            "vector_search_embed_duration_seconds",
            "Embedder request latency",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.db_seconds = Histogram(
            "vector_search_db_query_duration_seconds",
            "Database time of a search",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "vector_search_cache_requests_total",
            "Cache lookups by cache and result (hit, miss, error)",
            ["cache", "result"],
            registry=r,
        )
        self.cache_writes_skipped = Counter(
            "vector_search_cache_writes_skipped_total",
            "Cache writes not made, by reason: memory_ceiling (Redis above "
            "CACHE_MEMORY_CEILING of maxmemory), redis_full (Redis refused the "
            "write: OOM), error (Redis unreachable or failing)",
            ["reason"],
            registry=r,
        )
        for reason in ("memory_ceiling", "redis_full", "error"):
            self.cache_writes_skipped.labels(reason=reason)
        self.api_key_cache = Counter(
            "vector_search_api_key_cache_total",
            "API key lookups by result: hit (a successful lookup reused for up to "
            "API_KEY_CACHE_SECONDS), miss (looked up in the database); none while the "
            "cache is off",
            ["result"],
            registry=r,
        )
        for result in ("hit", "miss"):
            self.api_key_cache.labels(result=result)
        self.embedder_errors = Counter(
            "vector_search_embedder_errors_total",
            "Failed embedder requests",
            registry=r,
        )
        self.auth_failures = Counter(
            "vector_search_auth_failures_total",
            "Failed authentications by reason: malformed (not a key's format, no lookup), "
            "unknown, revoked, expired, missing (no key where one is required)",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason=reason)
        self.auth_blocked = Counter(
            "vector_search_auth_blocked_total",
            "Keyed requests refused with 429 before any lookup: their address had "
            "AUTH_FAILURE_LIMIT failed authentications in AUTH_FAILURE_WINDOW",
            registry=r,
        )
        self.dependency_up = Gauge(
            "vector_search_dependency_up",
            "Result of the last deep health check per component",
            ["component"],
            registry=r,
        )

    def observe_embed(self, seconds: float, ok: bool) -> None:
        self.embed_seconds.observe(seconds)
        if not ok:
            self.embedder_errors.inc()

    def record_cache(self, cache: str, result: str) -> None:
        self.cache.labels(cache=cache, result=result).inc()

    def record_key_cache(self, result: str) -> None:
        self.api_key_cache.labels(result=result).inc()

    def record_cache_write_skipped(self, reason: str) -> None:
        self.cache_writes_skipped.labels(reason=reason).inc()

    def watch_pool(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry.register(PoolCollector(stats))

    def watch_keys(self, summary: Callable[[], list[Any] | None]) -> None:
        self.registry.register(KeyExpiryCollector(summary))


_KEY_GAUGES = (
    ("vector_search_api_keys_active", "active", "Active API keys per role"),
    (
        "vector_search_api_keys_expiring_soon",
        "expiring_soon",
        "Active API keys per role that expire within API_KEY_EXPIRY_WARNING_DAYS",
    ),
    (
        "vector_search_api_keys_without_expiry",
        "without_expiry",
        "Active API keys per role that never expire",
    ),
)


class KeyExpiryCollector(Collector):
    """Key counts per role from a cached summary (keys.KeyStats); nothing while
    the summary has never been read."""

    def __init__(self, summary: Callable[[], list[Any] | None]) -> None:
        self._summary = summary

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, _, doc in _KEY_GAUGES:
            yield GaugeMetricFamily(name, doc, labels=["role"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self._summary()
        if rows is None:
            return
        for name, attribute, doc in _KEY_GAUGES:
            family = GaugeMetricFamily(name, doc, labels=["role"])
            for row in rows:
                family.add_metric([row.role], float(getattr(row, attribute)))
            yield family
