"""Per-key (or per-IP for anonymous) rate limits in Redis via flask-limiter.

When Redis is unreachable flask-limiter falls back to a per-process in-memory
limiter with the same limits, and goes back to Redis when it recovers.
"""

from __future__ import annotations

from flask import g, request
from flask_limiter import Limiter

from vector_search.cache import redis_url
from vector_search.config import Settings


def rate_key() -> str:
    principal = g.get("principal")
    if principal is not None and principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"ip:{request.remote_addr or 'unknown'}"


def role_limit() -> str:
    principal = g.get("principal")
    per_minute = principal.role.rate_limit_per_minute if principal is not None else 10
    return f"{per_minute}/minute"


def create_limiter(settings: Settings) -> Limiter:
    return Limiter(
        key_func=rate_key,
        storage_uri=redis_url(settings),
        storage_options={
            "socket_timeout": settings.redis_socket_timeout,  # type: ignore[dict-item]
            "socket_connect_timeout": settings.redis_socket_timeout,  # type: ignore[dict-item]
        },
        strategy="moving-window",
        headers_enabled=True,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        key_prefix=f"{settings.cache_namespace}-ratelimit",
        enabled=settings.rate_limit_enabled,
        default_limits=[],
    )
