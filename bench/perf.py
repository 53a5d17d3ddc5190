"""Sections 1-3 and the lexical scaling check: synthetic corpora, index
accuracy, throughput (psycopg vs the app vs nginx + app), ingestion vs the
embedder alone."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from vector_search.config import Settings
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor, embedding_input

from bench import cranfield
from bench.labside import CORPUS_VERSION, SOURCE, Drive, drive, percentile
from bench.services import Stack, engine_for, free_port

DEPARTMENTS = [f"dept-{i}" for i in range(10)]
# the corpora's labels in the report (bench/realtext.py builds the real-text one)
SYNTHETIC = "synthetic"
REAL_TEXT = "real text"
# a cosine similarity every result passes: the synthetic vectors are unrelated
# to the query embeddings, and the default threshold (0.2) would return nothing
ALL_RESULTS_THRESHOLD = -1.0


def pct(values: list[float], q: float) -> float:
    """Milliseconds at percentile ``q`` of latencies in seconds."""
    return percentile(values, q)


def service_ef_search(settings: Settings) -> int:
    """What SearchEngine.run sets with SET LOCAL."""
    return max(40, min(settings.search_candidates, 1000))


# -- synthetic vectors -----------------------------------------------------------
def centers(dim: int, count: int = 200) -> np.ndarray:
    """Fixed random topic centres per dimension (the same in every run)."""
    rng = np.random.default_rng(1000 + dim)
    c = rng.normal(0, 1, (count, dim))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def clustered_vectors(
    n: int, dim: int, rng: np.random.Generator, middle: np.ndarray
) -> np.ndarray:
    """Unit vectors around random cluster centres (embeddings cluster by topic;
    uniform random vectors would be an unrealistically hard case for HNSW)."""
    picks = rng.integers(0, len(middle), n)
    vectors = middle[picks] + rng.normal(0, 0.5 / np.sqrt(dim), (n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


# -- bulk loading: indexes built after the rows, with the machine's cores ------------
def fast_index_settings(conn: psycopg.Connection[Any]) -> None:
    """Session settings for index builds: the HNSW graph must fit in
    maintenance_work_mem (else pgvector builds it on disk, several times
    slower), and one parallel worker per spare core."""
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute(
        f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}"
    )


@contextmanager
def indexes_built_after(
    conn: psycopg.Connection[Any], table: str, methods: tuple[str, ...]
) -> Iterator[dict[str, float]]:
    """Drop the table's indexes of these access methods (the migration's HNSW
    and GIN), yield for a bulk load, recreate them from their own definitions.
    Yields a dict that gets the seconds per index."""
    defs = conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid), a.amname FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam "
        "WHERE x.indrelid = %s::regclass AND a.amname = ANY(%s)",
        (table, list(methods)),
    ).fetchall()
    for name, _, _ in defs:
        conn.execute(f'DROP INDEX "{name}"')
    seconds: dict[str, float] = {}
    yield seconds
    fast_index_settings(conn)
    for _, definition, method in defs:
        started = time.perf_counter()
        conn.execute(definition)
        seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - started
    conn.execute(f"ANALYZE {table}")


# The bench corpora's chunk rows, written by binary COPY (synthetic and real text).
CHUNK_COPY = (
    "COPY document_chunks (document_id, chunk_number, heading, text, content_hash, embedding, "
    "department, priority, clearance_level) FROM STDIN WITH (FORMAT BINARY)"
)
CHUNK_COPY_TYPES = [
    "int8",
    "int4",
    "text",
    "text",
    "text",
    "vector",
    "text",
    "int2",
    "int2",
]


# -- synthetic text corpus (lexical scaling, throughput, 384-dim index accuracy) ---------
def word_sampler(docs: list[cranfield.Doc]) -> Callable[[random.Random, int], str]:
    """Words drawn from Cranfield's word frequencies (the same draws as
    random.choices with weights, without re-summing the weights per call)."""
    counts = Counter(w for d in docs for w in d.abstract.split() if w.isalpha())
    words = list(counts)
    cum = list(accumulate(counts[w] for w in words))
    total, hi = float(cum[-1]), len(cum) - 1

    def sample(rng: random.Random, n: int) -> str:
        r = rng.random
        return " ".join(words[bisect(cum, r() * total, 0, hi)] for _ in range(n))

    return sample


def load_synthetic_chunks(
    conn: psycopg.Connection[Any],
    sample: Callable[[random.Random, int], str],
    start: int,
    count: int,
    dim: int,
) -> float:
    """Documents of 10 chunks each, ~120 words drawn from Cranfield's word
    frequencies, unit vectors around 200 topic centres, departments and
    clearance levels in a fixed pattern; loaded with COPY (the statement
    triggers keep the BM25 statistics). Chunks ``start`` .. ``start+count`` are
    the same in every database and run. Returns seconds."""
    middle = centers(dim)
    started = time.perf_counter()
    docs = range(start // 10, (start + count) // 10)
    # every document from its own seeds: document d is the same whatever the
    # range loaded (a 10k corpus is the first tenth of the 100k one)
    rngs = {d: random.Random(d) for d in docs}
    with conn.transaction():
        with conn.cursor().copy(
            "COPY documents (source, external_id, title, department, clearance_level, "
            "content_hash, metadata, chunk_count) FROM STDIN"
        ) as copy:
            meta = json.dumps({"bench_corpus": CORPUS_VERSION})
            for d in docs:
                copy.write_row(
                    (
                        SOURCE,
                        f"syn-{d}",
                        sample(rngs[d], 8),
                        DEPARTMENTS[d % 10],
                        1 + d % 3,
                        "x",
                        meta,
                        10,
                    )
                )
        ids = dict(
            conn.execute(
                "SELECT external_id, id FROM documents WHERE source = %s AND external_id = ANY(%s)",
                (SOURCE, [f"syn-{d}" for d in docs]),
            ).fetchall()
        )
        with conn.cursor().copy(CHUNK_COPY) as copy:
            copy.set_types(CHUNK_COPY_TYPES)
            for d in docs:
                vecs = clustered_vectors(10, dim, np.random.default_rng(d), middle)
                for n in range(10):
                    copy.write_row(
                        (
                            ids[f"syn-{d}"],
                            n,
                            "",
                            sample(rngs[d], 120),
                            "x",
                            vecs[n],
                            DEPARTMENTS[d % 10],
                            3,
                            1 + d % 3,
                        )
                    )
    conn.execute("ANALYZE documents")
    conn.execute("ANALYZE document_chunks")
    return time.perf_counter() - started


@dataclass
class Corpus:
    """A database holding the first ``chunks`` chunks of a corpus (synthetic or
    real text), indexes built."""

    settings: Settings
    chunks: int
    load_s: float
    index_s: dict[str, float]
    corpus: str = SYNTHETIC


def synthetic_corpus(
    stack: Stack,
    sample: Callable[[random.Random, int], str],
    size: int,
    overrides: dict[str, str],
) -> Corpus:
    settings = stack.new_database(f"bench_syn_{size}", **overrides)
    with stack.owner(settings.database_name) as conn:
        with indexes_built_after(conn, "document_chunks", ("hnsw", "gin")) as built:
            load = load_synthetic_chunks(
                conn, sample, 0, size, settings.embedding_dimension
            )
        # hint bits and the visibility map set now, not by the first searches
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) documents, document_chunks")
        load += time.perf_counter() - started
    return Corpus(settings, size, load, built)


@dataclass
class LexicalScaleRow:
    chunks: int
    p50_ms: float
    p95_ms: float
    load_s: float


def lexical_latency(
    stack: Stack, settings: list[Settings], queries: list[str]
) -> list[tuple[float, float]]:
    """p50/p95 of the lexical CTE in each database, queries interleaved across
    the databases so that load from other processes hits every size alike."""
    from vector_search.search import Filters, filter_predicate

    engine = engine_for(settings[0])
    sql = f"WITH lex AS MATERIALIZED ({engine.retriever.cte(filter_predicate(Filters()))}) SELECT count(*) FROM lex"
    params = {
        **engine.retriever.params(),
        "tsconfig": settings[0].text_search_config,
        "candidates": settings[0].search_candidates,
        "clearance": 1,
    }
    times: list[list[float]] = [[] for _ in settings]
    conns = [
        psycopg.connect(stack.app_dsn(s.database_name), autocommit=True)
        for s in settings
    ]
    try:
        for conn in conns:
            for query in queries[:5]:  # warm the caches
                conn.execute(sql, {**params, "query": query})  # type: ignore[arg-type]
        for query in queries:
            for n, conn in enumerate(conns):
                started = time.perf_counter()
                conn.execute(sql, {**params, "query": query})  # type: ignore[arg-type]
                times[n].append(time.perf_counter() - started)
    finally:
        for conn in conns:
            conn.close()
    return [(pct(t, 50), pct(t, 95)) for t in times]


# -- section 2: index accuracy ------------------------------------------------------
@dataclass
class IndexRow:
    dim: int
    rows: int
    table: str
    filtered: str
    share: float  # fraction of the rows the filter keeps
    queries: int
    recall10: float
    recall_ci: float  # half-width of a 95% confidence interval
    hnsw_ms: float
    exact_ms: float
    plan: str
    ef_search: int
    build_s: float
    exact_queries: int = 0  # how many queries PostgreSQL's exact scan was timed on
    exact_agreement: float = 1.0  # PostgreSQL's exact top 10 vs numpy's, on those
    # where the planner chose exact: the HNSW index scan forced, recall and p50
    forced_recall10: float | None = None
    forced_ms: float | None = None


# (label, SQL predicate, department, max clearance): the service's filters
ANN_FILTERS: tuple[tuple[str, str, str | None, int | None], ...] = (
    ("none", "true", None, None),
    ("department", "department = 'dept-3'", "dept-3", None),
    (
        "department + clearance <= 2",
        "department = 'dept-3' AND clearance_level <= 2",
        "dept-3",
        2,
    ),
)
# distances this close to the 10th nearest count as ties (float32 storage)
TIE = 1e-6


def copy_vectors(
    conn: psycopg.Connection[Any], table: str, vectors: np.ndarray
) -> None:
    """Binary COPY of (id, department, clearance_level, embedding) rows built
    with numpy in one buffer (row-by-row adaptation of 100k x 1024 floats
    costs more than the COPY itself). Row i: department dept-(i % 10),
    clearance 1 + (i // 10) % 3: the filters keep 10% and 6.7% of the rows, as in
    the synthetic corpus."""
    n, dim = vectors.shape
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i4"),
            ("dep_len", ">i4"),
            ("dep", "S6"),
            ("cl_len", ">i4"),
            ("cl", ">i2"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (dim,)),
        ]
    )
    rows = np.zeros(n, dtype=row)
    ids = np.arange(n)
    rows["fields"], rows["id_len"], rows["id"] = 4, 4, ids
    rows["dep_len"], rows["dep"] = 6, np.char.add(b"dept-", (ids % 10).astype("S1"))
    rows["cl_len"], rows["cl"] = 2, 1 + (ids // 10) % 3
    rows["vec_len"], rows["dim"], rows["vec"] = 4 + 4 * dim, dim, vectors
    data = rows.tobytes()
    with conn.cursor().copy(
        f"COPY {table} (id, department, clearance_level, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
        step = 1 << 24
        for i in range(0, len(data), step):
            copy.write(data[i : i + step])
        copy.write(struct.pack(">h", -1))


def ann_table(conn: psycopg.Connection[Any], dim: int, rows: int) -> float:
    """Table ann_<dim>: ``rows`` clustered vectors with the service's HNSW
    definition, built after the load. Returns the HNSW build seconds."""
    table = f"ann_{dim}"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, department text, "
        f"clearance_level smallint, embedding vector({dim}))"
    )
    copy_vectors(
        conn,
        table,
        clustered_vectors(rows, dim, np.random.default_rng(dim), centers(dim)),
    )
    fast_index_settings(conn)
    started = time.perf_counter()
    conn.execute(
        f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    build = time.perf_counter() - started
    conn.execute(f"CREATE INDEX ON {table} (department)")
    conn.execute(f"CREATE INDEX ON {table} (clearance_level)")
    conn.execute(f"ANALYZE {table}")
    return build


def _table_arrays(
    conn: psycopg.Connection[Any], table: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, departments, clearance levels and unit vectors (float64) of every row."""
    ids, deps, levels, vecs = [], [], [], []
    with conn.cursor(binary=True) as cur:
        cur.execute(f"SELECT id, department, clearance_level, embedding FROM {table}")
        for rid, dep, level, vec in cur:
            ids.append(rid)
            deps.append(dep)
            levels.append(level)
            vecs.append(vec.to_numpy() if hasattr(vec, "to_numpy") else vec)
    x = np.asarray(vecs, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(ids), np.asarray(deps, dtype=object), np.asarray(levels), x


def _recall(found: list[int], distance: dict[int, float], kth: float) -> float:
    """Share of the true 10 nearest found; a row at the 10th distance (within
    TIE) counts, whichever of equally near rows either side returned."""
    hits = sum(1 for i in found[:10] if distance.get(i, np.inf) <= kth + TIE)
    return hits / 10


def index_accuracy(
    conn: psycopg.Connection[Any],
    table: str,
    dim: int,
    ef: int,
    queries: int,
    exact_queries: int,
    build_s: float,
) -> list[IndexRow]:
    """recall@10 of the service's HNSW query in ``table`` against the true 10
    nearest rows (brute force in numpy, float64) for ``queries`` queries drawn
    like the rows, per filter; p50 latency of the HNSW query and, on the first
    ``exact_queries`` queries, of PostgreSQL's exact scan (index scans off),
    whose answers are checked against numpy's."""
    register_vector(conn)
    # never prepared: a cached plan would ignore enable_indexscan and time the
    # same plan twice
    conn.prepare_threshold = None
    ids, deps, levels, x = _table_arrays(conn, table)
    qs = clustered_vectors(queries, dim, np.random.default_rng(dim + 1), centers(dim))
    q64 = qs.astype(np.float64)
    q64 /= np.linalg.norm(q64, axis=1, keepdims=True)
    settings_sql = (
        "SELECT set_config('hnsw.ef_search', %s, true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    )
    hnsw = [
        name
        for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%USING hnsw%%'",
            (table,),
        ).fetchall()
    ]
    out: list[IndexRow] = []
    for label, where, department, max_level in ANN_FILTERS:
        mask = np.ones(len(ids), dtype=bool)
        if department is not None:
            mask &= deps == department
        if max_level is not None:
            mask &= levels <= max_level
        kept_ids, kept = ids[mask], x[mask]
        distances = 1 - kept @ q64.T  # rows x queries
        sql = (
            f"SELECT id FROM (SELECT id, embedding <=> %(q)s AS d FROM {table} WHERE {where} "
            f"ORDER BY embedding <=> %(q)s LIMIT 10) s ORDER BY d"
        )
        with conn.transaction():
            conn.execute(settings_sql, (str(ef),))
            plan = json.dumps(
                conn.execute("EXPLAIN (FORMAT JSON) " + sql, {"q": qs[0]}).fetchone()
            )
        uses = (
            "HNSW"
            if any(f'"{name}"' in plan for name in hnsw)
            else "exact (btree filter + sort)"
        )
        recalls: list[float] = []
        agreement: list[float] = []
        forced: list[float] = []
        t_hnsw: list[float] = []
        t_exact: list[float] = []
        t_forced: list[float] = []
        for n, q in enumerate(qs):
            column = distances[:, n]
            nearest = np.argpartition(column, 9)[:10]
            kth = float(column[nearest].max())
            # every row within reach of the top 10, by id
            near = np.flatnonzero(column <= kth + TIE)
            distance = {int(kept_ids[i]): float(column[i]) for i in near}
            with conn.transaction():
                conn.execute(settings_sql, (str(ef),))
                started = time.perf_counter()
                approx = [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]
                t_hnsw.append(time.perf_counter() - started)
            recalls.append(_recall(approx, distance, kth))
            if uses != "HNSW":
                # what HNSW itself would do here (iterative scan): sorts and
                # the other scans priced out
                with conn.transaction():
                    conn.execute(settings_sql, (str(ef),))
                    conn.execute(
                        "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off; "
                        "SET LOCAL enable_bitmapscan = off"
                    )
                    started = time.perf_counter()
                    found = [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]
                    t_forced.append(time.perf_counter() - started)
                forced.append(_recall(found, distance, kth))
            if n < exact_queries:
                with conn.transaction():
                    conn.execute("SET LOCAL enable_indexscan = off")
                    started = time.perf_counter()
                    exact = [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]
                    t_exact.append(time.perf_counter() - started)
                agreement.append(_recall(exact, distance, kth))
        ci = (
            1.96 * statistics.stdev(recalls) / len(recalls) ** 0.5
            if len(recalls) > 1
            else 0.0
        )
        out.append(
            IndexRow(
                dim,
                len(ids),
                table,
                label,
                float(mask.mean()),
                len(recalls),
                statistics.fmean(recalls),
                ci,
                pct(t_hnsw, 50),
                pct(t_exact, 50),
                uses,
                ef,
                build_s,
                len(t_exact),
                statistics.fmean(agreement) if agreement else float("nan"),
                statistics.fmean(forced) if forced else None,
                pct(t_forced, 50) if t_forced else None,
            )
        )
    return out


# -- section 1: throughput -------------------------------------------------------------
@dataclass
class ThroughputRow:
    chunks: int
    path: str
    concurrency: int
    requests: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    limited: int = 0  # 429s: the rate limits, not throughput
    errors: int = 0
    note: str = ""
    lab: bool = False


def throughput_row(
    chunks: int,
    path: str,
    concurrency: int,
    result: Drive,
    note: str = "",
    lab: bool = False,
) -> ThroughputRow:
    ok = result.latencies
    limited = sum(n for k, n in result.outcomes.items() if k.startswith("429"))
    errors = sum(result.outcomes.values()) - len(ok) - limited
    if errors:
        note += "; failures: " + ", ".join(
            f"{k} x{n}"
            for k, n in sorted(result.outcomes.items())
            if k != "ok" and not k.startswith("429")
        )
    return ThroughputRow(
        chunks,
        path,
        concurrency,
        len(ok),
        len(ok) / result.elapsed if result.elapsed else 0.0,
        pct(ok, 50),
        pct(ok, 95),
        pct(ok, 99),
        limited,
        errors,
        note.strip("; "),
        lab,
    )


def throughput_psycopg(
    stack: Stack,
    settings: Settings,
    queries: list[str],
    vectors: list[list[float]],
    clearance: int,
    max_results: int,
    concurrency: int,
    seconds: float,
) -> Drive:
    from bench.labside import drive_psycopg

    return drive_psycopg(
        stack.app_dsn(settings.database_name),
        settings.database_prepare_threshold,
        engine_for(settings),
        queries,
        vectors,
        clearance,
        max_results,
        ALL_RESULTS_THRESHOLD,
        concurrency,
        seconds,
    )


def _connection(base_url: str, insecure: bool) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        context = (
            ssl._create_unverified_context()
            if insecure
            else ssl.create_default_context()
        )
        return http.client.HTTPSConnection(parts.netloc, timeout=60, context=context)
    return http.client.HTTPConnection(parts.netloc, timeout=60)


def _outcome(status: int, payload: bytes) -> str:
    if status == 200:
        return "ok"
    if status == 429:  # nginx answers with its own page, the app with JSON
        return "429 app" if payload.lstrip().startswith(b"{") else "429 nginx"
    return str(status)


def _search(
    conn: http.client.HTTPConnection,
    base_url: str,
    body: dict[str, Any],
    key: str | None,
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    path = urlsplit(base_url).path.rstrip("/") + "/api/search"
    for attempt in (1, 2):
        try:
            conn.request("POST", path, json.dumps(body), headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the server closed an idle keep-alive connection: reconnect once
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def throughput_http(
    base_url: str,
    queries: list[str],
    concurrency: int,
    seconds: float,
    vary: bool,
    keys: list[list[str]],
    insecure: bool = False,
) -> Drive:
    """``concurrency`` clients, each with its own API keys (``keys[client]``,
    used in turn: one key alone would hit the per-key rate limits long before
    the service's capacity). ``vary``: a unique, result-neutral similarity
    threshold per request misses the response cache while the query
    embedding stays cached (the SQL and its parameters are those of row (a))."""
    conns: dict[int, http.client.HTTPConnection] = {}
    counter = iter(range(10**9))

    def setup(w: int) -> None:
        conns[w] = _connection(base_url, insecure)
        work(w, w)  # connected (TLS handshake), not measured

    def work(w: int, i: int) -> str:
        threshold = (
            ALL_RESULTS_THRESHOLD + (next(counter) + 1) * 1e-9
            if vary
            else ALL_RESULTS_THRESHOLD
        )
        body = {
            "query": queries[i % len(queries)],
            "config": {"similarity_threshold": threshold},
        }
        mine = keys[w]
        status, payload = _search(
            conns[w], base_url, body, mine[(i // concurrency) % len(mine)]
        )
        return _outcome(status, payload)

    try:
        return drive(concurrency, seconds, work, setup)
    finally:
        for conn in conns.values():
            conn.close()


class StaleKeys(RuntimeError):
    """The service rejected an API key (401): the lab was rebuilt since the keys were made."""


def warm_http(
    base_url: str, queries: list[str], keys: list[str], insecure: bool = False
) -> Counter[str]:
    """Every query once (fills the embedding cache and, for the threshold the
    cached rows use, the response cache), every key at least once (a 401
    raises StaleKeys)."""
    conn = _connection(base_url, insecure)
    outcomes: Counter[str] = Counter()
    try:
        for i in range(max(len(queries), len(keys))):
            body = {
                "query": queries[i % len(queries)],
                "config": {"similarity_threshold": ALL_RESULTS_THRESHOLD},
            }
            status, payload = _search(conn, base_url, body, keys[i % len(keys)])
            if status == 401:
                raise StaleKeys(payload[:200].decode(errors="replace"))
            outcomes[_outcome(status, payload)] += 1
    finally:
        conn.close()
    return outcomes


class AppServer:
    def __init__(
        self, stack: Stack, settings_env: dict[str, str], threads: int
    ) -> None:
        self.port = free_port()
        fd, name = tempfile.mkstemp(prefix="bench-app-", suffix=".log")
        self.log_path = Path(name)
        self.log = os.fdopen(fd, "wb")
        env = {**os.environ, **settings_env, "THREADS": str(threads)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vector_search",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the app exited: {self.log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/health/ready", timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the app did not become ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        self.log_path.unlink(missing_ok=True)


# -- section 3: ingestion ----------------------------------------------------------------
@dataclass
class IngestRow:
    path: str
    chunks: int
    seconds: float
    rate: float
    note: str = ""


@dataclass
class IngestResult:
    rows: list[IngestRow] = field(default_factory=list)


def ingestion(
    stack: Stack, docs: list[cranfield.Doc], workdir: Path
) -> list[IngestRow]:
    settings = stack.new_database("bench_ingest")
    path = workdir / "ingest.jsonl"
    cranfield.write_jsonl(docs, path)
    embedder = OllamaEmbedder(settings)
    try:
        with stack.owner(settings.database_name) as conn:
            summary = Ingestor(conn, embedder, settings).ingest(
                [path], source="ingest-bench"
            )
            rows = conn.execute(
                "SELECT heading, text FROM document_chunks ORDER BY id"
            ).fetchall()
        texts = [
            embedding_input(h, t) + " " for h, t in rows
        ]  # a changed text: no reuse of any cache
        started = time.perf_counter()
        size = settings.embed_batch_size
        for i in range(0, len(texts), size):
            embedder.embed(texts[i : i + size])
        alone = time.perf_counter() - started
    finally:
        embedder.close()
    return [
        IngestRow(
            "end to end (vector-search ingest)",
            summary.chunks_written,
            summary.seconds,
            summary.chunks_written / summary.seconds,
        ),
        IngestRow(
            f"embedder alone (stand-in, batches of {settings.embed_batch_size})",
            len(texts),
            alone,
            len(texts) / alone,
        ),
    ]


def digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
