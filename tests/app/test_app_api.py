"""HTTP API: validation, auth, rate limits, cache, admin, stats, metrics, OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from vector_search import __version__
from vector_search.keys import create_key, revoke_key
from vs_services import Postgres, bearer, owner_connection, search

GOOD = {"query": "eduroam wifi"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "query"),
        ({"query": None}, "query"),
        ({"query": 42}, "query"),
        ({"query": "  a  "}, "query"),
        ({"query": "x" * 1001}, "query"),
        ({"query": "eduroam", "extra": 1}, "extra"),
        ({"query": "eduroam", "filters": {"building": "x"}}, "filters.building"),
        ({"query": "eduroam", "filters": []}, "filters"),
        ({"query": "eduroam", "filters": {"min_priority": 9}}, "filters.min_priority"),
        (
            {"query": "eduroam", "filters": {"min_priority": "3"}},
            "filters.min_priority",
        ),
        ({"query": "eduroam", "filters": {"department": ""}}, "filters.department"),
        ({"query": "eduroam", "filters": {"department": [1]}}, "filters.department"),
        ({"query": "eduroam", "config": {"max_results": 0}}, "config.max_results"),
        ({"query": "eduroam", "config": {"max_results": 2.5}}, "config.max_results"),
        ({"query": "eduroam", "config": {"max_results": True}}, "config.max_results"),
        (
            {"query": "eduroam", "config": {"similarity_threshold": 2}},
            "config.similarity_threshold",
        ),
        (
            {"query": "eduroam", "config": {"priority_weight": -0.1}},
            "config.priority_weight",
        ),
        (
            {"query": "eduroam", "config": {"similarity_weight": "high"}},
            "config.similarity_weight",
        ),
        ({"query": "eduroam", "config": {"unknown": 1}}, "config.unknown"),
        ({"query": "edu\u0000roam"}, "query"),
        ({"query": "eduroam", "filters": {"campus": "a\u0000b"}}, "filters.campus"),
        (
            {"query": "eduroam", "config": {"preferred_department": "x\u0000"}},
            "config.preferred_department",
        ),
    ],
)
def test_validation_errors(client: FlaskClient, body: dict, field: str) -> None:
    response = client.post("/api/search", json=body)
    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert response.json["field"] == field
    assert response.json["request_id"]


def test_query_length_counts_after_trimming(client: FlaskClient) -> None:
    assert client.post("/api/search", json={"query": "   abc   "}).status_code == 200
    assert client.post("/api/search", json={"query": "x" * 1000}).status_code == 200


def test_transport_errors_are_json(client: FlaskClient) -> None:
    response = client.post(
        "/api/search", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400 and response.json["error"] == "malformed_json"
    response = client.post(
        "/api/search",
        data="query=eduroam",
        content_type="application/x-www-form-urlencoded",
    )
    assert (
        response.status_code == 415
        and response.json["error"] == "unsupported_media_type"
    )
    response = client.post(
        "/api/search",
        data=json.dumps({"query": "a" * 70000}),  # over MAX_BODY_BYTES (64 KiB)
        content_type="application/json",
    )
    assert response.status_code == 413 and response.json["error"] == "payload_too_large"
    response = client.post(
        "/api/search", data="[1, 2]", content_type="application/json"
    )
    assert response.status_code == 400
    response = client.get("/api/search")
    assert response.status_code == 405 and response.is_json
    response = client.get("/nope")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_no_internal_detail_leaks(client: FlaskClient) -> None:
    response = client.post(
        "/api/search", data=b"\xff\xfe", content_type="application/json"
    )
    assert response.status_code == 400
    assert "Traceback" not in response.get_data(as_text=True)


def test_auth_missing_wrong_revoked(
    make_client: Callable[..., FlaskClient], postgres: Postgres, main_db: str
) -> None:
    closed = make_client(ANONYMOUS_ENABLED="false")
    response = closed.post("/api/search", json=GOOD)
    assert (
        response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    )
    assert response.json["error"] == "unauthorized"
    response = closed.post(
        "/api/search", json=GOOD, headers=bearer("vs_not-a-real-key")
    )
    assert response.status_code == 401
    response = closed.post(
        "/api/search", json=GOOD, headers={"Authorization": "Basic Zm9vOmJhcg=="}
    )
    assert response.status_code == 401
    with owner_connection(postgres, main_db) as conn:
        key_id, key = create_key(conn, "staff", "revocation-test")
        stored = conn.execute(
            "SELECT key_hash, key_prefix FROM api_keys WHERE id = %s", (key_id,)
        ).fetchone()
    assert stored is not None and key not in stored and stored[0] != key
    assert closed.post("/api/search", json=GOOD, headers=bearer(key)).status_code == 200
    with owner_connection(postgres, main_db) as conn:
        assert revoke_key(conn, key_id)
        last_used = conn.execute(
            "SELECT last_used_at FROM api_keys WHERE id = %s", (key_id,)
        ).fetchone()
    assert last_used is not None and last_used[0] is not None
    response = closed.post("/api/search", json=GOOD, headers=bearer(key))
    assert response.status_code == 401


def test_wrong_key_never_falls_back_to_anonymous(client: FlaskClient) -> None:
    assert (
        client.post("/api/search", json=GOOD, headers=bearer("vs_wrong")).status_code
        == 401
    )


def test_rate_limit_429_and_headers(make_client: Callable[..., FlaskClient]) -> None:
    limited = make_client(ANONYMOUS_RATE_LIMIT="3")
    statuses = []
    for _ in range(4):
        response = limited.post("/api/search", json=GOOD)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.json["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in response.headers


def test_rate_limits_are_per_key(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    limited = make_client(ANONYMOUS_RATE_LIMIT="1")
    assert limited.post("/api/search", json=GOOD).status_code == 200
    assert limited.post("/api/search", json=GOOD).status_code == 429
    response = limited.post(
        "/api/search", json=GOOD, headers=bearer(api_keys["student"])
    )
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "30"


def test_cache_hit_and_invalidation(
    client: FlaskClient, app: Flask, api_keys: dict[str, str]
) -> None:
    body = {"query": "library opening hours and loans"}
    first = search(client, body, api_keys["staff"]).json
    second = search(client, body, api_keys["staff"]).json
    assert first["from_cache"] is False and second["from_cache"] is True
    assert second["results"] == first["results"]
    # a different role never shares a cached response
    assert search(client, body, api_keys["academic"]).json["from_cache"] is False
    # ingestion bumps the generation: the cached response is not served again
    app.extensions["vector_search"].cache.bump_generation()
    assert search(client, body, api_keys["staff"]).json["from_cache"] is False


def test_cache_key_uses_the_capped_max_results(
    client: FlaskClient,
    app: Flask,
    api_keys: dict[str, str],
    postgres: Postgres,
    main_db: str,
) -> None:
    """A student's searches run with at most 20 results: two students asking
    for 50 and 100 run the same search and share one cache entry in Redis;
    asking for fewer is another entry."""
    with owner_connection(postgres, main_db) as conn:
        _, other_student = create_key(conn, "student", "test-student-2")
    services = app.extensions["vector_search"]
    pattern = f"{services.settings.cache_namespace}:search:*"

    def entries() -> int:
        return len(list(services.cache.client.scan_iter(match=pattern)))

    def ask(max_results: int, key: str) -> dict:
        body = {
            "query": "where can I print on campus",
            "config": {"max_results": max_results, "similarity_threshold": -1},
        }
        return search(client, body, key).json

    assert entries() == 0
    first = ask(50, api_keys["student"])
    assert first["from_cache"] is False and first["max_results"] == 20
    assert entries() == 1
    second = ask(100, other_student)
    assert second["from_cache"] is True and second["max_results"] == 20
    assert second["results"] == first["results"]
    assert ask(20, other_student)["from_cache"] is True
    assert entries() == 1
    fewer = ask(5, api_keys["student"])
    assert fewer["from_cache"] is False and fewer["max_results"] == 5
    assert fewer["count"] <= 5
    assert entries() == 2


def test_admin_cache_clear(
    client: FlaskClient, app: Flask, api_keys: dict[str, str], redis_server
) -> None:
    import redis

    foreign = redis.Redis.from_url(redis_server.url)
    foreign.set("another-service:key", "keep me")
    body = {"query": "student accommodation rent"}
    search(client, body, api_keys["staff"])
    assert search(client, body, api_keys["staff"]).json["from_cache"] is True
    assert client.delete("/api/admin/cache").status_code == 401
    assert (
        client.delete(
            "/api/admin/cache", headers=bearer(api_keys["academic"])
        ).status_code
        == 403
    )
    response = client.delete("/api/admin/cache", headers=bearer(api_keys["admin"]))
    assert response.status_code == 200 and response.json["deleted_keys"] >= 1
    assert search(client, body, api_keys["staff"]).json["from_cache"] is False
    legacy = client.post("/api/admin/clear_cache", headers=bearer(api_keys["admin"]))
    assert legacy.status_code == 200
    assert foreign.get("another-service:key") == b"keep me"
    foreign.close()


def test_stats(client: FlaskClient, api_keys: dict[str, str]) -> None:
    search(client, GOOD, api_keys["staff"])
    assert client.get("/api/stats").status_code == 401
    response = client.get("/api/stats", headers=bearer(api_keys["staff"]))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["totals"]["documents"] == 11  # all but the clearance-4 runbook
    departments = {row["department"] for row in body["documents"]}
    assert {"IT Services", "Library", "Estates"} <= departments
    assert "query_performance" not in body  # internals: admin only
    body = client.get("/api/stats", headers=bearer(api_keys["admin"])).json
    assert body["totals"]["documents"] == 12
    assert body["query_performance"]["available"] is True
    assert body["cache"]["available"] is True
    assert body["pool"]["pool_max"] == 4


def test_health_endpoints(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "healthy" and body["version"] == __version__
    assert set(body["components"]) == {"database", "cache", "embedder"}
    assert all(
        c["healthy"] and c["latency_ms"] >= 0 for c in body["components"].values()
    )
    live = client.get("/health/live")
    assert live.status_code == 200 and live.json == {
        "status": "alive",
        "version": __version__,
    }
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json["status"] == "ready"


def test_health_is_cached(make_client: Callable[..., FlaskClient]) -> None:
    cached = make_client(HEALTH_CACHE_TTL="60")
    assert cached.get("/health").json["cached"] is False
    assert cached.get("/health").json["cached"] is True


def test_metrics(client: FlaskClient, api_keys: dict[str, str]) -> None:
    search(client, {"query": "metrics probe query"}, api_keys["staff"])
    search(client, {"query": "metrics probe query"}, api_keys["staff"])
    client.get("/health")
    text = client.get("/metrics").get_data(as_text=True)
    assert f'vector_search_build_info{{version="{__version__}"}} 1.0' in text
    assert re.search(
        r'vector_search_http_requests_total\{endpoint="/api/search",method="POST",status="200"\} [1-9]',
        text,
    )
    assert "vector_search_http_request_duration_seconds_bucket" in text
    assert "vector_search_search_duration_seconds_count" in text
    assert "vector_search_embed_duration_seconds_count" in text
    assert "vector_search_db_query_duration_seconds_count" in text
    assert re.search(
        r'vector_search_cache_requests_total\{cache="search",result="hit"\} [1-9]', text
    )
    assert re.search(
        r'vector_search_cache_requests_total\{cache="search",result="miss"\} [1-9]',
        text,
    )
    assert "vector_search_embedder_errors_total" in text
    assert "vector_search_db_pool_max 4.0" in text
    assert 'vector_search_dependency_up{component="database"} 1.0' in text


def test_openapi_matches_routes(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.") and doc["info"]["version"] == __version__
    documented = {
        (path, method.upper()) for path, ops in doc["paths"].items() for method in ops
    }
    implemented = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert documented == implemented
    schema = doc["components"]["schemas"]["SearchRequest"]
    from vector_search.web.validation import CONFIG_FIELDS, FILTER_FIELDS, TOP_FIELDS

    assert set(schema["properties"]) == TOP_FIELDS
    assert set(schema["properties"]["filters"]["properties"]) == FILTER_FIELDS
    assert set(schema["properties"]["config"]["properties"]) == CONFIG_FIELDS


def test_request_id_echoed(client: FlaskClient) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get(
        "/health/live", headers={"X-Request-ID": "bad id with spaces"}
    )
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
