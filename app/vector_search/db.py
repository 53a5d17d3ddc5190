"""PostgreSQL connections: a pool for the API, single connections for the CLI.

Connections run in autocommit mode and every unit of work is an explicit
transaction, so per-request settings use ``SET LOCAL`` (``set_config(..., true)``)
and nothing leaks between PgBouncer transaction-mode clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from pgvector.psycopg import register_vector
from psycopg_pool.base import AttemptWithBackoff

from vector_search.config import Settings
from vector_search.embedding_columns import application_name
from vector_search.errors import DatabaseUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


def _configure(conn: psycopg.Connection[Any]) -> None:
    register_vector(conn)


class CappedBackoff(AttemptWithBackoff):
    """Reconnect attempts 0.2 s apart, doubling to at most 1 s.

    psycopg_pool's own backoff starts at 1 s and doubles without a bound, so after
    a two-second PostgreSQL restart behind PgBouncer (which refuses logins for
    server_login_retry after a failed one) an instance could wait 7-15 s for its
    first new connection and answer 503 all that time."""

    INITIAL_DELAY = 0.2
    MAX_DELAY = 1.0

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


class Pool(psycopg_pool.ConnectionPool):
    """A ConnectionPool whose reconnect attempts use CappedBackoff."""

    def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        if attempt is None:
            attempt = CappedBackoff(timeout=self.reconnect_timeout)
        super()._add_connection(attempt, growing=growing)


def create_pool(settings: Settings) -> psycopg_pool.ConnectionPool:
    """A pool sized to the waitress threads; opened lazily so startup never blocks on the DB.

    Its connections announce the instance's embedding model as application_name
    (``vector-search MODEL/DIMENSION``): ``reindex finish`` refuses to drop a
    column that connected instances still search."""
    pool = Pool(
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


def _protocol_lost(exc: BaseException) -> bool:
    """psycopg lost track of the protocol: PgBouncer answered a BEGIN or COMMIT
    with an extra error for a server connection that went away mid-command
    ("received 2 results from command 'COMMIT'"). The connection cannot be used
    again; the work can be repeated on another one."""
    return isinstance(exc, psycopg.InternalError) and "results from command" in str(exc)


@contextmanager
def transaction(
    pool: psycopg_pool.ConnectionPool, statement_timeout_ms: int = 0
) -> Iterator[psycopg.Connection[Any]]:
    """One transaction from the pool; connection problems become DatabaseUnavailable."""
    try:
        with pool.connection() as conn:
            try:
                with conn.transaction():
                    if statement_timeout_ms:
                        conn.execute(
                            "SELECT set_config('statement_timeout', %s, true)",
                            (str(statement_timeout_ms),),
                        )
                    yield conn
            except psycopg.InternalError as exc:
                if _protocol_lost(exc):
                    conn.close()  # the pool discards a closed connection
                raise
    except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable(
            f"database unavailable: {type(exc).__name__}"
        ) from exc
    except psycopg.InternalError as exc:
        if not _protocol_lost(exc):
            raise
        raise DatabaseUnavailable("database connection lost mid-command") from exc


def _connection_lost(exc: DatabaseUnavailable) -> bool:
    """The connection was lost or refused (a restart), not a slow or bad statement."""
    cause = exc.__cause__
    if cause is not None and _protocol_lost(cause):
        return True
    return isinstance(cause, psycopg.OperationalError) and not isinstance(
        cause, psycopg.errors.QueryCanceled
    )


def run_in_transaction(
    pool: psycopg_pool.ConnectionPool,
    work: Callable[[psycopg.Connection[Any]], T],
    statement_timeout_ms: int = 0,
    retry_seconds: float = 0.0,
) -> T:
    """``work(conn)`` in one transaction; when the connection to the database is
    lost or refused (PostgreSQL or PgBouncer restarting), run it again on a fresh
    connection, backing off, for up to ``retry_seconds``; then DatabaseUnavailable.

    Only for work that is safe to repeat: reads, and idempotent writes such as the
    API key's last-use stamp. A statement timeout or a pool timeout is not retried
    (repeating it would only add load)."""
    deadline = time.monotonic() + retry_seconds
    delay = 0.1
    while True:
        try:
            with transaction(pool, statement_timeout_ms) as conn:
                return work(conn)
        except DatabaseUnavailable as exc:
            if not _connection_lost(exc) or time.monotonic() + delay > deadline:
                raise
            log.info(
                "database connection lost; retrying",
                extra={"error": str(exc.__cause__)[:200], "retry_in_s": delay},
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


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
