"""db.run_in_transaction on a real pool over real PostgreSQL: what is retried
on a fresh connection and what is not."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from vector_search.db import CappedBackoff, create_pool, run_in_transaction
from vector_search.errors import DatabaseUnavailable
from vs_services import SettingsFactory


@pytest.fixture
def pool(main_db: str, make_settings: SettingsFactory) -> Iterator[ConnectionPool]:
    pool = create_pool(make_settings(DATABASE_POOL_MIN="1", THREADS="2"))
    pool.wait(10)
    yield pool
    pool.close()


def _backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_killed_mid_work_is_retried_on_a_fresh_one(
    pool: ConnectionPool,
) -> None:
    pids: list[int] = []

    def work(conn: psycopg.Connection[Any]) -> int:
        pid = _backend_pid(conn)
        pids.append(pid)
        if len(pids) == 1:  # the server goes away under the first attempt
            with psycopg.connect(pool.conninfo, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute("SELECT 1")
        return pid

    assert run_in_transaction(pool, work, retry_seconds=5) == pids[-1]
    assert len(pids) == 2 and pids[0] != pids[1]


def test_pgbouncer_protocol_confusion_is_retried_and_the_connection_dropped(
    pool: ConnectionPool,
) -> None:
    """PgBouncer can answer a BEGIN/COMMIT with an extra error when its server
    connection dies mid-command; psycopg raises InternalError ("received 2
    results from command") and the connection cannot be used again."""
    seen: list[psycopg.Connection[Any]] = []

    def work(conn: psycopg.Connection[Any]) -> str:
        seen.append(conn)
        if len(seen) == 1:
            raise psycopg.InternalError("received 2 results from command 'COMMIT'")
        return "ok"

    assert run_in_transaction(pool, work, retry_seconds=5) == "ok"
    assert seen[0].closed and not seen[1].closed


def test_without_retry_a_lost_connection_is_unavailable(pool: ConnectionPool) -> None:
    def work(conn: psycopg.Connection[Any]) -> None:
        raise psycopg.InternalError("received 2 results from command 'BEGIN'")

    with pytest.raises(DatabaseUnavailable):
        run_in_transaction(pool, work, retry_seconds=0)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.InternalError("some other internal error"),
        psycopg.errors.UndefinedTable('relation "nope" does not exist'),
    ],
)
def test_other_errors_are_not_repeated(
    pool: ConnectionPool, error: psycopg.Error
) -> None:
    calls: list[int] = []

    def work(conn: psycopg.Connection[Any]) -> None:
        calls.append(1)
        raise error

    with pytest.raises((DatabaseUnavailable, psycopg.Error)):
        run_in_transaction(pool, work, retry_seconds=5)
    assert calls == [1]


def test_reconnect_backoff_is_capped() -> None:
    """psycopg_pool doubles its reconnect delay without a bound (1, 2, 4, 8 s...);
    the pool's attempts stay at most a second apart, so an instance reconnects
    within a second of the database's return."""
    attempt = CappedBackoff(timeout=300)
    delays = []
    for step in range(8):
        attempt.update_delay(now=float(step))
        delays.append(attempt.delay)
    assert delays[0] < 0.3 and max(delays) == pytest.approx(1.0)
    # db.Pool hooks psycopg_pool's private _add_connection: a release that
    # renames or reshapes it must fail here, not silently lose the cap
    params = list(inspect.signature(ConnectionPool._add_connection).parameters)
    assert params == ["self", "attempt", "growing"]
