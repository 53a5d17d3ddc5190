"""Degraded behaviour: Redis stopped, embedder stopped, database down."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from vs_services import bearer, free_port, start_redis

GOOD = {"query": "eduroam wifi"}


def test_redis_stopped(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    own_redis = start_redis()
    try:
        client = make_client(REDIS_URL=own_redis.url, ANONYMOUS_RATE_LIMIT="3")
        assert client.post("/api/search", json=GOOD).status_code == 200
        assert client.post("/api/search", json=GOOD).json["from_cache"] is True
        own_redis.stop()
        # searches still work, uncached
        response = client.post(
            "/api/search", json=GOOD, headers=bearer(api_keys["staff"])
        )
        assert response.status_code == 200
        assert response.json["from_cache"] is False and response.json["count"] >= 1
        # limits fall back to a per-process limiter (2 anonymous requests were counted in Redis)
        statuses = [client.post("/api/search", json=GOOD).status_code for _ in range(4)]
        assert statuses[-1] == 429
        assert 200 in statuses
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json["status"] == "degraded"
        assert health.json["components"]["cache"]["healthy"] is False
        assert health.json["components"]["database"]["healthy"] is True
        assert client.get("/health/ready").status_code == 200
        admin = client.delete("/api/admin/cache", headers=bearer(api_keys["admin"]))
        assert admin.status_code == 503 and "Retry-After" in admin.headers
        stats = client.get("/api/stats", headers=bearer(api_keys["admin"]))
        assert stats.status_code == 200 and stats.json["cache"]["available"] is False
    finally:
        own_redis.stop()


def test_embedder_stopped(make_client: Callable[..., FlaskClient]) -> None:
    healthy = make_client()
    namespace_client = healthy.application.extensions[
        "vector_search"
    ].settings.cache_namespace
    warm = {"query": "warm query about library loans"}
    assert healthy.post("/api/search", json=warm).status_code == 200
    dead_url = f"http://127.0.0.1:{free_port()}"
    broken = make_client(OLLAMA_URL=dead_url, CACHE_NAMESPACE=namespace_client)
    # a cached query embedding still serves (the response cache is bypassed by a new config)
    response = broken.post("/api/search", json={**warm, "config": {"max_results": 3}})
    assert response.status_code == 200, response.json
    assert response.json["from_cache"] is False
    response = broken.post(
        "/api/search", json={"query": "a query never embedded before"}
    )
    assert response.status_code == 503
    assert response.json["error"] == "service_unavailable"
    assert "embedder" in response.json["message"]
    assert int(response.headers["Retry-After"]) > 0
    health = broken.get("/health")
    assert health.status_code == 503
    assert health.json["components"]["embedder"]["healthy"] is False
    metrics = broken.get("/metrics").get_data(as_text=True)
    assert "vector_search_embedder_errors_total 0.0" not in metrics


def test_database_down(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    client = make_client(DATABASE_PORT=str(free_port()), DATABASE_POOL_TIMEOUT="1")
    response = client.post("/api/search", json=GOOD)
    assert response.status_code == 503
    assert response.json["error"] == "service_unavailable"
    assert "database" in response.json["message"]
    assert "Retry-After" in response.headers
    response = client.post("/api/search", json=GOOD, headers=bearer(api_keys["staff"]))
    assert response.status_code == 503
    assert client.get("/health/ready").status_code == 503
    health = client.get("/health")
    assert (
        health.status_code == 503
        and health.json["components"]["database"]["healthy"] is False
    )
    assert client.get("/health/live").status_code == 200
