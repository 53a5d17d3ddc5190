"""Behind PgBouncer in transaction mode: no session state, SET LOCAL only.

Debian 12's PgBouncer (1.18) cannot carry prepared statements in transaction
mode, so the app runs with DATABASE_PREPARE_THRESHOLD=none here; PgBouncer >=
1.22 with max_prepared_statements > 0 allows the default.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient
from vector_search.reindex import connections
from vs_services import (
    PG_USER_NAME,
    Postgres,
    _wait_for,
    bearer,
    free_port,
    owner_connection,
)

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer not installed (apt-get install pgbouncer)"
)


@pytest.fixture(scope="module")
def pgbouncer(postgres: Postgres, main_db: str) -> Iterator[int]:
    assert PGBOUNCER is not None
    workdir = Path(tempfile.mkdtemp(prefix="vs-pgbouncer-"))
    port = free_port()
    (workdir / "userlist.txt").write_text('"vs_app" "app-pw"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{main_db} = host=127.0.0.1 port={postgres.port} dbname={main_db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
server_login_retry = 1
"""
    )
    args = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if postgres.run_as:
        shutil.chown(workdir, PG_USER_NAME)
        for f in workdir.iterdir():
            shutil.chown(f, PG_USER_NAME)
        args = [PGBOUNCER, "-u", PG_USER_NAME, str(workdir / "pgbouncer.ini")]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    dsn = postgres.dsn(main_db, "vs_app", "app-pw").replace(
        str(postgres.port), str(port)
    )
    _wait_for(
        lambda: psycopg.connect(dsn).close() is None,
        20,
        "pgbouncer",
        workdir / "pgbouncer.log",
    )
    yield port
    process.terminate()
    process.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_search_through_pgbouncer_transaction_mode(
    pgbouncer: int,
    make_client: Callable[..., FlaskClient],
    api_keys: dict[str, str],
    postgres: Postgres,
    main_db: str,
) -> None:
    client = make_client(
        DATABASE_PORT=str(pgbouncer),
        DATABASE_PREPARE_THRESHOLD="none",
        THREADS="6",
        CACHE_ENABLED="false",
    )
    errors: list[str] = []

    def worker(n: int) -> None:
        own = client.application.test_client()
        for i in range(6):
            body = {
                "query": [
                    "eduroam wifi",
                    "password reset instructions",
                    "library loans",
                ][(n + i) % 3],
                "filters": {"department": "IT Services"} if i % 2 else {},
            }
            response = own.post(
                "/api/search", json=body, headers=bearer(api_keys["staff"])
            )
            if response.status_code != 200 or (
                not i % 2 and not response.json["results"]
            ):
                errors.append(
                    f"{response.status_code} {response.get_data(as_text=True)[:200]}"
                )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    first = client.post("/api/search", json={"query": "eduroam wifi"}).json
    assert first["results"][0]["document_id"] == "it-eduroam"
    # nothing leaked into the shared server connections: SET LOCAL ended with each transaction
    dsn = postgres.dsn(main_db, "vs_app", "app-pw").replace(
        str(postgres.port), str(pgbouncer)
    )
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        for _ in range(4):
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone() == ("off",)
            assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    # PgBouncer hands the instance's application_name (its embedding model) to
    # the server connections: what `reindex finish` checks before dropping a column
    with owner_connection(postgres, main_db) as conn:
        assert connections(conn).get("vector-search all-minilm/384", 0) >= 1


def _search_while_restarting(
    client: FlaskClient, key: str, postgres: Postgres
) -> tuple[dict[str, int], float]:
    """Searches from three threads before, during and after a PostgreSQL restart
    behind PgBouncer (its client connections stay up, the server's go away):
    status counts and the slowest answer in seconds."""
    statuses: dict[str, int] = {}
    slowest = [0.0]
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n: int) -> None:
        own = client.application.test_client()
        while not stop.is_set():
            started = time.monotonic()
            response = own.post(
                "/api/search",
                json={"query": ["eduroam wifi", "library loans"][n % 2]},
                headers=bearer(key),
            )
            with lock:
                slowest[0] = max(slowest[0], time.monotonic() - started)
                status = str(response.status_code)
                statuses[status] = statuses.get(status, 0) + 1
            time.sleep(0.02)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    # down for a second: long enough that every thread meets it, well inside
    # DATABASE_RETRY_SECONDS
    postgres.restart(down_seconds=1.0)
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(60)
    return statuses, slowest[0]


def test_searches_ride_out_a_postgresql_restart(
    pgbouncer: int,
    make_client: Callable[..., FlaskClient],
    api_keys: dict[str, str],
    postgres: Postgres,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL down for a second behind PgBouncer: in-flight and new searches
    (and their key lookups) retry on a fresh connection (DATABASE_RETRY_SECONDS)
    and answer 200, and the pool reconnects within the retry window. Each logged
    retry is a request that would have answered 503 without it."""
    settings = {
        "DATABASE_PORT": str(pgbouncer),
        "DATABASE_PREPARE_THRESHOLD": "none",
        "CACHE_ENABLED": "false",
        "THREADS": "4",
        # the staff role's per-minute limit is not what this test is about
        "RATE_LIMIT_ENABLED": "false",
    }
    client = make_client(**settings, DATABASE_RETRY_SECONDS="5")
    assert (
        client.post(
            "/api/search", json={"query": "eduroam"}, headers=bearer(api_keys["staff"])
        ).status_code
        == 200
    )
    caplog.set_level(logging.INFO, logger="vector_search.db")
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    statuses, slowest = _search_while_restarting(client, api_keys["staff"], postgres)
    assert set(statuses) == {"200"}, statuses
    assert statuses["200"] > 20
    # the outage reached the app (otherwise this test proves nothing): requests
    # were held by PgBouncer across it, or met lost connections and retried
    met = [
        r.getMessage()
        for r in caplog.records
        if r.name in ("psycopg.pool", "vector_search.db")
    ]
    assert slowest >= 0.8 or any("connection lost" in m for m in met), (slowest, met)
