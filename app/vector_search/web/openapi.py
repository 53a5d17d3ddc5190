"""The OpenAPI 3 document of the API (tests check it against the routes)."""

from __future__ import annotations

from typing import Any

from vector_search import __version__
from vector_search.web.validation import (
    DEFAULTS,
    MAX_RESULTS_LIMIT,
    QUERY_MAX,
    QUERY_MIN,
)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid request",
        401: "Missing, malformed, invalid, revoked or expired API key",
        403: "Role not allowed",
        413: "Body too large",
        415: "Content-Type is not application/json",
        429: "Rate limit exceeded, or too many failed authentications from this address (Retry-After; X-RateLimit-* headers for role limits)",
        503: "A dependency is unavailable (Retry-After header)",
    }
    return {str(c): _json(_ERROR, text[c]) for c in codes}


def _weight(description: str, default: float) -> dict[str, Any]:
    return {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": default,
        "description": description,
    }


def build_openapi() -> dict[str, Any]:
    strings = {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 20,
            },
        ]
    }
    search_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": QUERY_MIN, "maxLength": QUERY_MAX},
            "filters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "department": strings,
                    "campus": strings,
                    "min_priority": {"type": "integer", "minimum": 1, "maximum": 5},
                    "max_clearance": {"type": "integer", "minimum": 1, "maximum": 5},
                },
            },
            "config": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "similarity_threshold": {
                        "type": "number",
                        "minimum": -1,
                        "maximum": 1,
                    },
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_RESULTS_LIMIT,
                        "default": DEFAULTS.max_results,
                        "description": "capped at the role's maximum",
                    },
                    "similarity_weight": _weight(
                        "weight of the fused (RRF) relevance",
                        DEFAULTS.similarity_weight,
                    ),
                    "priority_weight": _weight(
                        "weight of document priority / 5", DEFAULTS.priority_weight
                    ),
                    "popularity_weight": _weight(
                        "weight of document popularity (0-1)",
                        DEFAULTS.popularity_weight,
                    ),
                    "department_weight": _weight(
                        "bonus when department = preferred_department",
                        DEFAULTS.department_weight,
                    ),
                    "preferred_department": {"type": "string", "maxLength": 200},
                },
            },
        },
    }
    result = {
        "type": "object",
        "properties": {
            "document_id": {"type": "string"},
            "title": {"type": "string"},
            "url": {"type": ["string", "null"]},
            "chunk_number": {"type": "integer"},
            "text": {"type": "string"},
            "metadata": {"type": "object"},
            "score": {
                "type": "number",
                "description": "ranking score; rounded to 2 decimals for every role but admin",
            },
            "score_parts": {
                "type": "object",
                "description": "every term of the score, both ranks, the lexical score (admin only)",
            },
        },
    }
    search_response = {
        "type": "object",
        "required": [
            "query",
            "results",
            "count",
            "from_cache",
            "search_time",
            "response_time",
        ],
        "properties": {
            "query": {"type": "string"},
            "results": {"type": "array", "items": result},
            "count": {"type": "integer"},
            "max_results": {"type": "integer"},
            "role": {"type": "string"},
            "from_cache": {"type": "boolean"},
            "search_time": {"type": "number"},
            "response_time": {"type": "number"},
            "timestamp": {"type": "number"},
        },
    }
    health = {
        "type": "object",
        "properties": {"status": {"type": "string"}, "version": {"type": "string"}},
    }
    auth: list[dict[str, list[str]]] = [{"bearer": []}, {}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "vector-search", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "SearchRequest": search_request,
                "SearchResponse": search_response,
            },
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "Deep health check of database, cache and embedder",
                    "description": "Status and version for everyone; `components` only for "
                    "HEALTH_DETAIL_NETWORKS or an admin key. Rate-limited per address "
                    "outside HEALTH_DETAIL_NETWORKS (HEALTH_RATE_LIMIT).",
                    "responses": {
                        "200": _json(health, "Healthy"),
                        "503": _json(health, "Degraded"),
                        **_errors(429),
                    },
                }
            },
            "/health/live": {
                "get": {
                    "summary": "Process is up",
                    "responses": {"200": _json(health, "Alive")},
                }
            },
            "/health/ready": {
                "get": {
                    "summary": "Can serve searches (database reachable, schema current)",
                    "description": "`database` detail only for HEALTH_DETAIL_NETWORKS or an admin key.",
                    "responses": {
                        "200": _json(health, "Ready"),
                        "503": _json(health, "Not ready"),
                        **_errors(429),
                    },
                }
            },
            "/api/search": {
                "post": {
                    "summary": "Hybrid search",
                    "security": auth,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SearchRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/SearchResponse"}, "Results"
                        ),
                        **_errors(400, 401, 413, 415, 429, 503),
                    },
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "Document counts per department and campus over the documents "
                    "the caller's clearance allows; query performance, cache and pool (admin only)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json({"type": "object"}, "Statistics"),
                        **_errors(401, 429, 503),
                    },
                }
            },
            "/api/admin/cache": {
                "delete": {
                    "summary": "Clear this service's cache namespace (admin)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json({"type": "object"}, "Cleared"),
                        **_errors(401, 403, 429, 503),
                    },
                }
            },
            "/api/admin/clear_cache": {
                "post": {
                    "summary": "Same as DELETE /api/admin/cache (the seed's path)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json({"type": "object"}, "Cleared"),
                        **_errors(401, 403, 429, 503),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "Metrics", "content": {"text/plain": {}}}
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI")},
                }
            },
        },
    }
