"""Failed authentication is limited per client address before any key lookup
(issue 14, item 4), on real PostgreSQL (lookups counted by pg_stat_statements)
and real Redis.

Authentication runs before flask-limiter's hook, so the role limits never saw
a request with a bogus key: every random token cost a database lookup. Now a
token that cannot be a key costs none, and an address with AUTH_FAILURE_LIMIT
failures in AUTH_FAILURE_WINDOW gets 429 + Retry-After before any lookup.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import yaml
from flask.testing import FlaskClient
from vector_search.keys import create_key, generate_key
from vector_search.web.app import create_app
from vs_services import (
    REPO,
    Postgres,
    RedisServer,
    SettingsFactory,
    bearer,
    free_port,
    metric_value,
    owner_connection,
    statement_calls,
)

QUERY = {"query": "library opening hours"}
ATTACKER = "198.51.100.7"
NEIGHBOUR = "198.51.100.8"
LIMIT = 5


@pytest.fixture
def db(fresh_db: tuple[str, SettingsFactory], postgres: Postgres) -> Iterator[Any]:
    name, factory = fresh_db
    apps: list[Any] = []

    def client(**overrides: str) -> FlaskClient:
        settings = {
            "ANONYMOUS_ENABLED": "false",
            "AUTH_FAILURE_LIMIT": str(LIMIT),
            "AUTH_FAILURE_WINDOW": "60",
            **overrides,
        }
        app = create_app(factory(**settings))
        apps.append(app)
        return app.test_client()

    def key(role: str = "admin") -> str:
        with owner_connection(postgres, name) as conn:
            return create_key(conn, role, f"auth-{role}")[1]

    def lookups() -> int:
        return statement_calls(postgres, name, "api_key_lookup")

    yield type("Db", (), {"client": client, "key": key, "lookups": lookups})
    for app in apps:
        app.extensions["vector_search"].close()


def post(client: FlaskClient, token: str | None, address: str) -> Any:
    headers = bearer(token) if token is not None else {}
    return client.post(
        "/api/search",
        json=QUERY,
        headers=headers,
        environ_base={"REMOTE_ADDR": address},
    )


def test_random_keys_are_cut_off_without_lookups(db: Any) -> None:
    client = db.client()
    valid = db.key()
    before = db.lookups()
    statuses = [
        post(client, generate_key(), ATTACKER).status_code for _ in range(LIMIT)
    ]
    assert statuses == [401] * LIMIT
    assert db.lookups() - before == LIMIT  # one lookup per well-formed guess

    # From now on: 429 with Retry-After, and no database work at all.
    after_limit = db.lookups()
    for _ in range(30):
        response = post(client, generate_key(), ATTACKER)
        assert response.status_code == 429
        assert response.json["error"] == "rate_limited"
        assert 0 < int(response.headers["Retry-After"]) <= 60
    assert db.lookups() == after_limit

    # Another address is not affected, with a bad key or a good one.
    assert post(client, generate_key(), NEIGHBOUR).status_code == 401
    assert post(client, valid, NEIGHBOUR).status_code == 200
    # The blocked address is refused before the lookup that could tell a valid
    # key from a guess, so its valid keys wait too (as GitHub's API does).
    assert post(client, valid, ATTACKER).status_code == 429
    assert db.lookups() == after_limit + 2

    assert metric_value(
        client, "vector_search_auth_failures_total", reason="unknown"
    ) == float(LIMIT + 1)
    assert metric_value(client, "vector_search_auth_blocked_total") == 31.0


def test_malformed_tokens_cost_no_lookup_and_count(db: Any) -> None:
    client = db.client()
    before = db.lookups()
    for token in (
        "not-a-key",
        "vs_short",
        "xx_" + secrets.token_urlsafe(32),  # wrong prefix
        "vs_" + "!" * 43,  # wrong alphabet
        generate_key() + "x",  # too long
    ):
        response = post(client, token, ATTACKER)
        assert response.status_code == 401, token
        assert "vs_ and 43 characters" in response.json["message"]
    assert db.lookups() == before
    # they count as failures: the address is at its limit now
    assert post(client, generate_key(), ATTACKER).status_code == 429
    assert db.lookups() == before
    assert metric_value(
        client, "vector_search_auth_failures_total", reason="malformed"
    ) == float(LIMIT)


def test_valid_keys_never_count(db: Any) -> None:
    client = db.client()
    valid = db.key("admin")
    for _ in range(3 * LIMIT):
        assert post(client, valid, ATTACKER).status_code == 200
    # a few failures later the address still has its whole allowance
    for _ in range(LIMIT - 1):
        assert post(client, generate_key(), ATTACKER).status_code == 401
    assert post(client, valid, ATTACKER).status_code == 200


def test_requests_without_a_key_are_not_counted(db: Any) -> None:
    open_app = db.client(ANONYMOUS_ENABLED="true")
    for _ in range(LIMIT):
        assert post(open_app, generate_key(), ATTACKER).status_code == 401
    # anonymous searches cost no key lookup: they keep their own (per-IP) limit
    assert post(open_app, None, ATTACKER).status_code == 200


def test_the_block_is_shared_by_every_instance_and_ends_with_the_window(
    db: Any,
) -> None:
    namespace = f"vs-auth-{secrets.token_hex(4)}"
    first = db.client(CACHE_NAMESPACE=namespace, AUTH_FAILURE_WINDOW="3")
    second = db.client(CACHE_NAMESPACE=namespace, AUTH_FAILURE_WINDOW="3")
    for _ in range(LIMIT):
        assert post(first, generate_key(), ATTACKER).status_code == 401
    before = db.lookups()
    assert post(second, generate_key(), ATTACKER).status_code == 429
    assert db.lookups() == before
    time.sleep(3.2)
    assert post(second, generate_key(), ATTACKER).status_code == 401


def test_redis_down_falls_back_to_a_per_process_count(db: Any) -> None:
    client = db.client(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    valid = db.key()
    for _ in range(LIMIT):
        assert post(client, generate_key(), ATTACKER).status_code == 401
    before = db.lookups()
    for _ in range(10):
        assert post(client, generate_key(), ATTACKER).status_code == 429
    assert db.lookups() == before
    assert post(client, valid, NEIGHBOUR).status_code == 200


def test_ipv6_clients_are_counted_per_64(db: Any) -> None:
    client = db.client()
    for n in range(LIMIT):
        assert (
            post(client, generate_key(), f"2001:db8:1:2::{n + 1:x}").status_code == 401
        )
    assert post(client, generate_key(), "2001:db8:1:2:ffff::9").status_code == 429
    assert post(client, generate_key(), "2001:db8:1:3::1").status_code == 401


def test_limit_zero_turns_the_counter_off(db: Any) -> None:
    client = db.client(AUTH_FAILURE_LIMIT="0")
    before = db.lookups()
    for _ in range(LIMIT + 3):
        assert post(client, generate_key(), ATTACKER).status_code == 401
    assert db.lookups() - before == LIMIT + 3


def test_counts_work_under_the_deployed_redis_acl(
    db: Any, redis_server: RedisServer
) -> None:
    """The app's Redis user may run only the redis role's command list on its
    key patterns (no MULTI): the shared count must work with exactly that."""
    defaults = yaml.safe_load(
        (REPO / "roles" / "redis" / "defaults" / "main.yml").read_text()
    )
    rules = ["on", ">acl-test-password", "resetkeys", "-@all"]
    rules += [f"~{pattern}" for pattern in defaults["redis_app_key_patterns"]]
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("ACL", "SETUSER", "vs_acl_test", *rules)
    for command in defaults["redis_app_commands"]:
        try:
            admin.execute_command("ACL", "SETUSER", "vs_acl_test", f"+{command}")
        except (
            redis.ResponseError
        ) as exc:  # newer than this test Redis (client|setinfo)
            assert "Unknown command" in str(exc), exc
    try:
        client = db.client(
            REDIS_URL=f"redis://vs_acl_test@127.0.0.1:{redis_server.port}/0",
            REDIS_PASSWORD="acl-test-password",
            CACHE_NAMESPACE="vs",
        )
        for _ in range(LIMIT):
            assert post(client, generate_key(), "198.51.100.77").status_code == 401
        # counted in Redis (not in the per-process fallback), with its window
        assert int(admin.get("vs:authfail:198.51.100.77") or 0) == LIMIT
        assert 0 < admin.ttl("vs:authfail:198.51.100.77") <= 60
        before = db.lookups()
        assert post(client, generate_key(), "198.51.100.77").status_code == 429
        assert db.lookups() == before
    finally:
        admin.delete("vs:authfail:198.51.100.77")
        admin.execute_command("ACL", "DELUSER", "vs_acl_test")
        admin.close()
