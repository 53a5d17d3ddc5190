"""API key pepper rotation, against real PostgreSQL through the app's runtime role.

During a rotation the app hashes with the new pepper (API_KEY_PEPPER) and
still accepts the previous ones (API_KEY_PEPPER_PREVIOUS); a key found with a
previous pepper is rehashed with the current one (API_KEY_REHASH), so the
previous pepper can be retired once `keys peppers` shows no key needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient
from vector_search.cli import main
from vector_search.config import ConfigError, load_settings
from vector_search.keys import (
    Peppers,
    create_key,
    hash_key,
    lookup_key,
    pepper_id,
    pepper_usage,
)
from vector_search.web.app import create_app
from vs_services import Postgres, SettingsFactory, bearer, owner_connection

OLD = "old-pepper-0123456789abcdef"
NEW = "new-pepper-fedcba9876543210"
QUERY = {"query": "library opening hours"}


@pytest.fixture
def db(fresh_db: tuple[str, SettingsFactory], postgres: Postgres) -> SimpleNamespace:
    name, factory = fresh_db

    @contextmanager
    def client(**overrides: str) -> Iterator[FlaskClient]:
        app = create_app(factory(ANONYMOUS_ENABLED="false", **overrides))
        try:
            yield app.test_client()
        finally:
            app.extensions["vector_search"].close()

    def row(key_id: int) -> tuple[str, str | None]:
        with owner_connection(postgres, name) as conn:
            found = conn.execute(
                "SELECT key_hash, pepper_id FROM api_keys WHERE id = %s", (key_id,)
            ).fetchone()
        assert found is not None
        return str(found[0]), found[1]

    def new_key(pepper: str, owner: str = "rotation") -> tuple[int, str]:
        with owner_connection(postgres, name) as conn:
            return create_key(conn, "staff", owner, pepper)

    return SimpleNamespace(name=name, client=client, row=row, new_key=new_key)


def status(client: FlaskClient, key: str) -> int:
    return client.post("/api/search", json=QUERY, headers=bearer(key)).status_code


def test_previous_pepper_accepted_then_rehashed_then_retired(db: Any) -> None:
    key_id, key = db.new_key(OLD)
    assert db.row(key_id) == (hash_key(key, OLD), pepper_id(OLD))

    # Before the rotation: only the old pepper.
    with db.client(API_KEY_PEPPER=OLD) as old_app:
        assert status(old_app, key) == 200

    # The new pepper deployed with the old one still accepted: the key works and
    # its hash is rewritten with the new pepper by the runtime role.
    with db.client(API_KEY_PEPPER=NEW, API_KEY_PEPPER_PREVIOUS=OLD) as rotating:
        assert status(rotating, key) == 200
        assert db.row(key_id) == (hash_key(key, NEW), pepper_id(NEW))
        assert status(rotating, key) == 200  # now found with the current pepper

    # The old pepper retired: the rehashed key keeps working, and an app that
    # only knows the old pepper no longer accepts it.
    with db.client(API_KEY_PEPPER=NEW) as rotated:
        assert status(rotated, key) == 200
    with db.client(API_KEY_PEPPER=OLD) as old_app:
        assert status(old_app, key) == 401


def test_key_not_used_during_rotation_needs_the_previous_pepper(db: Any) -> None:
    key_id, key = db.new_key(OLD)
    with db.client(API_KEY_PEPPER=NEW) as retired_too_early:
        assert status(retired_too_early, key) == 401
    assert db.row(key_id) == (hash_key(key, OLD), pepper_id(OLD))


def test_no_rehash_while_the_new_pepper_is_rolled_out(db: Any) -> None:
    """First rolling round: every instance learns the new pepper before any key is
    rehashed, so instances still on the old settings keep finding every key."""
    key_id, key = db.new_key(OLD)
    with db.client(
        API_KEY_PEPPER=NEW, API_KEY_PEPPER_PREVIOUS=OLD, API_KEY_REHASH="false"
    ) as first_round:
        assert status(first_round, key) == 200
    assert db.row(key_id) == (hash_key(key, OLD), pepper_id(OLD))
    with db.client(API_KEY_PEPPER=OLD) as not_yet_restarted:
        assert status(not_yet_restarted, key) == 200


def test_unpeppered_keys_move_to_a_first_pepper(db: Any) -> None:
    key_id, key = db.new_key("")
    assert db.row(key_id) == (hash_key(key), "none")
    with db.client(API_KEY_PEPPER=NEW, API_KEY_PEPPER_PREVIOUS="none") as rotating:
        assert status(rotating, key) == 200
    assert db.row(key_id) == (hash_key(key, NEW), pepper_id(NEW))
    with db.client() as unpeppered:
        assert status(unpeppered, key) == 401


def test_unknown_pepper_fingerprint_recorded_at_next_use(
    db: Any, postgres: Postgres
) -> None:
    """Keys created before fingerprints existed get theirs at their next use."""
    key_id, key = db.new_key(NEW)
    with owner_connection(postgres, db.name) as conn:
        conn.execute("UPDATE api_keys SET pepper_id = NULL WHERE id = %s", (key_id,))
        assert pepper_usage(conn, Peppers(NEW, (OLD,)))["unknown"]["key_ids"] == [
            key_id
        ]
    with db.client(API_KEY_PEPPER=NEW, API_KEY_PEPPER_PREVIOUS=OLD) as app:
        assert status(app, key) == 200
    assert db.row(key_id) == (hash_key(key, NEW), pepper_id(NEW))


def test_pepper_usage_and_revoked_keys(db: Any, postgres: Postgres) -> None:
    on_old = [db.new_key(OLD, f"old-{n}")[0] for n in range(2)]
    on_new = db.new_key(NEW, "new")[0]
    with owner_connection(postgres, db.name) as conn:
        conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s", (on_old[1],)
        )
        usage = pepper_usage(conn, Peppers(NEW, (OLD,)))
        assert usage["current"] == {"pepper_id": pepper_id(NEW), "active_keys": 1}
        assert usage["previous"] == [
            {"pepper_id": pepper_id(OLD), "active_keys": 1, "key_ids": [on_old[0]]}
        ]
        assert usage["unknown"] == {"active_keys": 0, "key_ids": []}
        assert usage["unaccepted"] == {"active_keys": 0, "key_ids": []}
        # Retired too early: OLD's key no longer works.
        retired = pepper_usage(conn, Peppers(NEW))
        assert retired["unaccepted"]["key_ids"] == [on_old[0]]
        assert retired["previous"] == [] and retired["unknown"]["key_ids"] == []
    assert on_new not in on_old


def test_concurrent_rehash_is_harmless(db: Any, postgres: Postgres) -> None:
    key_id, key = db.new_key(OLD)
    peppers = Peppers(NEW, (OLD,))
    with (
        owner_connection(postgres, db.name) as first,
        owner_connection(postgres, db.name) as second,
    ):
        # Both instances found the old hash; the second rehash finds nothing to do.
        assert lookup_key(first, key, peppers) == (key_id, "staff", "rotation")
        assert lookup_key(second, key, peppers) == (key_id, "staff", "rotation")
    assert db.row(key_id) == (hash_key(key, NEW), pepper_id(NEW))


def test_cli_keys_peppers_and_new_keys_use_the_current_pepper(
    fresh_db: tuple[str, SettingsFactory],
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    postgres: Postgres,
) -> None:
    name, _ = fresh_db
    for k, v in {
        **base_env,
        "DATABASE_NAME": name,
        "API_KEY_PEPPER": NEW,
        "API_KEY_PEPPER_PREVIOUS": OLD,
    }.items():
        monkeypatch.setenv(k, v)
    with owner_connection(postgres, name) as conn:
        old_id, _ = create_key(conn, "student", "waiting", OLD)
    assert main(["keys", "create", "--role", "staff", "--owner", "new", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    with owner_connection(postgres, name) as conn:
        stored = conn.execute(
            "SELECT key_hash, pepper_id FROM api_keys WHERE id = %s", (created["id"],)
        ).fetchone()
    assert stored == (hash_key(created["key"], NEW), pepper_id(NEW))

    assert main(["keys", "peppers", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    assert usage["current"]["active_keys"] == 1
    assert usage["previous"][0]["key_ids"] == [old_id]
    assert main(["keys", "peppers"]) == 0
    out = capsys.readouterr().out
    assert f"previous 1\t{pepper_id(OLD)}\t1\t{old_id}" in out
    assert OLD not in out and NEW not in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("a", ("a",)),
        (" a , b,,a ", ("a", "b")),
        ("none,a", ("", "a")),
    ],
)
def test_previous_peppers_setting(
    raw: str, expected: tuple[str, ...], make_settings: Callable[..., Any]
) -> None:
    settings = make_settings(API_KEY_PEPPER="p", API_KEY_PEPPER_PREVIOUS=raw)
    assert settings.api_key_pepper_previous == expected
    assert Peppers.from_settings(settings).accepted() == (
        "p",
        *[e for e in expected if e != "p"],
    )


def test_previous_pepper_with_whitespace_refused() -> None:
    with pytest.raises(ConfigError, match="API_KEY_PEPPER_PREVIOUS"):
        load_settings(environ={"API_KEY_PEPPER_PREVIOUS": "a b"}, env_file="/dev/null")


def test_previous_peppers_are_masked(make_settings: Callable[..., Any]) -> None:
    view = make_settings(API_KEY_PEPPER="p", API_KEY_PEPPER_PREVIOUS="q").public_view()
    assert view["API_KEY_PEPPER"] == "***" and view["API_KEY_PEPPER_PREVIOUS"] == "***"
