"""GET /api/stats (scoped to the caller's clearance) and the admin-only cache clear."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import redis
from flask import Blueprint, Response, jsonify
from flask_limiter import Limiter
from psycopg.rows import dict_row

from vector_search.db import transaction
from vector_search.errors import CacheUnavailable
from vector_search.web.auth import require_admin, require_key
from vector_search.web.context import current_services
from vector_search.web.ratelimit import role_limit


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        elif value is not None and not isinstance(value, int | float | str | bool):
            out[key] = float(value)
        else:
            out[key] = value
    return out


# document_stats (the view) without the documents above the caller's clearance
DOCUMENT_STATS_SQL = """
SELECT d.department,
       d.campus,
       count(DISTINCT d.id) AS documents,
       count(c.id) AS chunks,
       round(avg(length(c.text)))::integer AS avg_chunk_length,
       max(d.updated_at) AS last_updated
FROM documents d
LEFT JOIN document_chunks c
       ON c.document_id = d.id AND c.clearance_level <= %(clearance)s
WHERE d.clearance_level <= %(clearance)s
GROUP BY d.department, d.campus
ORDER BY d.department NULLS LAST, d.campus NULLS LAST"""


def _query_performance(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT query, calls, total_exec_time, mean_exec_time, rows "
                "FROM query_performance LIMIT 10"
            )
            return {
                "available": True,
                "queries": [_jsonable(r) for r in cur.fetchall()],
            }
    except psycopg.errors.OperationalError:
        raise
    except psycopg.Error as exc:
        return {
            "available": False,
            "reason": exc.diag.message_primary or type(exc).__name__,
        }


def create_blueprint(limiter: Limiter) -> Blueprint:
    bp = Blueprint("admin", __name__)

    @bp.get("/api/stats")
    @limiter.limit(role_limit)
    def stats() -> Response:
        """Corpus aggregates over the documents the caller may see (nothing about
        the others, not even that they exist); query statistics, cache and pool
        internals for the admin role only."""
        principal = require_key()
        clearance = principal.role.clearance_level
        services = current_services()
        with transaction(
            services.pool, services.settings.database_statement_timeout_ms
        ) as conn:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(DOCUMENT_STATS_SQL, {"clearance": clearance})
                documents = [_jsonable(r) for r in cur.fetchall()]
            performance = _query_performance(conn) if principal.role.can_admin else None
        body: dict[str, Any] = {
            "clearance_level": clearance,
            "documents": documents,
            "totals": {
                "documents": sum(int(d["documents"]) for d in documents),
                "chunks": sum(int(d["chunks"]) for d in documents),
            },
        }
        if principal.role.can_admin:
            try:
                cache: dict[str, Any] = {"available": True, **services.cache.info()}
            except redis.RedisError:
                cache = {"available": False}
            body["query_performance"] = performance
            body["cache"] = cache
            body["pool"] = services.pool.get_stats()
        body["timestamp"] = time.time()
        return jsonify(body)

    def _clear() -> Response:
        require_admin()
        try:
            deleted = current_services().cache.clear()
        except redis.RedisError as exc:
            raise CacheUnavailable("cache unavailable") from exc
        return jsonify(
            {
                "message": "cache cleared",
                "deleted_keys": deleted,
                "timestamp": time.time(),
            }
        )

    @bp.delete("/api/admin/cache")
    @limiter.limit(role_limit)
    def clear_cache() -> Response:
        return _clear()

    @bp.post("/api/admin/clear_cache")
    @limiter.limit(role_limit)
    def clear_cache_legacy() -> Response:
        return _clear()

    return bp
