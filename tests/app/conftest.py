"""Fixtures: real PostgreSQL + pgvector, real Redis, the Ollama stand-in."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from vector_search.config import Settings, load_settings
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor, IngestSummary
from vector_search.keys import create_key
from vector_search.migrations import migrate
from vector_search.web.app import create_app

# the helpers next to this file import the same under any --import-mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_services import (
    CORPUS,
    Postgres,
    RedisServer,
    SettingsFactory,
    Standin,
    create_database,
    owner_connection,
    start_postgres,
    start_redis,
    start_standin,
)

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def standin() -> Iterator[Standin]:
    server = start_standin()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("env") / "empty.env"
    path.write_text("# no settings: tests pass everything explicitly\n")
    return path


@pytest.fixture(scope="session")
def base_env(
    postgres: Postgres,
    redis_server: RedisServer,
    standin: Standin,
    empty_env_file: Path,
) -> dict[str, str]:
    return {
        "VECTOR_SEARCH_ENV_FILE": str(empty_env_file),
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(postgres.port),
        "DATABASE_NAME": "vs_main",
        "DATABASE_USER": "vs_app",
        "DATABASE_PASSWORD": "app-pw",
        "DATABASE_OWNER_USER": "vs_owner",
        "DATABASE_OWNER_PASSWORD": "owner-pw",
        "DATABASE_SSLMODE": "disable",
        "DATABASE_POOL_TIMEOUT": "10",
        "DATABASE_STATEMENT_TIMEOUT_MS": "30000",
        "DATABASE_CONNECT_TIMEOUT": "2",
        "REDIS_URL": redis_server.url,
        "OLLAMA_URL": standin.url,
        "OLLAMA_TIMEOUT": "60",  # generous: Molecule may be loading the CPUs
        # the app's default is off; these tests also exercise anonymous searches
        "ANONYMOUS_ENABLED": "true",
        "ANONYMOUS_RATE_LIMIT": "10000",
        # tests revoke, expire and re-pepper keys and expect it at once;
        # test_app_key_cache.py tests the API key cache (default 5 s)
        "API_KEY_CACHE_SECONDS": "0",
        "HEALTH_CACHE_TTL": "0",
        "CHUNK_TOKENS": "120",
        "CHUNK_OVERLAP": "20",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def make_settings(base_env: dict[str, str]) -> SettingsFactory:
    """Settings over the test services; each call gets its own cache namespace."""

    def factory(**overrides: str) -> Settings:
        env = {
            **base_env,
            "CACHE_NAMESPACE": f"vs-test-{uuid.uuid4().hex[:8]}",
            **overrides,
        }
        return load_settings(environ=env)

    return factory


@pytest.fixture(scope="session")
def main_db(postgres: Postgres, make_settings: SettingsFactory) -> str:
    """The shared, migrated database holding the sample corpus (tests must not modify it)."""
    create_database(postgres, "vs_main")
    settings = make_settings()
    with owner_connection(postgres, "vs_main") as conn:
        migrate(conn, settings)
    return "vs_main"


@pytest.fixture(scope="session")
def corpus_ingested(
    main_db: str, postgres: Postgres, make_settings: SettingsFactory
) -> IngestSummary:
    settings = make_settings()
    embedder = OllamaEmbedder(settings)
    with owner_connection(postgres, main_db) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        summary = Ingestor(conn, embedder, settings).ingest(
            [CORPUS], source="sample-corpus"
        )
    embedder.close()
    return summary


@pytest.fixture
def fresh_db(
    postgres: Postgres, make_settings: SettingsFactory
) -> tuple[str, SettingsFactory]:
    """An empty, migrated database of its own, and a settings factory pointing at it."""
    name = f"vs_t{next(_db_counter)}_{uuid.uuid4().hex[:6]}"
    create_database(postgres, name)
    with owner_connection(postgres, name) as conn:
        migrate(conn, make_settings(DATABASE_NAME=name))

    def factory(**overrides: str) -> Settings:
        return make_settings(**{"DATABASE_NAME": name, **overrides})

    return name, factory


@pytest.fixture(scope="session")
def api_keys(main_db: str, postgres: Postgres) -> dict[str, str]:
    keys: dict[str, str] = {}
    with owner_connection(postgres, main_db) as conn:
        for role in ("student", "staff", "academic", "admin"):
            _, keys[role] = create_key(conn, role, f"test-{role}")
    return keys


@pytest.fixture
def app(
    make_settings: SettingsFactory, corpus_ingested: IngestSummary
) -> Iterator[Flask]:
    application = create_app(make_settings())
    yield application
    application.extensions["vector_search"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_client(
    make_settings: SettingsFactory, corpus_ingested: IngestSummary
) -> Iterator[Callable[..., FlaskClient]]:
    """Clients of apps with their own settings (closed after the test)."""
    apps: list[Flask] = []

    def factory(**overrides: str) -> FlaskClient:
        application = create_app(make_settings(**overrides))
        apps.append(application)
        return application.test_client()

    yield factory
    for application in apps:
        application.extensions["vector_search"].close()
