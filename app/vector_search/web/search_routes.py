"""POST /api/search: validate, cache, embed, hybrid search."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_limiter import Limiter

from vector_search.cache import digest
from vector_search.db import run_in_transaction
from vector_search.runtime import Services
from vector_search.search import public_result
from vector_search.web.auth import current_principal
from vector_search.web.context import current_services
from vector_search.web.ratelimit import role_limit
from vector_search.web.validation import parse_search, read_json_body


def query_vector(services: Services, text: str) -> list[float]:
    cached = services.cache.get_embedding(services.embedder.model, text)
    if cached is not None and len(cached) == services.settings.embedding_dimension:
        return cached
    vector = services.embedder.embed([text])[0]
    services.cache.set_embedding(services.embedder.model, text, vector)
    return vector


def create_blueprint(limiter: Limiter) -> Blueprint:
    bp = Blueprint("search", __name__)

    @bp.post("/api/search")
    @limiter.limit(role_limit)
    def search() -> Response:
        started = time.perf_counter()
        services = current_services()
        principal = current_principal()
        search_request = parse_search(
            read_json_body(request), services.settings.default_similarity_threshold
        ).capped(principal.role.max_results)
        clearance = principal.role.clearance_level
        generation = services.cache.generation()
        request_digest = digest(
            {
                **search_request.cache_payload(principal.role.name, clearance),
                # during a reindex instances of both models answer: each its own results
                "model": [
                    services.settings.embedding_model,
                    services.settings.embedding_dimension,
                ],
            }
        )
        if generation is not None:
            cached = services.cache.get_search(generation, request_digest)
            if cached is not None:
                g.from_cache, g.result_count = True, cached.get("count")
                cached["from_cache"] = True
                cached["response_time"] = round(time.perf_counter() - started, 6)
                return jsonify(cached)

        search_started = time.perf_counter()
        vector = query_vector(services, search_request.query)
        db_started = time.perf_counter()
        results = run_in_transaction(
            services.pool,
            lambda conn: services.engine.run(conn, search_request, vector, clearance),
            services.settings.database_statement_timeout_ms,
            services.settings.database_retry_seconds,
        )
        services.metrics.db_seconds.observe(time.perf_counter() - db_started)
        if not principal.role.can_admin:
            # lexical detail counts restricted chunks: admins only (search.public_result)
            results = [public_result(r) for r in results]
        search_time = time.perf_counter() - search_started
        services.metrics.search_seconds.observe(search_time)
        body: dict[str, Any] = {
            "query": search_request.query,
            "results": results,
            "count": len(results),
            "max_results": search_request.config.max_results,
            "role": principal.role.name,
            "from_cache": False,
            "search_time": round(search_time, 6),
            "timestamp": time.time(),
        }
        if generation is not None:
            services.cache.set_search(generation, request_digest, body)
        g.from_cache, g.result_count = False, len(results)
        body["response_time"] = round(time.perf_counter() - started, 6)
        return jsonify(body)

    return bp
