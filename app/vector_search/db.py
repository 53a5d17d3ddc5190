"""PostgreSQL connections: a pool for the API, single connections for the CLI.

Connections run in autocommit mode and every unit of work is an explicit
transaction, so per-request settings use ``SET LOCAL`` (``set_config(..., true)``)
and nothing leaks between PgBouncer transaction-mode clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from pgvector.psycopg import register_vector

from vector_search.columns import application_name
from vector_search.config import Settings
from vector_search.errors import DatabaseUnavailable


def _configure(conn: psycopg.Connection[Any]) -> None:
    register_vector(conn)


def create_pool(settings: Settings) -> psycopg_pool.ConnectionPool:
    """A pool sized to the waitress threads; opened lazily so startup never blocks on the DB.

    Its connections announce the instance's embedding model as application_name
    (``vector-search MODEL/DIMENSION``): ``reindex finish`` refuses to drop a
    column that connected instances still search."""
    pool = psycopg_pool.ConnectionPool(
        settings.conninfo(owner=False),
        min_size=min(settings.database_pool_min, settings.pool_max),
        max_size=settings.pool_max,
        timeout=settings.database_pool_timeout,
        open=False,
        check=psycopg_pool.ConnectionPool.check_connection,
        configure=_configure,
        kwargs={
            "autocommit": True,
            "prepare_threshold": settings.database_prepare_threshold,
            "application_name": application_name(
                settings.embedding_model, settings.embedding_dimension
            ),
        },
        name="vector-search",
    )
    pool.open(wait=False)
    return pool


@contextmanager
def transaction(
    pool: psycopg_pool.ConnectionPool, statement_timeout_ms: int = 0
) -> Iterator[psycopg.Connection[Any]]:
    """One transaction from the pool; connection problems become DatabaseUnavailable."""
    try:
        with pool.connection() as conn, conn.transaction():
            if statement_timeout_ms:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(statement_timeout_ms),),
                )
            yield conn
    except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable(
            f"database unavailable: {type(exc).__name__}"
        ) from exc


def connect_owner(settings: Settings, register: bool = True) -> psycopg.Connection[Any]:
    """A connection as the owner role (migrate, ingest, keys); autocommit mode."""
    try:
        conn = psycopg.connect(settings.conninfo(owner=True), autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL as {settings.database_owner_user}: {exc}"
        ) from exc
    if register:
        register_vector(conn)
    return conn
