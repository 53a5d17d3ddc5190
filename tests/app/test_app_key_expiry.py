"""API keys expire (issue 14, item 14): per key or by their role's default,
shown by `keys list`, refused once expired, counted for an alert before.
Real PostgreSQL and Redis; keys made through the CLI as an operator would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from vector_search import migrations
from vector_search.cli import main
from vector_search.keys import create_key, generate_key, hash_key
from vector_search.migrations import migrate
from vector_search.web.app import create_app
from vs_services import (
    Postgres,
    SettingsFactory,
    bearer,
    create_database,
    metric_value,
    owner_connection,
    statement_calls,
)

QUERY = {"query": "library opening hours"}


def expiry(postgres: Postgres, name: str, key_id: int) -> datetime | None:
    with owner_connection(postgres, name) as conn:
        row = conn.execute(
            "SELECT expires_at FROM api_keys WHERE id = %s", (key_id,)
        ).fetchone()
    assert row is not None
    return row[0]


def near(value: datetime | None, expected: datetime) -> bool:
    return value is not None and abs(value - expected) < timedelta(minutes=5)


@pytest.fixture
def cli(
    fresh_db: tuple[str, SettingsFactory],
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    name, _ = fresh_db
    for k, v in {**base_env, "DATABASE_NAME": name}.items():
        monkeypatch.setenv(k, v)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_keys_create_with_role_defaults_and_explicit_expiry(
    cli: Any, fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, _ = fresh_db
    now = datetime.now(UTC)

    def create(*options: str, role: str = "student") -> dict[str, Any]:
        code, out, err = cli(
            "keys", "create", "--role", role, "--owner", "x", "--json", *options
        )
        assert code == 0, err
        return dict(json.loads(out))

    student = create()
    admin = create(role="admin")
    assert near(expiry(postgres, name, student["id"]), now + timedelta(days=365))
    assert near(expiry(postgres, name, admin["id"]), now + timedelta(days=90))
    assert student["expires_at"] is not None
    in_30 = create("--expires-in", "30d")
    assert near(expiry(postgres, name, in_30["id"]), now + timedelta(days=30))
    dated = create("--expires", "2099-06-30")
    assert expiry(postgres, name, dated["id"]) == datetime(2099, 7, 1, tzinfo=UTC)
    forever = create("--no-expiry", role="admin")
    assert expiry(postgres, name, forever["id"]) is None

    # bad input: a clear error, and no key made
    for options in (
        ("--expires-in", "soon"),
        ("--expires-in", "0d"),
        ("--expires", "2001-01-01"),
        ("--expires", "30/06/2099"),
    ):
        code, _, err = cli(
            "keys", "create", "--role", "staff", "--owner", "bad", *options
        )
        assert code == 2 and "keys create:" in err, options
    code, out, _ = cli("keys", "list", "--json")
    listed = {r["id"]: r for r in json.loads(out)}
    assert len(listed) == 5 and all(r["status"] == "active" for r in listed.values())
    assert listed[forever["id"]]["expires_at"] is None

    # change one key's expiry; the table shows it
    assert cli("keys", "expiry", str(student["id"]), "--no-expiry")[0] == 0
    assert expiry(postgres, name, student["id"]) is None
    assert cli("keys", "expiry", str(admin["id"]), "--expires-in", "2w")[0] == 0
    assert near(expiry(postgres, name, admin["id"]), now + timedelta(days=14))
    code, _, err = cli("keys", "expiry", str(admin["id"]))
    assert code == 2 and "--no-expiry" in err
    code, out, _ = cli("keys", "list")
    assert "\tEXPIRES\t" in out.splitlines()[0]
    assert "\tnever\t" in out and "2099-07-01 00:00" in out


def test_expired_key_is_refused_with_its_own_message(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    with owner_connection(postgres, name) as conn:
        key_id, key = create_key(
            conn, "staff", "expiring", expires_at=datetime.now(UTC) + timedelta(days=1)
        )
    app = create_app(factory(ANONYMOUS_ENABLED="false"))
    try:
        client = app.test_client()
        assert post(client, key).status_code == 200
        with owner_connection(postgres, name) as conn:
            conn.execute(
                "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
                (key_id,),
            )
        response = post(client, key)
        assert response.status_code == 401
        assert response.json["message"] == "expired: ask for a new key"
        assert (
            metric_value(client, "vector_search_auth_failures_total", reason="expired")
            == 1.0
        )
        # an expired key can no longer be rehashed into a working one either
        with owner_connection(postgres, name) as conn:
            assert conn.execute(
                "SELECT api_key_rehash(%s, %s, %s, 'p')",
                (key_id, hash_key(key), hash_key(key, "p")),
            ).fetchone() == (False,)
    finally:
        app.extensions["vector_search"].close()


def post(client: FlaskClient, key: str) -> Any:
    return client.post("/api/search", json=QUERY, headers=bearer(key))


def test_expiring_keys_gauge_is_cached(
    fresh_db: tuple[str, SettingsFactory], postgres: Postgres
) -> None:
    name, factory = fresh_db
    now = datetime.now(UTC)
    with owner_connection(postgres, name) as conn:
        for role, days in (
            ("student", 3),
            ("student", 10),
            ("student", 100),
            ("admin", 5),
            ("staff", None),
            ("staff", -1),  # already expired: not active
        ):
            expires = None if days is None else now + timedelta(days=days)
            create_key(conn, role, f"gauge-{role}", expires_at=expires)
    app = create_app(factory(API_KEY_EXPIRY_WARNING_DAYS="7", API_KEY_STATS_TTL="300"))
    try:
        client = app.test_client()
        before = statement_calls(postgres, name, "api_key_expiry_summary")

        def gauge(metric: str, role: str) -> float | None:
            return metric_value(client, f"vector_search_api_keys_{metric}", role=role)

        assert gauge("expiring_soon", "student") == 1.0
        assert gauge("expiring_soon", "admin") == 1.0
        assert gauge("expiring_soon", "academic") == 0.0
        assert gauge("active", "student") == 3.0
        assert gauge("active", "staff") == 1.0
        assert gauge("without_expiry", "staff") == 1.0
        # one database query for all those scrapes; a new key shows after the TTL
        with owner_connection(postgres, name) as conn:
            create_key(conn, "academic", "late", expires_at=now + timedelta(days=1))
        assert gauge("expiring_soon", "academic") == 0.0
        assert statement_calls(postgres, name, "api_key_expiry_summary") - before == 1
    finally:
        app.extensions["vector_search"].close()


def test_keys_existing_at_migration_get_their_role_default(
    postgres: Postgres, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "vs_expiry_upgrade"
    create_database(postgres, name)
    settings = make_settings(DATABASE_NAME=name, API_KEY_EXPIRY_DAYS_STAFF="0")
    with owner_connection(postgres, name) as owner:
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
            patch.setattr(migrations, "_grant_runtime", lambda *args: None)
            migrate(owner, settings)
        ids = {}
        for label, role, revoked in (
            ("student", "student", False),
            ("admin", "admin", False),
            ("staff", "staff", False),
            ("revoked", "student", True),
        ):
            key = generate_key()
            row = owner.execute(
                "INSERT INTO api_keys (key_prefix, key_hash, role, owner, revoked_at) "
                "VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING id",
                (key[:10], hash_key(key), role, label, revoked),
            ).fetchone()
            assert row is not None
            ids[label] = row[0]
        assert migrate(owner, settings).applied == list(
            range(5, migrations.LATEST_VERSION + 1)
        )
    now = datetime.now(UTC)
    assert near(expiry(postgres, name, ids["student"]), now + timedelta(days=365))
    assert near(expiry(postgres, name, ids["admin"]), now + timedelta(days=90))
    assert expiry(postgres, name, ids["staff"]) is None  # role default 0: no expiry
    assert expiry(postgres, name, ids["revoked"]) is None
