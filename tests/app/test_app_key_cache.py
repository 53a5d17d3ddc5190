"""The in-process API key cache (API_KEY_CACHE_SECONDS, issue 15): successful
lookups reused for a few seconds, expiry still checked on every request,
failures never cached. Real PostgreSQL and Redis through the app."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from vector_search.key_cache import KeyCache
from vector_search.keys import KeyLookup, create_key, generate_key, hash_key, revoke_key
from vector_search.web.app import create_app
from vs_services import (
    Postgres,
    SettingsFactory,
    bearer,
    metric_value,
    owner_connection,
    statement_calls,
)

QUERY = {"query": "library opening hours"}


def post(client: FlaskClient, key: str) -> Any:
    return client.post("/api/search", json=QUERY, headers=bearer(key))


def lookups(postgres: Postgres, name: str) -> int:
    return statement_calls(postgres, name, "api_key_lookup(")


def cache_count(client: FlaskClient, result: str) -> float | None:
    return metric_value(client, "vector_search_api_key_cache_total", result=result)


def app_for(factory: SettingsFactory, **overrides: str) -> Flask:
    return create_app(factory(**overrides))


def test_a_revoked_key_is_refused_once_the_ttl_has_passed(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    app = app_for(factory, API_KEY_CACHE_SECONDS="1")
    try:
        client = app.test_client()
        with owner_connection(postgres, name) as conn:
            key_id, key = create_key(conn, "staff", "revoked-within-ttl")
        before = lookups(postgres, name)
        assert post(client, key).status_code == 200
        assert post(client, key).status_code == 200
        assert lookups(postgres, name) == before + 1  # the second one was a hit
        assert cache_count(client, "hit") == 1 and cache_count(client, "miss") == 1
        with owner_connection(postgres, name) as conn:
            assert revoke_key(conn, key_id)
        # within the TTL this instance still accepts it: that is the documented price
        assert post(client, key).status_code == 200
        time.sleep(1.1)
        response = post(client, key)
        assert response.status_code == 401
        assert response.json["message"] == "invalid or revoked API key"
        assert post(client, key).status_code == 401  # and the refusal is not cached
        assert lookups(postgres, name) == before + 3
    finally:
        app.extensions["vector_search"].close()


def test_a_cached_key_is_refused_at_once_when_it_expires(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    app = app_for(factory, API_KEY_CACHE_SECONDS="300")
    try:
        client = app.test_client()
        with owner_connection(postgres, name) as conn:
            _, key = create_key(
                conn,
                "staff",
                "expires-while-cached",
                expires_at=datetime.now(UTC) + timedelta(seconds=2),
            )
        assert post(client, key).status_code == 200
        assert post(client, key).status_code == 200
        assert cache_count(client, "hit") == 1
        time.sleep(2.1)
        response = post(client, key)
        assert response.status_code == 401
        assert response.json["message"] == "expired: ask for a new key"
    finally:
        app.extensions["vector_search"].close()


def test_a_wrong_key_is_never_cached_so_a_new_key_works_at_once(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    app = app_for(factory, API_KEY_CACHE_SECONDS="300")
    try:
        client = app.test_client()
        key = generate_key()
        before = lookups(postgres, name)
        for _ in range(3):
            assert post(client, key).status_code == 401
        assert lookups(postgres, name) == before + 3
        assert len(app.extensions["vector_search"].key_cache) == 0
        # the same key created now (as keys create stores it): accepted on the next request
        with owner_connection(postgres, name) as conn:
            conn.execute(
                "INSERT INTO api_keys (key_prefix, key_hash, pepper_id, role, owner) "
                "VALUES (%s, %s, 'none', 'staff', 'created-after-a-refusal')",
                (key[:10], hash_key(key)),
            )
        assert post(client, key).status_code == 200
    finally:
        app.extensions["vector_search"].close()


def test_zero_turns_the_cache_off(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    app = app_for(factory, API_KEY_CACHE_SECONDS="0")
    try:
        client = app.test_client()
        with owner_connection(postgres, name) as conn:
            _, key = create_key(conn, "staff", "no-cache")
        before = lookups(postgres, name)
        for _ in range(3):
            assert post(client, key).status_code == 200
        assert lookups(postgres, name) == before + 3
        assert cache_count(client, "hit") == 0 and cache_count(client, "miss") == 0
    finally:
        app.extensions["vector_search"].close()


def test_entries_are_bounded_and_keyed_by_hash() -> None:
    cache = KeyCache(60, max_entries=2)
    keys = [generate_key() for _ in range(3)]
    looked_up: list[str] = []

    def lookup(key: str) -> KeyLookup:
        looked_up.append(key)
        return KeyLookup("active", len(looked_up), "staff", "someone")

    for key in keys:
        cache.authenticate(key, "pepper", lambda key=key: lookup(key))
    assert len(cache) == 2
    stored = list(cache._entries)
    assert stored == [hash_key(k, "pepper") for k in keys[1:]]
    assert not any(k in s for k in keys for s in stored)
    # the oldest went first: asking for it again looks it up, the newest is a hit
    cache.authenticate(keys[0], "pepper", lambda: lookup(keys[0]))
    cache.authenticate(keys[2], "pepper", lambda: lookup(keys[2]))
    assert looked_up == [*keys, keys[0]]
