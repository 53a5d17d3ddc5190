"""Sections 1-3 and the lexical scaling check: synthetic corpora, index
accuracy, throughput (psycopg vs the app), ingestion vs the embedder alone."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from vector_search.config import Settings
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor, embedding_input
from vector_search.search import (
    Filters,
    QueryConfig,
    SearchRequest,
    filter_predicate,
)

from bench import cranfield
from bench.services import Stack, engine_for, free_port

DEPARTMENTS = [f"dept-{i}" for i in range(10)]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) * 1000 if values else float("nan")


def service_ef_search(settings: Settings) -> int:
    """What SearchEngine.run sets with SET LOCAL."""
    return max(40, min(settings.search_candidates, 1000))


# -- synthetic vectors -----------------------------------------------------------
def clustered_vectors(
    n: int, dim: int, rng: np.random.Generator, centers: np.ndarray
) -> np.ndarray:
    """Unit vectors around random cluster centres (embeddings cluster by topic;
    uniform random vectors would be an unrealistically hard case for HNSW)."""
    picks = rng.integers(0, len(centers), n)
    vectors = centers[picks] + rng.normal(0, 0.5 / np.sqrt(dim), (n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


# -- section 2: index accuracy ------------------------------------------------------
@dataclass
class IndexRow:
    dim: int
    rows: int
    filtered: str
    recall10: float
    hnsw_ms: float
    exact_ms: float
    ef_search: int
    build_s: float


def index_accuracy(
    stack: Stack, settings: Settings, dims: list[int], rows: int, queries: int
) -> list[IndexRow]:
    ef = service_ef_search(settings)
    out: list[IndexRow] = []
    rng = np.random.default_rng(7)
    with stack.pg.connect("bench_perf") as conn:
        register_vector(conn)
        # never prepared: a cached plan would ignore enable_indexscan and time
        # the same plan twice
        conn.prepare_threshold = None
        for dim in dims:
            table = f"ann_{dim}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} (id int PRIMARY KEY, department text, clearance_level smallint, embedding vector({dim}))"
            )
            centers = rng.normal(0, 1, (200, dim))
            centers /= np.linalg.norm(centers, axis=1, keepdims=True)
            data = clustered_vectors(rows, dim, rng, centers)
            with conn.cursor().copy(
                f"COPY {table} (id, department, clearance_level, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int4", "text", "int2", "vector"])
                for i, vec in enumerate(data):
                    copy.write_row((i, DEPARTMENTS[i % 10], 1 + (i // 10) % 5, vec))
            started = time.perf_counter()
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            conn.execute(f"CREATE INDEX ON {table} (department)")
            conn.execute(f"ANALYZE {table}")
            build = time.perf_counter() - started
            qs = clustered_vectors(queries, dim, rng, centers)
            for label, where in (
                ("none", "true"),
                ("department (10%)", "department = 'dept-3'"),
                (
                    "department + clearance <= 2 (4%)",
                    "department = 'dept-3' AND clearance_level <= 2",
                ),
            ):
                sql = (
                    f"SELECT id FROM (SELECT id, embedding <=> %(q)s AS d FROM {table} WHERE {where} "
                    f"ORDER BY embedding <=> %(q)s LIMIT 10) s ORDER BY d"
                )
                recalls: list[float] = []
                t_hnsw: list[float] = []
                t_exact: list[float] = []
                for q in qs:
                    with conn.transaction():
                        conn.execute(
                            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                            (str(ef),),
                        )
                        started = time.perf_counter()
                        approx = [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]  # type: ignore[arg-type]
                        t_hnsw.append(time.perf_counter() - started)
                    with conn.transaction():
                        conn.execute("SET LOCAL enable_indexscan = off")
                        started = time.perf_counter()
                        exact = [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]  # type: ignore[arg-type]
                        t_exact.append(time.perf_counter() - started)
                    recalls.append(len(set(approx) & set(exact)) / max(len(exact), 1))
                out.append(
                    IndexRow(
                        dim,
                        rows,
                        label,
                        statistics.fmean(recalls),
                        pct(t_hnsw, 50),
                        pct(t_exact, 50),
                        ef,
                        build,
                    )
                )
            conn.execute(f"DROP TABLE {table}")
    return out


# -- synthetic text corpus (lexical scaling, throughput) ------------------------------
def word_sampler(docs: list[cranfield.Doc]) -> Callable[[random.Random, int], str]:
    counts = Counter(w for d in docs for w in d.abstract.split() if w.isalpha())
    words = list(counts)
    weights = [counts[w] for w in words]

    def sample(rng: random.Random, n: int) -> str:
        return " ".join(rng.choices(words, weights, k=n))

    return sample


def load_synthetic_chunks(
    conn: psycopg.Connection[Any],
    sample: Callable[[random.Random, int], str],
    start: int,
    count: int,
    dim: int,
) -> float:
    """Documents of 10 chunks each, ~120 words drawn from Cranfield's word
    frequencies, random unit vectors; loaded with COPY (the triggers keep the
    BM25 statistics). Returns seconds."""
    rng = random.Random(start)
    nrng = np.random.default_rng(start)
    started = time.perf_counter()
    docs = range(start // 10, (start + count) // 10)
    with conn.transaction():
        with conn.cursor().copy(
            "COPY documents (source, external_id, title, department, clearance_level, content_hash) FROM STDIN"
        ) as copy:
            for d in docs:
                copy.write_row(
                    (
                        "synthetic",
                        f"syn-{d}",
                        sample(rng, 8),
                        DEPARTMENTS[d % 10],
                        1 + d % 3,
                        "x",
                    )
                )
        ids = dict(
            conn.execute(
                "SELECT external_id, id FROM documents WHERE source = 'synthetic' AND external_id = ANY(%s)",
                ([f"syn-{d}" for d in docs],),
            ).fetchall()
        )
        with conn.cursor().copy(
            "COPY document_chunks (document_id, chunk_number, heading, text, content_hash, embedding, "
            "department, priority, clearance_level) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
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
            )
            for d in docs:
                vecs = nrng.normal(0, 1, (10, dim)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                for n in range(10):
                    copy.write_row(
                        (
                            ids[f"syn-{d}"],
                            n,
                            "",
                            sample(rng, 120),
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


# -- section 1: throughput -------------------------------------------------------------
@dataclass
class ThroughputRow:
    path: str
    concurrency: int
    requests: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int = 0
    note: str = ""


def _drive(
    concurrency: int,
    seconds: float,
    work: Callable[[int, int], None],
    setup: Callable[[int], None] | None = None,
) -> tuple[list[float], int, float]:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(concurrency + 1)

    def worker(w: int) -> None:
        if setup is not None:
            setup(w)
        barrier.wait()
        i = w
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                work(w, i)
                latencies[w].append(time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - counted and reported
                errors[w] += 1
            i += concurrency

    threads = [
        threading.Thread(target=worker, args=(w,), daemon=True)
        for w in range(concurrency)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    stop = began + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = [x for xs in latencies for x in xs]
    return flat, sum(errors), elapsed


def _row(
    path: str, concurrency: int, result: tuple[list[float], int, float], note: str = ""
) -> ThroughputRow:
    lat, errors, elapsed = result
    return ThroughputRow(
        path,
        concurrency,
        len(lat),
        len(lat) / elapsed,
        pct(lat, 50),
        pct(lat, 95),
        pct(lat, 99),
        errors,
        note,
    )


def throughput_psycopg(
    stack: Stack,
    settings: Settings,
    queries: list[str],
    vectors: list[list[float]],
    concurrency: int,
    seconds: float,
) -> ThroughputRow:
    engine = engine_for(settings)
    conns: dict[int, psycopg.Connection[Any]] = {}

    def setup(w: int) -> None:
        conn = psycopg.connect(
            stack.app_dsn(settings.database_name),
            prepare_threshold=settings.database_prepare_threshold,
        )
        register_vector(conn)
        conns[w] = conn

    def work(w: int, i: int) -> None:
        conn = conns[w]
        request = SearchRequest(
            queries[i % len(queries)],
            config=QueryConfig(
                similarity_threshold=settings.default_similarity_threshold
            ),
        )
        with conn.transaction():
            engine.run(
                conn,
                request,
                vectors[i % len(queries)],
                1,
                settings.anonymous_max_results,
            )

    try:
        return _row(
            "(a) psycopg, same SQL",
            concurrency,
            _drive(concurrency, seconds, work, setup),
            "query vectors precomputed",
        )
    finally:
        for conn in conns.values():
            conn.close()


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


def throughput_http(
    base_url: str,
    label: str,
    queries: list[str],
    concurrency: int,
    seconds: float,
    vary: bool,
    note: str,
    insecure: bool = False,
) -> ThroughputRow:
    parts = urlsplit(base_url)
    conns: dict[int, http.client.HTTPConnection] = {}

    def setup(w: int) -> None:
        if parts.scheme == "https":
            import ssl

            context = (
                ssl._create_unverified_context()
                if insecure
                else ssl.create_default_context()
            )
            conns[w] = http.client.HTTPSConnection(
                parts.netloc, timeout=60, context=context
            )
        else:
            conns[w] = http.client.HTTPConnection(parts.netloc, timeout=60)

    counter = iter(range(10**9))

    def work(w: int, i: int) -> None:
        body: dict[str, Any] = {"query": queries[i % len(queries)]}
        if vary:
            # a unique, result-neutral threshold misses the response cache
            # while the query embedding stays cached: the same SQL as (a)
            body["config"] = {"similarity_threshold": 0.2 + next(counter) * 1e-9}
        conn = conns[w]
        conn.request(
            "POST",
            parts.path.rstrip("/") + "/api/search",
            json.dumps(body),
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload[:200]!r}")

    try:
        return _row(label, concurrency, _drive(concurrency, seconds, work, setup), note)
    finally:
        for conn in conns.values():
            conn.close()


def warm_http(base_url: str, queries: list[str]) -> None:
    for query in queries:
        request = urllib.request.Request(
            base_url + "/api/search",
            json.dumps({"query": query}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            r.read()


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
