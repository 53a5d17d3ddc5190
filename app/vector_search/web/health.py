"""/health (deep, cached briefly), /health/live and /health/ready."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from vector_search import __version__
from vector_search.columns import searchable_column
from vector_search.db import transaction
from vector_search.errors import DependencyUnavailable, EmbedderError
from vector_search.migrations import LATEST_VERSION
from vector_search.services import Services


def _services() -> Services:
    services: Services = current_app.extensions["vector_search"]
    return services


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        result: dict[str, Any] = {"healthy": True}
        if detail:
            result.update(detail)
    except (DependencyUnavailable, EmbedderError) as exc:
        result = {"healthy": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        result = {"healthy": False, "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database(services: Services) -> dict[str, Any]:
    """Schema version, and a filled, indexed vector column of this instance's
    model (during a reindex an instance may already be switched to the new one)."""
    settings = services.settings
    with transaction(services.pool, 2000) as conn:
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ).fetchone()
        version = int(row[0]) if row else 0
        if version < LATEST_VERSION:
            raise DependencyUnavailable(
                f"schema version {version} < {LATEST_VERSION}: run migrate"
            )
        column, detail = searchable_column(
            conn, settings.embedding_model, settings.embedding_dimension
        )
    if column is None:
        raise DependencyUnavailable(detail)
    return {"schema_version": version, "embedding_column": column}


def check_cache(services: Services) -> dict[str, Any]:
    if not services.cache.ping():
        raise DependencyUnavailable("redis unreachable")
    return {}


def check_embedder(services: Services) -> dict[str, Any]:
    services.embedder.embed(["health check"])
    return {"model": services.embedder.model}


class HealthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[float, dict[str, Any]] | None = None

    def get(self, ttl: float) -> dict[str, Any] | None:
        with self._lock:
            if self._value and time.monotonic() - self._value[0] < ttl:
                return self._value[1]
        return None

    def put(self, value: dict[str, Any]) -> None:
        with self._lock:
            self._value = (time.monotonic(), value)


def create_blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)
    cache = HealthCache()

    @bp.get("/health")
    def health() -> tuple[Response, int]:
        services = _services()
        body = cache.get(services.settings.health_cache_ttl)
        cached = body is not None
        if body is None:
            components = {
                "database": _timed(lambda: check_database(services)),
                "cache": _timed(lambda: check_cache(services)),
                "embedder": _timed(lambda: check_embedder(services)),
            }
            for name, result in components.items():
                services.metrics.dependency_up.labels(name).set(
                    1 if result["healthy"] else 0
                )
            healthy = all(c["healthy"] for c in components.values())
            body = {
                "status": "healthy" if healthy else "degraded",
                "version": __version__,
                "timestamp": time.time(),
                "components": components,
            }
            cache.put(body)
        return jsonify({**body, "cached": cached}), 200 if body[
            "status"
        ] == "healthy" else 503

    @bp.get("/health/live")
    def live() -> Response:
        return jsonify({"status": "alive", "version": __version__})

    @bp.get("/health/ready")
    def ready() -> tuple[Response, int]:
        services = _services()
        result = _timed(lambda: check_database(services))
        status = 200 if result["healthy"] else 503
        return jsonify(
            {
                "status": "ready" if status == 200 else "not_ready",
                "version": __version__,
                "database": result,
            }
        ), status

    return bp
