"""Redis cache for query embeddings and search responses, in this service's namespace.

Every failure degrades to "no cache": the caller gets ``None`` and the search
runs uncached.

Redis runs ``noeviction`` (evicting would silently reset rate-limit and
auth-failure counters that share it), so the cache keeps itself under
CACHE_MEMORY_CEILING of ``maxmemory``: above it (read from INFO at most every
few seconds) it writes nothing until entries expire, and a write Redis refuses
for memory (OOM) is skipped, not an outage. Ingestion bumps a generation number that is part of every
search-response key, so responses computed before new documents landed are
never served again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from vector_search.config import Settings

log = logging.getLogger(__name__)


def redis_url(settings: Settings) -> str:
    """REDIS_URL with REDIS_PASSWORD put in, if one is set (the ACL user is kept)."""
    if not settings.redis_password or settings.redis_url.startswith("unix"):
        return settings.redis_url
    parts = urlsplit(settings.redis_url)
    host = parts.hostname or "127.0.0.1"
    user = quote(parts.username, safe="") if parts.username else ""
    netloc = f"{user}:{quote(settings.redis_password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def create_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        redis_url(settings),
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def digest(payload: Any) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class Cache:
    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        record: Callable[[str, str], None] | None = None,
        record_skip: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        # redis-py types its sync client's results as "Awaitable | Any"
        self._r: Any = client
        self._ns = settings.cache_namespace
        self._enabled = settings.cache_enabled
        self._search_ttl = settings.cache_search_ttl
        self._embedding_ttl = settings.cache_embedding_ttl
        self._record = record or (lambda cache, result: None)
        self._record_skip = record_skip or (lambda reason: None)
        self._retry_after = 0.0
        self._ceiling = settings.cache_memory_ceiling
        self._memory_checked_at = -self._MEMORY_CHECK_SECONDS
        self._memory_full = False

    # A failed Redis call makes the cache skip Redis for a few seconds, so a
    # blackholed Redis costs one socket timeout per few seconds, not per request.
    _BACKOFF_SECONDS = 2.0

    # How often the cache reads Redis's memory use (one INFO per process).
    _MEMORY_CHECK_SECONDS = 5.0

    def _room(self) -> bool:
        """False while Redis uses more than the ceiling of its maxmemory (a
        ceiling of 1.0 means none: Redis's own refusal decides)."""
        if self._ceiling >= 1.0:
            return True
        now = time.monotonic()
        if now - self._memory_checked_at >= self._MEMORY_CHECK_SECONDS:
            self._memory_checked_at = now
            try:
                info = self._r.info("memory")
            except redis.RedisError as exc:
                # unknown: keep writing; a refused write is handled below
                log.warning("cache memory check failed", extra={"error": str(exc)})
                self._memory_full = False
            else:
                used = int(info.get("used_memory", 0))
                limit = int(info.get("maxmemory", 0))
                self._memory_full = limit > 0 and used >= self._ceiling * limit
        return not self._memory_full

    def _available(self) -> bool:
        return time.monotonic() >= self._retry_after

    def _failed(self, exc: Exception, action: str) -> None:
        self._retry_after = time.monotonic() + self._BACKOFF_SECONDS
        log.warning("cache %s failed", action, extra={"error": type(exc).__name__})

    @property
    def client(self) -> redis.Redis:
        return self._client

    def _key(self, *parts: str) -> str:
        return ":".join((self._ns, *parts))

    def _get_json(self, key: str, kind: str) -> Any | None:
        if not self._enabled:
            return None
        if not self._available():
            self._record(kind, "error")
            return None
        try:
            raw = self._r.get(key)
        except redis.RedisError as exc:
            self._failed(exc, "read")
            self._record(kind, "error")
            return None
        self._record(kind, "miss" if raw is None else "hit")
        return None if raw is None else json.loads(raw)

    def _set_json(self, key: str, value: Any, ttl: int) -> None:
        if not self._enabled:
            return
        if not self._available():
            self._record_skip("error")
            return
        if not self._room():
            self._record_skip("memory_ceiling")
            return
        try:
            self._client.set(key, json.dumps(value, separators=(",", ":")), ex=ttl)
        except redis.exceptions.OutOfMemoryError:
            # Redis is up and full: reads still work, writes wait for the next check
            self._memory_full = True
            self._memory_checked_at = time.monotonic()
            self._record_skip("redis_full")
        except redis.RedisError as exc:
            self._failed(exc, "write")
            self._record_skip("error")

    # -- query embeddings -----------------------------------------------------
    def embedding_key(self, model: str, text: str) -> str:
        return self._key("emb", digest([model, text]))

    def get_embedding(self, model: str, text: str) -> list[float] | None:
        value = self._get_json(self.embedding_key(model, text), "embedding")
        return value if isinstance(value, list) else None

    def set_embedding(self, model: str, text: str, vector: list[float]) -> None:
        self._set_json(self.embedding_key(model, text), vector, self._embedding_ttl)

    # -- search responses -----------------------------------------------------
    def generation(self) -> int | None:
        """The corpus generation, or None when Redis cannot be read."""
        if not self._enabled or not self._available():
            return None
        try:
            raw = self._r.get(self._key("generation"))
        except redis.RedisError as exc:
            self._failed(exc, "read")
            return None
        return int(raw) if raw is not None else 0

    def search_key(self, generation: int, request_digest: str) -> str:
        return self._key("search", str(generation), request_digest)

    def get_search(self, generation: int, request_digest: str) -> dict[str, Any] | None:
        value = self._get_json(self.search_key(generation, request_digest), "search")
        return value if isinstance(value, dict) else None

    def set_search(
        self, generation: int, request_digest: str, response: dict[str, Any]
    ) -> None:
        self._set_json(
            self.search_key(generation, request_digest), response, self._search_ttl
        )

    def bump_generation(self) -> int:
        """Called after ingestion changes the corpus; raises redis.RedisError if Redis is down."""
        return int(self._r.incr(self._key("generation")))

    def clear(self) -> int:
        """Delete this namespace's cached embeddings and responses (never FLUSHDB)."""
        deleted = 0
        for pattern in (self._key("search", "*"), self._key("emb", "*")):
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(self._r.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self._r.unlink(*batch))
        self.bump_generation()
        return deleted

    def ping(self) -> bool:
        """Always asks Redis (health checks), and resets the back-off when it answers."""
        try:
            ok = bool(self._client.ping())
        except redis.RedisError:
            return False
        if ok:
            self._retry_after = 0.0
        return ok

    def info(self) -> dict[str, Any]:
        info = self._r.info()
        return {
            "used_memory": info.get("used_memory_human", "unknown"),
            "connected_clients": info.get("connected_clients", 0),
            "keyspace_hits": info.get("keyspace_hits", 0),
            "keyspace_misses": info.get("keyspace_misses", 0),
        }
