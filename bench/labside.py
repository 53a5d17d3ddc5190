"""The parts of the benchmark that run on both sides: here, and on a lab app host.

On a lab app host (``vslab-app1``) this file runs with the app's own Python and
settings (the ``vector-search`` wrapper's environment, see ``bench/lab.py``), so
it imports only the standard library, psycopg and ``vector_search``: the app's
release has no numpy.

    python labside.py load      # binary COPY of the synthetic corpus on stdin
    python labside.py drop      # remove the synthetic corpus again
    python labside.py drive     # (a) psycopg at concurrency C; JSON job on stdin
    python labside.py info      # versions and pool settings, as JSON

``load`` makes the database hold exactly the corpus on stdin (documents of
source ``synthetic``; documents already there are kept, missing ones added,
extra ones removed), in one transaction, then bumps the response-cache
generation as ``vector-search ingest`` does. For more than BULK_CHUNKS new
chunks the HNSW and GIN indexes are built again after the load; after more than
BULK_CHUNKS deletions they are rebuilt over what is left (``REINDEX
CONCURRENTLY``, searches keep working). ``drop`` deletes them all.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import psycopg

SOURCE = "synthetic"
# metadata->>'bench_corpus' of every synthetic document: change it when the
# generator changes, and a lab holding an older corpus gets it replaced
CORPUS_VERSION = "bench-v2"

# the columns of the corpus stream (binary COPY), in this order
EXPORT_SQL = (
    "COPY (SELECT d.external_id, d.title, d.department, d.clearance_level, "
    "c.chunk_number, c.text, c.embedding FROM documents d "
    "JOIN document_chunks c ON c.document_id = d.id "
    f"WHERE d.source = '{SOURCE}' ORDER BY d.id, c.chunk_number) "
    "TO STDOUT (FORMAT BINARY)"
)


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile's default (linear interpolation), in milliseconds."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return (xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)) * 1000


# -- a closed-loop load generator ------------------------------------------------------
@dataclass
class Drive:
    """Latencies of the successful requests; every outcome counted ("ok",
    "429 nginx", "500", an exception's name); seconds measured."""

    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "outcomes": dict(self.outcomes),
            "elapsed": self.elapsed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drive:
        return cls(
            list(data["latencies"]), Counter(data["outcomes"]), float(data["elapsed"])
        )


def drive(
    concurrency: int,
    seconds: float,
    work: Callable[[int, int], str],
    setup: Callable[[int], None] | None = None,
) -> Drive:
    """``concurrency`` clients, each sending its next request when the last one
    returned, for ``seconds``. ``work(client, i)`` returns its outcome."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    outcomes: list[Counter[str]] = [Counter() for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    stop = [math.inf]

    def worker(w: int) -> None:
        ready = True
        if setup is not None:
            try:
                setup(w)
            except Exception as exc:  # noqa: BLE001 - counted; never blocks the others
                outcomes[w][f"setup: {type(exc).__name__}"] += 1
                ready = False
        barrier.wait()
        i = w
        while ready and time.perf_counter() < stop[0]:
            started = time.perf_counter()
            try:
                outcome = work(w, i)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                outcome = type(exc).__name__
            if outcome == "ok":
                latencies[w].append(time.perf_counter() - started)
            outcomes[w][outcome] += 1
            i += concurrency

    threads = [
        threading.Thread(target=worker, args=(w,), daemon=True)
        for w in range(concurrency)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    stop[0] = began + seconds
    for t in threads:
        t.join()
    result = Drive(elapsed=time.perf_counter() - began)
    for w in range(concurrency):
        result.latencies += latencies[w]
        result.outcomes.update(outcomes[w])
    return result


def drive_psycopg(
    conninfo: str,
    prepare_threshold: int | None,
    engine: Any,
    queries: list[str],
    vectors: list[list[float]],
    clearance: int,
    max_results: int,
    threshold: float,
    concurrency: int,
    seconds: float,
) -> Drive:
    """Row (a): the app's SearchEngine SQL on one connection per client, with
    the parameters the API would use for this caller."""
    from pgvector.psycopg import register_vector
    from vector_search.search import QueryConfig, SearchRequest

    conns: dict[int, psycopg.Connection[Any]] = {}
    requests = [
        SearchRequest(
            q,
            config=QueryConfig(similarity_threshold=threshold, max_results=max_results),
        )
        for q in queries
    ]

    def setup(w: int) -> None:
        conn = psycopg.connect(
            conninfo, autocommit=True, prepare_threshold=prepare_threshold
        )
        register_vector(conn)
        conns[w] = conn
        work(w, w)  # connected, statements prepared, pages cached: not measured

    def work(w: int, i: int) -> str:
        n = i % len(queries)
        with conns[w].transaction():
            engine.run(conns[w], requests[n], vectors[n], clearance)
        return "ok"

    try:
        return drive(concurrency, seconds, work, setup)
    finally:
        for conn in conns.values():
            conn.close()


# -- the synthetic corpus in the app's database ------------------------------------------
# more new chunks than this: the HNSW and GIN indexes are dropped for the load
# and built again over the loaded rows (an insert into a live HNSW graph costs
# several milliseconds a row on a busy 2-core lab, 100k rows over ten minutes;
# the build takes about one). Searches meanwhile scan: slower, still right.
BULK_CHUNKS = 1000


def _indexes(
    conn: psycopg.Connection[Any], methods: tuple[str, ...] = ("hnsw",)
) -> list[tuple[str, str]]:
    """(name, definition) of document_chunks' indexes of these access methods."""
    return [
        (str(name), str(definition))
        for name, definition in conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam "
            "WHERE x.indrelid = 'document_chunks'::regclass AND a.amname = ANY(%s)",
            (list(methods),),
        ).fetchall()
    ]


def _build(conn: psycopg.Connection[Any], name: str, definition: str) -> None:
    """Build an index again from its definition, without blocking searches;
    serial, with the graph in local memory (a parallel build needs it in
    /dev/shm, 256 MB in the lab's containers)."""
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 0")
    try:
        conn.execute(
            definition.replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
        )
    except psycopg.Error:
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')  # an invalid leftover
        conn.execute(definition)
    finally:
        conn.execute("RESET maintenance_work_mem")
        conn.execute("RESET max_parallel_maintenance_workers")


def load_corpus(conn: psycopg.Connection[Any], stream: BinaryIO) -> dict[str, Any]:
    """Make the database hold exactly the corpus on ``stream`` (EXPORT_SQL's
    binary COPY): documents and chunks change in one transaction (the BM25
    statistics with them). ``conn`` is in autocommit mode. Returns counts and
    seconds."""
    started = time.perf_counter()
    conn.execute("DROP TABLE IF EXISTS pg_temp.bench_stage")
    conn.execute(
        "CREATE TEMP TABLE bench_stage (external_id text, title text, department text, "
        "clearance_level smallint, chunk_number integer, text text, embedding vector)"
    )
    with conn.cursor().copy("COPY bench_stage FROM STDIN (FORMAT BINARY)") as copy:
        while data := stream.read(1 << 20):
            copy.write(data)
    conn.execute("CREATE INDEX ON bench_stage (external_id)")
    conn.execute("ANALYZE bench_stage")
    staged = time.perf_counter() - started
    kept = (
        "SELECT 1 FROM documents d WHERE d.source = %(source)s "
        "AND d.external_id = s.external_id AND d.metadata->>'bench_corpus' = %(version)s"
    )
    names = {"source": SOURCE, "version": CORPUS_VERSION}
    adding = int(
        (
            conn.execute(
                f"SELECT count(*) FROM bench_stage s WHERE NOT EXISTS ({kept})", names
            ).fetchone()
            or (0,)
        )[0]
    )
    removing = int(
        (
            conn.execute(
                "SELECT count(*) FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.source = %(source)s AND (coalesce(d.metadata->>'bench_corpus', '') <> %(version)s "
                "OR NOT EXISTS (SELECT 1 FROM bench_stage s WHERE s.external_id = d.external_id))",
                names,
            ).fetchone()
            or (0,)
        )[0]
    )
    rebuild = _indexes(conn, ("hnsw", "gin")) if adding > BULK_CHUNKS else []
    for name, _ in rebuild:
        conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    index_seconds = 0.0
    try:
        with conn.transaction():
            conn.execute("SET LOCAL work_mem = '256MB'")
            removed = conn.execute(
                "DELETE FROM documents d WHERE d.source = %(source)s AND "
                "(coalesce(d.metadata->>'bench_corpus', '') <> %(version)s "
                "OR NOT EXISTS (SELECT 1 FROM bench_stage s WHERE s.external_id = d.external_id))",
                names,
            ).rowcount
            added = conn.execute(
                "INSERT INTO documents (source, external_id, title, department, clearance_level, "
                "content_hash, metadata, chunk_count) "
                "SELECT DISTINCT ON (s.external_id) %(source)s, s.external_id, s.title, s.department, "
                "s.clearance_level, 'x', jsonb_build_object('bench_corpus', %(version)s::text), 10 "
                "FROM bench_stage s WHERE NOT EXISTS (SELECT 1 FROM documents d "
                "WHERE d.source = %(source)s AND d.external_id = s.external_id) ORDER BY s.external_id",
                names,
            ).rowcount
            chunks = conn.execute(
                "INSERT INTO document_chunks (document_id, chunk_number, heading, text, content_hash, "
                "embedding, department, priority, clearance_level) "
                "SELECT d.id, s.chunk_number, '', s.text, 'x', s.embedding, s.department, 3, s.clearance_level "
                "FROM bench_stage s JOIN documents d ON d.source = %(source)s AND d.external_id = s.external_id "
                "WHERE NOT EXISTS (SELECT 1 FROM document_chunks c WHERE c.document_id = d.id)",
                names,
            ).rowcount
    finally:
        built = time.perf_counter()
        for name, definition in rebuild:
            _build(conn, name, definition)
        index_seconds = time.perf_counter() - built
        conn.execute("DROP TABLE IF EXISTS pg_temp.bench_stage")
    if removing > BULK_CHUNKS and not rebuild:
        built = time.perf_counter()
        _compact(conn)
        index_seconds = time.perf_counter() - built
    # hint bits and the visibility map set now, not by the first searches
    conn.execute("VACUUM (ANALYZE) documents, document_chunks")
    waited = settle(conn)
    total = conn.execute(
        "SELECT count(*) FILTER (WHERE d.source = %s), count(*) FROM document_chunks c "
        "JOIN documents d ON d.id = c.document_id",
        (SOURCE,),
    ).fetchone() or (0, 0)
    return {
        "documents_removed": removed,
        "documents_added": added,
        "chunks_added": chunks,
        "chunks_removed": removing,
        "synthetic_chunks": total[0],
        "all_chunks": total[1],
        "indexes_rebuilt": [name for name, _ in rebuild],
        "stage_seconds": round(staged, 1),
        "index_seconds": round(index_seconds, 1),
        "archive_wait_seconds": round(waited, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def settle(conn: psycopg.Connection[Any], timeout: float = 300) -> float:
    """Wait until WAL archiving (the lab archives every segment through
    pgBackRest: compressed, encrypted, CPU-bound) has caught up with what a
    load wrote, so that it does not run during the measurement. Seconds waited."""
    started = time.perf_counter()
    row = conn.execute(
        "SELECT current_setting('archive_mode'), "
        "(SELECT setting::bigint * coalesce(pg_size_bytes('1' || nullif(unit, '')), 1) "
        "FROM pg_settings WHERE name = 'wal_segment_size')"
    ).fetchone()
    if row is None or row[0] == "off":
        return 0.0
    per_log = 0x100000000 // int(row[1])

    def segment(name: str) -> int:
        return int(name[8:16], 16) * per_log + int(name[16:24], 16)

    while time.perf_counter() - started < timeout:
        last, current = conn.execute(
            "SELECT last_archived_wal, pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver"
        ).fetchone() or (None, None)
        if last and current and segment(last) >= segment(current) - 1:
            break
        time.sleep(1)
    return time.perf_counter() - started


def _compact(conn: psycopg.Connection[Any]) -> None:
    """After many deletions: build the search indexes again over what is left
    (vacuuming deletions out of an HNSW graph repairs it node by node, far
    slower than a rebuild; and until then searches walk the dead nodes), then
    vacuum. CONCURRENTLY: searches go on meanwhile."""
    for name, _ in _indexes(conn, ("hnsw", "gin")):
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        conn.execute(f'REINDEX INDEX CONCURRENTLY "{name}"')
    conn.execute("RESET maintenance_work_mem")
    conn.execute("RESET max_parallel_maintenance_workers")
    conn.execute("VACUUM (ANALYZE) documents, document_chunks")


def drop_corpus(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    removed = conn.execute(
        "DELETE FROM documents WHERE source = %s", (SOURCE,)
    ).rowcount
    if removed:
        _compact(conn)
    return {
        "documents_removed": removed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _bump_generation(settings: Any) -> str:
    from vector_search.cache import Cache, create_client

    try:
        return f"cache generation {Cache(create_client(settings), settings).bump_generation()}"
    except Exception as exc:  # noqa: BLE001 - reported; responses expire anyway
        return f"could not bump the cache generation ({type(exc).__name__})"


def main(argv: list[str] | None = None) -> int:
    from vector_search.config import load_settings
    from vector_search.db import connect_owner

    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    settings = load_settings()
    if command in ("load", "drop"):
        with connect_owner(settings) as conn:
            if command == "load":
                result = load_corpus(conn, sys.stdin.buffer)
            else:
                result = drop_corpus(conn)
        result["cache"] = _bump_generation(settings)
    elif command == "drive":
        from vector_search.runtime import build_engine

        job = json.load(sys.stdin)
        result = drive_psycopg(
            settings.conninfo(owner=False),
            settings.database_prepare_threshold,
            build_engine(settings),
            job["queries"],
            job["vectors"],
            job["clearance"],
            job["max_results"],
            settings.default_similarity_threshold,
            job["concurrency"],
            job["seconds"],
        ).as_dict()
    elif command == "info":
        with connect_owner(settings) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            ).fetchone() or ("?", "?")
        result = {
            "postgresql": row[0],
            "pgvector": row[1],
            "threads": settings.threads,
            "pool_max": settings.pool_max,
            "database_host": settings.database_host,
            "database_port": settings.database_port,
            "search_candidates": settings.search_candidates,
        }
    else:
        print("usage: labside.py load|drop|drive|info", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
