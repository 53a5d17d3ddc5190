"""The benchmark's lab path without a lab: the corpus stream that feeds the
lab's database (export, load, reload, shrink, drop), the binary COPY of
vectors, percentiles, and the skip message when the lab is not up."""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from vector_search.config import Settings, load_settings
from vector_search.migrations import migrate

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "app"))

from vs_services import Postgres, create_database, start_postgres

from bench import lab, labside, perf


def _settings(pg: Postgres, dbname: str) -> Settings:
    return load_settings(
        environ={
            "DATABASE_HOST": "127.0.0.1",
            "DATABASE_PORT": str(pg.port),
            "DATABASE_NAME": dbname,
            "DATABASE_USER": "vs_app",
            "DATABASE_PASSWORD": "app-pw",
            "DATABASE_OWNER_USER": "vs_owner",
            "DATABASE_OWNER_PASSWORD": "owner-pw",
            "DATABASE_SSLMODE": "disable",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "OLLAMA_URL": "http://127.0.0.1:1",
            "EMBEDDING_DIMENSION": "384",
        },
        env_file="/dev/null",
    )


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def _owner(pg: Postgres, dbname: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(pg.dsn(dbname, "vs_owner", "owner-pw"), autocommit=True)
    register_vector(conn)
    return conn


def _database(pg: Postgres, name: str) -> psycopg.Connection[Any]:
    create_database(pg, name)
    conn = _owner(pg, name)
    migrate(conn, _settings(pg, name))
    return conn


def _export(conn: psycopg.Connection[Any]) -> bytes:
    with conn.cursor().copy(labside.EXPORT_SQL) as copy:
        return b"".join(bytes(data) for data in copy)


def _chunks(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT d.external_id, d.title, c.chunk_number, c.text, c.embedding::text, "
        "c.department, c.clearance_level, c.tsv::text FROM document_chunks c "
        "JOIN documents d ON d.id = c.document_id WHERE d.source = 'synthetic' "
        "ORDER BY d.external_id, c.chunk_number"
    ).fetchall()


def _stats(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT chunk_count, (SELECT count(*) FROM document_chunks) FROM corpus_stats"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _hnsw(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The search indexes (HNSW, GIN) and whether they are valid."""
    return conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid), x.indisvalid FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam "
        "WHERE x.indrelid = 'document_chunks'::regclass AND a.amname IN ('hnsw', 'gin') "
        "ORDER BY 1"
    ).fetchall()


def test_corpus_stream_load_reload_shrink_drop(
    pg: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # more than 5 new (or removed) chunks: the HNSW and GIN indexes are built
    # again after the load (over what is left)
    monkeypatch.setattr(labside, "BULK_CHUNKS", 5)
    words = ["wing", "flow", "shock", "boundary", "layer", "heat", "mach"]

    def sample_words(rng: random.Random, n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    src = _database(pg, "lab_src")
    dst = _database(pg, "lab_dst")
    small = _database(pg, "lab_small")
    try:
        perf.load_synthetic_chunks(src, sample_words, 0, 30, 384)
        perf.load_synthetic_chunks(small, sample_words, 0, 20, 384)
        # a document of the lab's own (the sample corpus) must survive
        doc = dst.execute(
            "INSERT INTO documents (source, external_id, title, content_hash) "
            "VALUES ('sample', 'kept', 'kept', 'x') RETURNING id"
        ).fetchone()
        assert doc is not None
        dst.execute(
            "INSERT INTO document_chunks (document_id, chunk_number, text, content_hash, "
            "embedding, priority, clearance_level) VALUES (%s, 0, 'kept words', 'x', %s, 3, 1)",
            (doc[0], np.ones(384, dtype=np.float32)),
        )

        hnsw = _hnsw(dst)
        first = labside.load_corpus(dst, io.BytesIO(_export(src)))
        assert (first["documents_added"], first["chunks_added"]) == (3, 30)
        assert first["indexes_rebuilt"] and _hnsw(dst) == hnsw  # the same index again
        assert first["synthetic_chunks"] == 30 and first["all_chunks"] == 31
        assert _chunks(dst) == _chunks(src)  # the same corpus, tsvectors included
        assert _stats(dst) == (31, 31)  # the BM25 statistics follow

        again = labside.load_corpus(dst, io.BytesIO(_export(src)))
        assert (again["documents_added"], again["chunks_added"]) == (0, 0)
        assert again["documents_removed"] == 0 and not again["indexes_rebuilt"]

        shrunk = labside.load_corpus(dst, io.BytesIO(_export(small)))
        assert shrunk["documents_removed"] == 1 and shrunk["synthetic_chunks"] == 20
        assert shrunk["chunks_removed"] == 10 and _hnsw(dst) == hnsw
        assert _chunks(dst) == _chunks(small)
        assert _stats(dst) == (21, 21)

        dropped = labside.drop_corpus(dst)
        assert dropped["documents_removed"] == 2
        assert _stats(dst) == (1, 1)
        assert _hnsw(dst) == hnsw
        assert dst.execute(
            "SELECT count(*) FROM documents WHERE external_id = 'kept'"
        ).fetchone() == (1,)
    finally:
        for conn in (src, dst, small):
            conn.close()


def test_copy_vectors_binary_rows(pg: Postgres) -> None:
    create_database(pg, "lab_vectors")
    conn = _owner(pg, "lab_vectors")
    try:
        conn.execute(
            "CREATE TABLE v (id int PRIMARY KEY, department text, clearance_level smallint, "
            "embedding vector(8))"
        )
        data = np.random.default_rng(1).normal(0, 1, (25, 8)).astype(np.float32)
        perf.copy_vectors(conn, "v", data)
        rows = conn.execute(
            "SELECT id, department, clearance_level, embedding FROM v ORDER BY id"
        ).fetchall()
        assert [r[0] for r in rows] == list(range(25))
        assert [r[1] for r in rows] == [f"dept-{i % 10}" for i in range(25)]
        assert [r[2] for r in rows] == [1 + (i // 10) % 3 for i in range(25)]
        assert np.array_equal(np.array([r[3].to_numpy() for r in rows]), data)
    finally:
        conn.close()


def test_percentile_matches_numpy() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(101)]
    for q in (50, 95, 99):
        assert labside.percentile(values, q) == pytest.approx(
            float(np.percentile(values, q)) * 1000
        )


def test_lab_not_up_is_a_skip_message(tmp_path: Path) -> None:
    reason = lab.Lab(keys_file=tmp_path / "keys.txt").unavailable()
    assert reason is not None and reason.startswith(
        "row (c) skipped: run `make lab` first"
    )
