"""``vector-search check``: configuration and connectivity, with fixes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis

from vector_search.cache import create_client
from vector_search.config import Settings
from vector_search.embedder import OllamaEmbedder
from vector_search.embedding_columns import (
    ColumnRegistryError,
    column_state,
    load_columns,
    searchable_column,
)
from vector_search.errors import EmbedderError, EmbedderUnavailable
from vector_search.migrations import LATEST_VERSION


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _database(settings: Settings) -> tuple[list[CheckResult], int | None]:
    results: list[CheckResult] = []
    try:
        conn = psycopg.connect(settings.conninfo(owner=False), autocommit=True)
    except psycopg.OperationalError as exc:
        message = (
            str(exc).strip().splitlines()[-1]
            if str(exc).strip()
            else type(exc).__name__
        )
        return [
            CheckResult(
                "database",
                False,
                f"cannot connect to {settings.database_host}:{settings.database_port}/"
                f"{settings.database_name} as {settings.database_user}: {message}",
                "check DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER and "
                "DATABASE_PASSWORD(_FILE); is PostgreSQL (or PgBouncer) running?",
            )
        ], None
    dim: int | None = None
    with conn:
        results.append(
            CheckResult("database", True, f"connected as {settings.database_user}")
        )
        if not conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'vector'"
        ).fetchone():
            results.append(
                CheckResult(
                    "pgvector",
                    False,
                    "extension vector missing",
                    "as a superuser: CREATE EXTENSION vector;",
                )
            )
            return results, None
        try:
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            ).fetchone()
            version = int(row[0]) if row else 0
        except psycopg.Error:
            version = 0
        ok = version >= LATEST_VERSION
        results.append(
            CheckResult(
                "schema",
                ok,
                f"schema version {version} (expected {LATEST_VERSION})",
                "" if ok else "run: vector-search migrate (as the owner role)",
            )
        )
        if not ok:
            return results, None
        results.append(_key_privileges(conn, settings))
        try:
            column, detail = searchable_column(
                conn, settings.embedding_model, settings.embedding_dimension
            )
            reindex = [c for c in load_columns(conn) if c.column != column]
        except (ColumnRegistryError, psycopg.Error) as exc:
            column, detail, reindex = None, str(exc).strip(), []
        results.append(
            CheckResult(
                "embedding column",
                column is not None,
                detail,
                ""
                if column is not None
                else "set EMBEDDING_MODEL and EMBEDDING_DIMENSION to the corpus's model, "
                "or finish a reindex to this one (docs/reindex.md)",
            )
        )
        if column is not None:
            dim = column_state(conn, column).dimension
        for other in reindex:
            results.append(
                CheckResult(
                    "reindex",
                    True,
                    f"{other.describe()} is also kept"
                    + (", ready" if other.ready else ", not ready yet")
                    + ": see vector-search reindex status",
                )
            )
    return results, dim


def _key_privileges(conn: psycopg.Connection[Any], settings: Settings) -> CheckResult:
    """The runtime role must reach API keys only through the key functions."""
    row = conn.execute(
        "SELECT has_table_privilege(current_user, 'api_keys', 'SELECT') "
        "OR has_any_column_privilege(current_user, 'api_keys', 'UPDATE') "
        "OR has_table_privilege(current_user, 'api_keys', 'INSERT, DELETE')"
    ).fetchone()
    if settings.database_user == settings.database_owner_user or not (row and row[0]):
        return CheckResult(
            "api key privileges",
            True,
            f"{settings.database_user} reaches API keys only through the key functions"
            if settings.database_user != settings.database_owner_user
            else "the API connects as the owner role (no separate runtime role)",
        )
    return CheckResult(
        "api key privileges",
        False,
        f"{settings.database_user} can still read or change api_keys directly "
        "(the previous release's privileges, kept during an upgrade)",
        "once every instance runs this release: vector-search migrate (as the owner role)",
    )


def _redis(settings: Settings) -> list[CheckResult]:
    client = create_client(settings)
    try:
        client.ping()
        return [CheckResult("redis", True, "PING ok")]
    except redis.RedisError as exc:
        return [
            CheckResult(
                "redis",
                False,
                f"{type(exc).__name__}: {exc}",
                "check REDIS_URL and REDIS_PASSWORD(_FILE); is redis-server running? "
                "(the API still serves without it, uncached)",
            )
        ]
    finally:
        client.close()


def _ollama(settings: Settings, db_dim: int | None) -> list[CheckResult]:
    embedder = OllamaEmbedder(settings)
    try:
        version = embedder.version()
        vector = embedder.embed(["dimension probe"], check_dimension=False)[0]
    except (EmbedderUnavailable, EmbedderError) as exc:
        return [
            CheckResult(
                "ollama",
                False,
                str(exc),
                f"check OLLAMA_URL ({settings.ollama_url}) and that the model is pulled: "
                f"ollama pull {settings.embedding_model}",
            )
        ]
    finally:
        embedder.close()
    results = [
        CheckResult(
            "ollama", True, f"version {version}, model {settings.embedding_model}"
        )
    ]
    ok = len(vector) == settings.embedding_dimension
    results.append(
        CheckResult(
            "embedding dimension",
            ok,
            f"{settings.embedding_model} returns {len(vector)} dimensions, "
            f"EMBEDDING_DIMENSION={settings.embedding_dimension}",
            ""
            if ok
            else "set EMBEDDING_DIMENSION to the model's dimension (and migrate a new database)",
        )
    )
    if db_dim is not None and db_dim != len(vector):
        results.append(
            CheckResult(
                "database vs embedder",
                False,
                f"database holds vector({db_dim}) but the embedder returns {len(vector)}",
                "use the model the corpus was built with, or rebuild the database and re-ingest",
            )
        )
    return results


def run_checks(settings: Settings, emit: Callable[[CheckResult], None]) -> bool:
    db_results, dim = _database(settings)
    results = [*db_results, *_redis(settings), *_ollama(settings, dim)]
    for result in results:
        emit(result)
    return all(r.ok for r in results)
