"""Behind PgBouncer in transaction mode: no session state, SET LOCAL only.

Debian 12's PgBouncer (1.18) cannot carry prepared statements in transaction
mode, so the app runs with DATABASE_PREPARE_THRESHOLD=none here; PgBouncer >=
1.22 with max_prepared_statements > 0 allows the default.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
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
