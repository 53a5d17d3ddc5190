"""The benchmark harness runs in --quick mode and reports every section.

It asserts only that it runs and reports, never speeds (issue 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRANFIELD = Path(
    os.environ.get("BENCH_CRANFIELD_DIR")
    or REPO.parent / "shared" / "benchmarks" / "cranfield"
)


@pytest.mark.skipif(
    not (CRANFIELD / "cran.qry").exists(), reason="Cranfield collection not present"
)
def test_quick_mode_reports_every_section(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = output.read_text()
    for heading in (
        "## 1. Throughput",
        "## 2. Index accuracy",
        "## 3. Ingestion",
        "## 4. Relevance on Cranfield",
        "### Lexical latency vs corpus size",
        "## 5. Hybrid query cost",
        "## 6. The app's fixed cost per request",
        "cached/uncached latency ratio through the app: ",
        "## 7. Lexical retriever vs exact BM25",
        "## Acceptance (issue 15)",
    ):
        assert heading in report
    assert "Not run" not in report
    for row in (
        "| service lexical (bm25) |",
        "| vectors (HNSW, all-minilm 384) |",
        "| service hybrid |",
        "| BM25 library (bm25s",
        "| (a) psycopg, same SQL |",
        "| (b) app (waitress), response cache missed |",
        "| (b) app (waitress), cached response (Redis hit) |",
        "| (c) nginx + app (lab) |",
        "| end to end (vector-search ingest) |",
        "| embedder alone (stand-in",
        "| 384 | ",
        "| 1024 | ",
        "| HNSW top-10 alone |",
        "| hybrid SQL before issue 15 |",
        "| hybrid SQL (service) |",
        "| full | cached | 30 |",
        "| default | uncached | 30 |",
        "| no limiter | cached | 30 |",
        "| API key lookup, in place |",
        "| real text | 5000 | hybrid SQL (service) |",
        "| synthetic | 5000 | bm25 |",
        "| real text | 5000 | bm25 |",
    ):
        assert row in report, row
    assert "Machine:" in report and "reproduce" in report
    # --quick never touches the lab, and says so in row (c)
    assert "row (c) skipped: --quick never touches the lab" in report
    assert "| chunks | load s | HNSW build s | GIN build s |" in report
    assert "bench: total " in result.stderr
    # the old and the new hybrid SQL return the same results on every query
    assert "results identical old vs new for 20 of 20 queries" in report
    # the report ends with the acceptance list, one line per figure
    tail = report.rstrip("\n").splitlines()[-5:]
    assert [line.rsplit(": ", 1)[0] for line in tail] == [
        "- hybrid/KNN CPU ratio at 5000 chunks (synthetic)",
        "- hybrid/KNN CPU ratio at 5000 chunks (real text)",
        "- lexical overlap@10 with exact BM25 at 5000 chunks (synthetic)",
        "- lexical overlap@10 with exact BM25 at 5000 chunks (real text)",
        "- Cranfield hybrid nDCG@10",
    ]
    assert "not measured" not in "\n".join(tail)
