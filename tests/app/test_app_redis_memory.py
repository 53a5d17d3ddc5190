"""Redis full: rate-limit counters survive, the cache steps aside.

A real redis-server with the redis role's own eviction policy and the app's
ACL (roles/redis/defaults), a small maxmemory, and filler written by an
operator until Redis refuses writes. Under ``allkeys-lru`` (the old default)
the filler evicts the counters and a client over its limit is served again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import yaml
from flask.testing import FlaskClient
from vs_services import REPO, RedisServer, metric_value, start_redis

ROLE = yaml.safe_load((REPO / "roles" / "redis" / "defaults" / "main.yml").read_text())
LIMIT = 5
CLIENT = {"REMOTE_ADDR": "198.51.100.23"}
_queries = itertools.count(1)


@pytest.fixture
def full_redis() -> Iterator[tuple[RedisServer, redis.Redis]]:
    """An own redis-server as the role configures it, with 4 MiB of headroom."""
    server = start_redis()
    admin = redis.Redis(port=server.port)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + 4 * 1024 * 1024)
    admin.config_set("maxmemory-policy", ROLE["redis_maxmemory_policy"])
    rules = ["on", ">acl-test-password", "resetkeys", "-@all"]
    rules += [f"~{pattern}" for pattern in ROLE["redis_app_key_patterns"]]
    admin.execute_command("ACL", "SETUSER", "vs_app_test", *rules)
    for command in ROLE["redis_app_commands"]:
        try:
            admin.execute_command("ACL", "SETUSER", "vs_app_test", f"+{command}")
        except redis.ResponseError as exc:  # newer than this Redis (client|setinfo)
            assert "Unknown command" in str(exc), exc
    yield server, admin
    admin.close()
    server.stop()


def fill(admin: redis.Redis, up_to: float) -> None:
    """Operator writes values until Redis uses ``up_to`` of maxmemory or refuses
    even a small one (noeviction); an evicting policy makes room by dropping keys."""
    limit = int(admin.config_get("maxmemory")["maxmemory"])
    n = 0
    for size in (65536, 4096, 128):
        value = b"x" * size
        for _ in range(3 * limit // size):
            if int(admin.info("memory")["used_memory"]) >= up_to * limit:
                return
            try:
                admin.set(f"filler:{n}", value)
            except redis.exceptions.OutOfMemoryError:
                break
            n += 1
    if up_to >= 1.0:
        # used_memory drops by up to ~0.5 MiB once the filler's client buffers
        # are freed: put the limit
        # clearly below it, so Redis is full for good (or, evicting, makes room)
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used - 2 * 1024 * 1024)
        try:
            admin.set("filler:last", b"x")  # an evicting policy evicts now
        except redis.exceptions.OutOfMemoryError:
            pass  # noeviction: full


def app_client(
    make_client: Callable[..., FlaskClient], server: RedisServer, **settings: str
) -> FlaskClient:
    return make_client(
        REDIS_URL=f"redis://vs_app_test@127.0.0.1:{server.port}/0",
        REDIS_PASSWORD="acl-test-password",
        CACHE_NAMESPACE="vs",
        ANONYMOUS_RATE_LIMIT=str(LIMIT),
        **settings,
    )


def search(client: FlaskClient, query: str | None = None) -> Any:
    body = {"query": query or f"library opening hours {next(_queries)}"}
    return client.post("/api/search", json=body, environ_base=CLIENT)


def test_counters_survive_a_full_redis(
    make_client: Callable[..., FlaskClient],
    full_redis: tuple[RedisServer, redis.Redis],
) -> None:
    server, admin = full_redis
    client = app_client(make_client, server)
    assert [search(client).status_code for _ in range(LIMIT)] == [200] * LIMIT
    assert search(client).status_code == 429
    counters = [k for k in admin.scan_iter(match="LIMITS*")]
    assert counters, "the limiter counted in Redis, not in its fallback"

    fill(admin, up_to=1.0)
    assert all(admin.exists(k) for k in counters), "a rate-limit counter was evicted"
    # the client over its limit stays limited; others are still served
    assert search(client).status_code == 429
    other = client.post(
        "/api/search",
        json={"query": "eduroam wifi"},
        environ_base={"REMOTE_ADDR": "198.51.100.24"},
    )
    assert other.status_code == 200


def test_cache_stays_under_its_ceiling(
    make_client: Callable[..., FlaskClient],
    full_redis: tuple[RedisServer, redis.Redis],
) -> None:
    """Above CACHE_MEMORY_CEILING the cache writes nothing (checked with INFO,
    which the app's ACL allows); searches are answered uncached and the
    limiter still counts."""
    server, admin = full_redis
    fill(admin, up_to=0.85)
    client = app_client(make_client, server, CACHE_MEMORY_CEILING="0.8")
    first = search(client, "eduroam wifi")
    again = search(client, "eduroam wifi")
    assert first.status_code == again.status_code == 200
    assert again.json["from_cache"] is False
    assert (
        metric_value(
            client, "vector_search_cache_writes_skipped_total", reason="memory_ceiling"
        )
        or 0
    ) >= 2
    assert not list(admin.scan_iter(match="vs:search:*"))
    assert list(admin.scan_iter(match="LIMITS*")), "the limiter still counts in Redis"


def test_a_write_redis_refuses_is_skipped_not_an_outage(
    make_client: Callable[..., FlaskClient],
    full_redis: tuple[RedisServer, redis.Redis],
) -> None:
    """With no ceiling (1.0) the cache meets Redis's OOM refusal itself: the
    search is answered, the refusal counted, and reads go on (no back-off)."""
    server, admin = full_redis
    client = app_client(make_client, server, CACHE_MEMORY_CEILING="1.0")
    cached = search(client, "eduroam wifi")
    assert search(client, "eduroam wifi").json["from_cache"] is True
    fill(admin, up_to=1.0)
    response = search(client, "library loans")
    assert response.status_code == 200 and response.json["from_cache"] is False
    assert (
        metric_value(
            client, "vector_search_cache_writes_skipped_total", reason="redis_full"
        )
        or 0
    ) >= 1
    assert (
        metric_value(client, "vector_search_cache_writes_skipped_total", reason="error")
        == 0
    )
    # Redis is full, not failing: cached answers are still read
    repeat = search(client, "eduroam wifi")
    assert repeat.json["from_cache"] is True
    assert repeat.json["results"] == cached.json["results"]
