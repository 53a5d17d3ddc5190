"""The runtime role and API keys: functions only, no table (issue 14, item 10).

The runtime role used to SELECT every key_hash and UPDATE key_hash: a
compromised app host could mint an admin key. Now it has no privilege on
api_keys and calls SECURITY DEFINER functions owned by the schema owner.
Checked on real PostgreSQL, connected as the runtime role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from vector_search import check, migrations
from vector_search.keys import create_key, generate_key, hash_key, pepper_id
from vector_search.migrations import KEY_FUNCTIONS, migrate
from vs_services import Postgres, SettingsFactory, create_database, owner_connection

PEPPER = "key-privileges-pepper-0123456789"


@pytest.fixture
def runtime(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    name, _ = fresh_db
    with psycopg.connect(
        postgres.dsn(name, "vs_app", "app-pw"), autocommit=True
    ) as conn:
        yield name, conn


def stored(postgres: Postgres, name: str, key_id: int) -> tuple[Any, ...]:
    with owner_connection(postgres, name) as conn:
        row = conn.execute(
            "SELECT key_hash, pepper_id, last_used_at FROM api_keys WHERE id = %s",
            (key_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT key_hash FROM api_keys",
        "SELECT id, role FROM api_keys",
        "SELECT count(*) FROM api_keys",
        "UPDATE api_keys SET key_hash = 'x'",
        "UPDATE api_keys SET last_used_at = now()",
        "UPDATE api_keys SET role = 'admin'",
        "UPDATE api_keys SET expires_at = NULL",
        "INSERT INTO api_keys (key_prefix, key_hash, role, owner) VALUES ('a', 'b', 'admin', 'x')",
        "DELETE FROM api_keys",
    ],
)
def test_runtime_role_has_no_privilege_on_api_keys(
    runtime: tuple[str, psycopg.Connection[Any]], statement: str
) -> None:
    _, conn = runtime
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_lookup_and_rehash_through_the_functions(
    runtime: tuple[str, psycopg.Connection[Any]], postgres: Postgres
) -> None:
    name, conn = runtime
    with owner_connection(postgres, name) as owner:
        key_id, key = create_key(owner, "admin", "functions", PEPPER)
    old_hash = hash_key(key, PEPPER)

    found = conn.execute(
        "SELECT * FROM api_key_lookup(%s, %s)",
        ([hash_key(key, "other"), old_hash], ["x", pepper_id(PEPPER)]),
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in found] == [
        (key_id, "admin", "functions", old_hash, "active")
    ]
    assert stored(postgres, name, key_id)[2] is not None  # last use stamped
    assert (
        conn.execute(
            "SELECT * FROM api_key_lookup(%s, %s)", ([hash_key(generate_key())], ["x"])
        ).fetchall()
        == []
    )

    new_hash = hash_key(key, "new-pepper")
    # A wrong current hash (all the runtime could guess, not knowing the key) is refused.
    for wrong in (hash_key(generate_key(), PEPPER), new_hash, ""):
        assert conn.execute(
            "SELECT api_key_rehash(%s, %s, %s, %s)", (key_id, wrong, new_hash, "n")
        ).fetchone() == (False,)
    assert stored(postgres, name, key_id)[0] == old_hash
    # Not a hash at all: an error, nothing changes.
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT api_key_rehash(%s, %s, %s, %s)", (key_id, old_hash, "x", "n")
        )
    assert stored(postgres, name, key_id)[0] == old_hash
    # The current hash proves the caller holds the key: the hash moves.
    assert conn.execute(
        "SELECT api_key_rehash(%s, %s, %s, %s)",
        (key_id, old_hash, new_hash, pepper_id("new-pepper")),
    ).fetchone() == (True,)
    assert stored(postgres, name, key_id)[:2] == (new_hash, pepper_id("new-pepper"))


def test_functions_are_security_definer_with_a_fixed_search_path(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, _ = fresh_db
    with postgres.connect(name) as conn:
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig, r.rolname, "
            "has_function_privilege('vs_app', p.oid, 'EXECUTE'), "
            "has_function_privilege('public', p.oid, 'EXECUTE') "
            "FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
            "WHERE p.proname LIKE 'api\\_key\\_%'"
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(
        f.replace(", ", ",") for f in KEY_FUNCTIONS
    )
    for signature, definer, config, owner, runtime_may, public_may in rows:
        assert definer and owner == "vs_owner", signature
        assert config == ["search_path=pg_catalog, public, pg_temp"], signature
        assert runtime_may and not public_may, signature


def test_another_role_cannot_call_the_functions(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, _ = fresh_db
    with postgres.connect() as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = 'vs_other'"
        ).fetchone():
            conn.execute("CREATE ROLE vs_other LOGIN PASSWORD 'other-pw'")
    with (
        psycopg.connect(
            postgres.dsn(name, "vs_other", "other-pw"), autocommit=True
        ) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT * FROM api_key_lookup(ARRAY['x'], ARRAY['y'])")


def test_upgrade_keeps_old_privileges_for_one_run_then_revokes_them(
    postgres: Postgres,
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expand, then contract: the migrate run that adds the functions leaves the
    previous release's privileges (its instances still run during a rolling
    upgrade); the next run revokes them."""
    name = "vs_keys_upgrade"
    create_database(postgres, name)
    settings = make_settings(DATABASE_NAME=name)
    with owner_connection(postgres, name) as owner:
        # the schema and grants of the previous release (migrations 1-4)
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
            patch.setattr(migrations, "_grant_runtime", lambda *args: None)
            migrate(owner, settings)
        owner.execute("GRANT USAGE ON SCHEMA public TO vs_app")
        owner.execute("GRANT SELECT ON api_keys TO vs_app")
        owner.execute(
            "GRANT UPDATE (last_used_at, key_hash, pepper_id) ON api_keys TO vs_app"
        )
        first = migrate(owner, settings)
        assert first.applied == list(range(5, migrations.LATEST_VERSION + 1))
        assert any("run `vector-search migrate` again" in n for n in first.notes)
    assert not key_privileges_check(settings).ok  # `vector-search check` says so
    with psycopg.connect(
        postgres.dsn(name, "vs_app", "app-pw"), autocommit=True
    ) as app:
        # the previous release's own lookup still works during the rollout
        app.execute("SELECT id, role, owner, key_hash FROM api_keys").fetchall()
        with owner_connection(postgres, name) as owner:
            second = migrate(owner, settings)
        assert second.applied == []
        assert not any("again" in n for n in second.notes)
        assert any("revoked the previous release's" in n for n in second.notes)
        with owner_connection(postgres, name) as owner:
            third = migrate(owner, settings)
        assert not any("revoked" in n for n in third.notes)
        for statement in (
            "SELECT key_hash FROM api_keys",
            "UPDATE api_keys SET key_hash = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
    assert key_privileges_check(settings).ok


def key_privileges_check(settings: Any) -> Any:
    results, _ = check._database(settings)
    return next(r for r in results if r.name == "api key privileges")
