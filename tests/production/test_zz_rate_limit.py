"""Runs last: an anonymous burst rate-limits this client's address for a while."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .conftest import Target


def test_anonymous_burst_gets_429_with_retry_after(target: Target) -> None:
    with target.client() as client:

        def search(n: int) -> tuple[int, dict[str, str]]:
            response = client.post(
                "/api/search", json={"query": f"rate limit probe {n}"}
            )
            return response.status_code, dict(response.headers)

        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(search, range(40)))
    statuses = [status for status, _ in results]
    assert 429 in statuses, statuses
    assert 503 not in statuses and 500 not in statuses, statuses
    # Whichever limiter refused (nginx's per-address zone or the app's), the
    # client gets the same JSON error and a Retry-After.
    for headers in (headers for status, headers in results if status == 429):
        lowered = {k.lower(): v for k, v in headers.items()}
        assert "retry-after" in lowered, headers
        assert lowered["content-type"].startswith("application/json"), headers
