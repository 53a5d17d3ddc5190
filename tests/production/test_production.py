"""The seed's ProductionTestSuite as pytest, against a real deployment.

Order matters only once: the anonymous burst (which rate-limits this client's
address for a while) runs last, in test_zz_rate_limit.py.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import Target

SEED_QUERIES = [
    "password reset instructions",
    "network connectivity troubleshooting",
    "email configuration setup",
    "student accommodation WiFi",
]


def _key(target: Target, *roles: str) -> str:
    for role in roles:
        if target.keys.get(role):
            return target.keys[role][0]
    pytest.skip(f"needs a key of role {' or '.join(roles)} in --keys-file")


def test_public_health_is_healthy_and_shows_no_internals(target: Target) -> None:
    """From outside the monitoring networks /health gives the status (and version)
    only: no schema, model or dependency error text."""
    with target.client() as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    if "components" in body:
        pytest.skip("this client is in HEALTH_DETAIL_NETWORKS: it gets the detail")
    assert set(body) <= {"status", "version", "timestamp"}, body


def test_health_reports_every_component_healthy(target: Target) -> None:
    """The detail goes to the monitoring networks or an admin key."""
    key = _key(target, "admin")
    with target.client(headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    for component in ("database", "cache", "embedder"):
        assert body["components"][component]["healthy"] is True, body


def test_metrics_are_not_public(target: Target) -> None:
    with target.client() as client:
        response = client.get("/metrics")
    assert response.status_code in (403, 404), response.status_code


@pytest.mark.parametrize("query", SEED_QUERIES)
def test_seed_queries_return_results(target: Target, query: str) -> None:
    key = _key(target, "staff", "student", "academic", "admin")
    with target.client(headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/api/search", json={"query": query})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] >= 1, body
    assert body["results"][0]["title"]
    assert isinstance(body["search_time"], (int, float))


def test_password_reset_ranks_first(target: Target) -> None:
    key = _key(target, "staff", "student")
    with target.client(headers={"Authorization": f"Bearer {key}"}) as client:
        body = client.post(
            "/api/search", json={"query": "how do I reset my university password?"}
        ).json()
    assert "password" in body["results"][0]["title"].lower(), body["results"][0]


def test_security_headers(target: Target) -> None:
    with target.client() as client:
        response = client.get("/health")
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert "max-age=" in headers.get("strict-transport-security", "")
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options", "").upper() in ("DENY", "SAMEORIGIN")
    assert "referrer-policy" in headers
    assert "x-request-id" in headers


def test_plain_http_redirects_to_https(target: Target) -> None:
    if not target.base_url.startswith("https://"):
        pytest.skip("deployment is not served over HTTPS")
    http_url = target.http_url
    try:
        response = httpx.get(http_url + "/health", follow_redirects=False, timeout=10)
    except httpx.HTTPError as exc:
        pytest.skip(f"plain HTTP not reachable at {http_url} ({exc})")
    assert response.status_code in (301, 308)
    assert response.headers["location"].startswith("https://")


def _handshake(target: Target, version: ssl.TLSVersion) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = version
    context.maximum_version = version
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname=target.host),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


def test_tls_versions(target: Target) -> None:
    if not target.base_url.startswith("https://"):
        pytest.skip("deployment is not served over HTTPS")
    assert _handshake(target, ssl.TLSVersion.TLSv1_2)
    assert _handshake(target, ssl.TLSVersion.TLSv1_3)
    assert not _handshake(target, ssl.TLSVersion.TLSv1)
    assert not _handshake(target, ssl.TLSVersion.TLSv1_1)


@pytest.mark.parametrize(
    ("header", "status"),
    [("Bearer vs_not-a-real-key", 401), ("Basic dXNlcjpwYXNz", 401), ("Bearer", 401)],
)
def test_auth_errors_are_json(target: Target, header: str, status: int) -> None:
    with target.client(headers={"Authorization": header}) as client:
        response = client.post("/api/search", json={"query": "library opening hours"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json()


def test_validation_errors_are_json(target: Target) -> None:
    key = _key(target, "staff", "student")
    with target.client(headers={"Authorization": f"Bearer {key}"}) as client:
        short = client.post("/api/search", json={"query": "a"})
        unknown = client.post(
            "/api/search", json={"query": "library", "colour": "blue"}
        )
        broken = client.post(
            "/api/search",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert (short.status_code, unknown.status_code, broken.status_code) == (
        400,
        400,
        400,
    )
    for response in (short, unknown, broken):
        assert "error" in response.json()


def test_concurrent_users_behind_one_address(target: Target) -> None:
    """Every client has its own key, all from this one address (a campus NAT)."""
    keys = target.all_keys()
    if len(keys) < target.clients:
        pytest.skip(f"needs {target.clients} keys in --keys-file, got {len(keys)}")
    queries = SEED_QUERIES + [
        "library opening hours",
        "eduroam wifi setup",
        "printing credit",
    ]

    def one_user(index: int) -> list[tuple[int, float]]:
        outcomes = []
        headers = {"Authorization": f"Bearer {keys[index]}"}
        with target.client(headers=headers) as client:
            for n in range(target.requests_per_client):
                started = time.perf_counter()
                try:
                    status = client.post(
                        "/api/search",
                        json={
                            "query": f"{queries[(index + n) % len(queries)]} {index}"
                        },
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append((status, time.perf_counter() - started))
        return outcomes

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=target.clients) as pool:
        results = [
            o for user in pool.map(one_user, range(target.clients)) for o in user
        ]
    elapsed = time.perf_counter() - started
    latencies = sorted(t for _, t in results)
    failures = [s for s, _ in results if s != 200]
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"\nconcurrent load: {target.clients} clients x {target.requests_per_client} searches, "
        f"{len(results) / elapsed:.1f} req/s, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"failures {len(failures)}"
    )
    assert not failures, (
        f"{len(failures)} of {len(results)} failed: statuses {sorted(set(failures))}"
    )
