"""Zero-downtime embedding model change (``vector-search reindex``) on a real
PostgreSQL with pgvector, real Redis and the Ollama stand-in.

The stand-in serves one real model (all-MiniLM-L6-v2, 384 dimensions). The
second model is :class:`RotatedMiniLMEmbedderDouble`, a test double of the
embedder (never of PostgreSQL): it asks the stand-in for all-minilm's vector
and places it in 512 dimensions by a fixed Householder reflection. That keeps
every cosine similarity exactly, so the expected top documents stay the same,
while the vectors live in another space of another size, as a real second
model's would: a 384-dimensional query cannot be run against its column, and
the old column cannot answer a 512-dimensional one.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pgvector.psycopg import register_vector
from vector_search import reindex
from vector_search.check import CheckResult, run_checks
from vector_search.cli import main
from vector_search.config import Settings
from vector_search.embedder import OllamaEmbedder
from vector_search.embedding_columns import NEXT, PRIMARY, load_columns
from vector_search.errors import EmbedderUnavailable
from vector_search.ingest import Ingestor, IngestSummary
from vector_search.migrations import LATEST_VERSION, MigrationError, migrate
from vector_search.runtime import Services
from vector_search.web.app import create_app
from vs_services import (
    CORPUS,
    Postgres,
    SettingsFactory,
    create_database,
    search,
)

DOUBLE_MODEL = "test-double-rotated-minilm"
DOUBLE_DIMENSION = 512


class RotatedMiniLMEmbedderDouble:
    """TEST DOUBLE of ``vector_search.embedder.OllamaEmbedder`` for a second model.

    all-minilm from the stand-in (384 dimensions), zero-padded to ``dimension``
    and reflected through a fixed random hyperplane (an isometry: cosines are
    unchanged). ``fail_after`` makes the n+1-th call fail as an unreachable
    Ollama would, to interrupt a fill."""

    def __init__(
        self,
        settings: Settings,
        dimension: int = DOUBLE_DIMENSION,
        model: str = DOUBLE_MODEL,
        fail_after: int | None = None,
    ) -> None:
        self._inner = OllamaEmbedder(settings)
        self._model, self._dimension = model, dimension
        rng = random.Random(20260801)
        normal = [rng.gauss(0, 1) for _ in range(dimension)]
        norm = math.sqrt(sum(x * x for x in normal))
        self._normal = [x / norm for x in normal]
        self.fail_after = fail_after
        self.calls = 0
        self.texts = 0

    @property
    def model(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(
        self, texts: Sequence[str], check_dimension: bool = True
    ) -> list[list[float]]:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise EmbedderUnavailable("embedder unreachable: test double interrupted")
        self.calls += 1
        self.texts += len(texts)
        out = []
        for vector in self._inner.embed(texts):
            padded = vector + [0.0] * (self._dimension - len(vector))
            dot = sum(a * b for a, b in zip(padded, self._normal, strict=True))
            out.append(
                [a - 2 * dot * u for a, u in zip(padded, self._normal, strict=True)]
            )
        return out

    def close(self) -> None:
        self._inner.close()


def _owner(postgres: Postgres, db: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(postgres.dsn(db, "vs_owner", "owner-pw"), autocommit=True)
    register_vector(conn)
    return conn


def _ingest(
    conn: psycopg.Connection[Any],
    settings: Settings,
    paths: list[Path],
    source: str,
    embedder: Any = None,
    factory: Callable[[str, int], Any] | None = None,
) -> IngestSummary:
    own = embedder is None
    embedder = embedder or OllamaEmbedder(settings)
    try:
        return Ingestor(conn, embedder, settings, embedder_factory=factory).ingest(
            paths, source=source
        )
    finally:
        if own:
            embedder.close()


def _document(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "reindex-quokka.md").write_text(
        "---\nid: reindex-quokka\ntitle: Quokka survey on Rottnest Island\n"
        "department: Biology\npriority: 3\nclearance_level: 1\n---\n"
        "Volunteers count quokkas in the dunes of Rottnest Island every spring. "
        "The quokka survey records each animal's weight and the habitat it lives in.\n"
    )
    return root


def _new_app(settings: Settings, base: Settings) -> Flask:
    """An instance configured with the double's model: its Services carry the double."""
    services = Services.build(settings)
    services.embedder.close()
    services.embedder = RotatedMiniLMEmbedderDouble(base)  # type: ignore[assignment]
    return create_app(settings, services)


def _top(client: FlaskClient, query: str) -> str:
    response = search(client, {"query": query})
    assert response.status_code == 200, response.json
    return str(response.json["results"][0]["document_id"])


def _schema(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a fresh install defines, by name (not by column position)."""
    queries = {
        "columns": "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
        "a.attnotnull, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) "
        "FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
        "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
        "registry": "SELECT column_name, model, dimension, ready_at IS NOT NULL "
        "FROM embedding_columns ORDER BY 1",
        "grants": "SELECT table_name, privilege_type, grantee FROM information_schema.role_table_grants "
        "WHERE table_schema = 'public' AND grantee = 'vs_app' ORDER BY 1, 2",
        "migrations": "SELECT version FROM schema_migrations ORDER BY 1",
    }
    return {name: conn.execute(q).fetchall() for name, q in queries.items()}  # type: ignore[arg-type]


def _fresh_schema(
    postgres: Postgres, make_settings: SettingsFactory, name: str, **env: str
) -> dict[str, list[tuple[Any, ...]]]:
    create_database(postgres, name)
    with _owner(postgres, name) as conn:
        migrate(conn, make_settings(DATABASE_NAME=name, **env))
        return _schema(conn)


def _wait_for_disconnect(conn: psycopg.Connection[Any], name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone():
            return
        time.sleep(0.1)
    raise AssertionError(f"connections named {name!r} still open")


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["vector_search"].close()


def test_model_change_without_downtime(
    postgres: Postgres,
    fresh_db: tuple[str, SettingsFactory],
    make_settings: SettingsFactory,
    tmp_path: Path,
    apps: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, factory = fresh_db
    old = factory()
    new = factory(
        EMBEDDING_MODEL=DOUBLE_MODEL, EMBEDDING_DIMENSION=str(DOUBLE_DIMENSION)
    )

    def double_factory(model: str, dimension: int) -> RotatedMiniLMEmbedderDouble:
        assert (model, dimension) == (DOUBLE_MODEL, DOUBLE_DIMENSION)
        return RotatedMiniLMEmbedderDouble(old)

    lines: list[str] = []
    conn = _owner(postgres, db)
    try:
        first = _ingest(conn, old, [CORPUS], "sample-corpus")
        assert first.documents_added == 12
        total = conn.execute("SELECT count(*) FROM document_chunks").fetchone()[0]  # type: ignore[index]

        old_app = create_app(old)
        apps.append(old_app)
        old_client = old_app.test_client()
        assert _top(old_client, "password reset instructions") == "it-password-reset"

        # start: a nullable column beside the current one; idempotent
        status = reindex.status(conn)
        assert status.phase == "no reindex in progress"
        double = RotatedMiniLMEmbedderDouble(old)
        message = reindex.start(conn, double, lines.append)
        assert "started" in message and "reindex fill" in message
        assert "already started" in reindex.start(conn, double, lines.append)
        assert [
            (c.column, c.model, c.dimension, c.ready) for c in load_columns(conn)
        ] == [
            (PRIMARY, "all-minilm", 384, True),
            (NEXT, DOUBLE_MODEL, DOUBLE_DIMENSION, False),
        ]
        other = RotatedMiniLMEmbedderDouble(old, dimension=256, model="other-model")
        with pytest.raises(reindex.ReindexError, match="in progress.*abort"):
            reindex.start(conn, other, lines.append)
        other.close()

        # nothing to index or finish before the fill is complete
        with pytest.raises(reindex.ReindexError, match="reindex fill first"):
            reindex.build_index(conn, lines.append)
        with pytest.raises(reindex.ReindexError, match="not ready"):
            reindex.finish(conn, out=lines.append)

        # fill, interrupted after two batches (Ollama gone), then resumed
        failing = RotatedMiniLMEmbedderDouble(old, fail_after=2)
        with pytest.raises(EmbedderUnavailable):
            reindex.fill(conn, failing, batch_size=5, out=lines.append)
        failing.close()
        filled = conn.execute(
            "SELECT count(embedding_next) FROM document_chunks"
        ).fetchone()[0]  # type: ignore[index]
        assert filled == 10
        status = reindex.status(conn)
        assert status.phase == f"filling (10/{total})"
        assert status.next_step == "vector-search reindex fill"

        # a document ingested during the reindex gets both embeddings
        extra = _document(tmp_path / "extra")
        added = _ingest(conn, old, [extra], "extra", factory=double_factory)
        assert added.documents_added == 1 and added.reindex_embedded >= 1
        assert (
            conn.execute(
                "SELECT count(*), count(c.embedding), count(c.embedding_next) "
                "FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.external_id = 'reindex-quokka'"
            ).fetchone()
            == (added.chunks_written,) * 3
        )

        stats = (
            "SELECT lexeme, doc_freq, xmin::text FROM lexeme_stats ORDER BY lexeme",
            "SELECT chunk_count, total_tokens, xmin::text FROM corpus_stats",
            (
                "SELECT lexeme, clearance_level, doc_freq, xmin::text FROM lexeme_level_stats "
                "ORDER BY lexeme, clearance_level"
            ),
            (
                "SELECT clearance_level, chunk_count, total_tokens, xmin::text "
                "FROM corpus_level_stats ORDER BY clearance_level"
            ),
        )
        stats_before = [conn.execute(q).fetchall() for q in stats]
        resumed = RotatedMiniLMEmbedderDouble(old)
        report = reindex.fill(conn, resumed, batch_size=8, out=lines.append)
        # only what the interrupted run and the ingest left: nothing twice
        assert resumed.texts == total - 10 == report.filled
        assert report.missing == 0 and report.constraint == "validated"
        assert any(
            line.startswith(f"filled {total + added.chunks_written}/") for line in lines
        )
        again = reindex.fill(conn, resumed, batch_size=8, out=lines.append)
        assert again.filled == 0
        resumed.close()
        # filling left the BM25 statistics alone: not one row version changed
        assert [conn.execute(q).fetchall() for q in stats] == stats_before
        # a row without the new embedding is refused from now on
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO document_chunks (document_id, chunk_number, text, content_hash, "
                "embedding, priority, clearance_level) SELECT document_id, 999, 'x', 'x', "
                "embedding, 1, 1 FROM document_chunks LIMIT 1"
            )

        # an instance already switched to the new model is not ready before the index
        new_app = _new_app(new, old)
        apps.append(new_app)
        new_client = new_app.test_client()
        ready = new_client.get("/health/ready")
        assert ready.status_code == 503
        assert "reindex index" in ready.json["database"]["error"]
        refused = search(new_client, {"query": "password reset instructions"})
        assert refused.status_code == 503 and "search index" in refused.json["message"]
        with pytest.raises(reindex.ReindexError, match="not searchable|no valid HNSW"):
            reindex.check_model(conn, DOUBLE_MODEL, DOUBLE_DIMENSION)

        # index: concurrently, with the current index's method, opclass and options
        built = reindex.build_index(conn, lines.append)
        assert "is valid" in built and "rolling_upgrade.yml" in built
        assert any("CREATE INDEX CONCURRENTLY" in line for line in lines)
        definitions = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'document_chunks'"
            ).fetchall()
        )
        assert definitions["document_chunks_embedding_next_hnsw"] == definitions[
            "document_chunks_embedding_hnsw"
        ].replace("embedding_hnsw", "embedding_next_hnsw").replace(
            "(embedding ", "(embedding_next "
        )
        assert "is searchable" in reindex.check_model(
            conn, DOUBLE_MODEL, DOUBLE_DIMENSION
        )

        # the rolling restart: old and new instances answer side by side
        assert (
            new_client.get("/health/ready").json["database"]["embedding_column"] == NEXT
        )
        assert (
            old_client.get("/health/ready").json["database"]["embedding_column"]
            == PRIMARY
        )
        for client in (old_client, new_client):
            assert _top(client, "password reset instructions") == "it-password-reset"
            assert _top(client, "eduroam wifi") == "it-eduroam"
            assert _top(client, "quokka survey on Rottnest Island") == "reindex-quokka"
        status = reindex.status(conn)
        assert status.phase == "ready; instances still use the old model"
        by_column = {c.column: c for c in status.columns}
        assert by_column[PRIMARY].connections >= 1 and by_column[NEXT].connections >= 1
        assert by_column[NEXT].filled == by_column[NEXT].total
        assert by_column[NEXT].index_valid and by_column[NEXT].ready

        # ingest with the new model configured: nothing looks changed
        switched = _ingest(
            conn,
            new,
            [CORPUS],
            "sample-corpus",
            embedder=RotatedMiniLMEmbedderDouble(old),
            factory=lambda m, d: OllamaEmbedder(old),
        )
        assert switched.documents_unchanged == 12 and switched.chunks_written == 0

        # finish waits for the last old-model instance to go
        with pytest.raises(reindex.ReindexError, match="announce all-minilm"):
            reindex.finish(conn, out=lines.append)
        apps.remove(old_app)
        old_app.extensions["vector_search"].close()
        _wait_for_disconnect(conn, "vector-search all-minilm/384")
        # A search arriving while finish holds its lock waits, then searches the
        # renamed column: no error at the switch. (Searches beforehand make
        # psycopg prepare the lookup statement, as in production.)
        for _ in range(6):
            assert _top(new_client, "eduroam wifi") == "it-eduroam"
        during: list[Any] = []
        searcher = threading.Thread(
            target=lambda: during.append(
                _top(new_client, "how do I reset my university password?")
            )
        )

        def finish_with_a_search_waiting(
            ddl_conn: psycopg.Connection[Any], work: Any, what: str, out: Any
        ) -> Any:
            def work_then_wait() -> Any:
                done = work()
                searcher.start()
                with postgres.connect(db) as watcher:
                    deadline = time.monotonic() + 20
                    while not watcher.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name = %s",
                        (f"vector-search {DOUBLE_MODEL}/{DOUBLE_DIMENSION}",),
                    ).fetchone():
                        assert time.monotonic() < deadline, "the search never waited"
                        time.sleep(0.05)
                return done

            return ddl(ddl_conn, work_then_wait, what, out)

        ddl = reindex._ddl
        monkeypatch.setattr(reindex, "_ddl", finish_with_a_search_waiting)
        finished = reindex.finish(conn, out=lines.append)
        monkeypatch.setattr(reindex, "_ddl", ddl)
        searcher.join(30)
        assert during == ["it-password-reset"]
        assert "column embedding is now test-double-rotated-minilm" in finished

        # the new instance follows the rename at its next search
        assert _top(new_client, "password reset instructions") == "it-password-reset"
        assert (
            new_client.get("/health/ready").json["database"]["embedding_column"]
            == PRIMARY
        )
        assert reindex.status(conn).phase == "no reindex in progress"
        results: list[CheckResult] = []
        run_checks(old, results.append)
        column_check = next(r for r in results if r.name == "embedding column")
        assert not column_check.ok and "reindex start" in column_check.detail

        # the schema is that of a fresh install with the new model
        assert _schema(conn) == _fresh_schema(
            postgres,
            make_settings,
            f"{db}_fresh_new",
            EMBEDDING_MODEL=DOUBLE_MODEL,
            EMBEDDING_DIMENSION=str(DOUBLE_DIMENSION),
        )
        more = _ingest(
            conn,
            new,
            [CORPUS, _document(tmp_path / "again")],
            "sample-corpus",
            embedder=RotatedMiniLMEmbedderDouble(old),
        )
        assert more.documents_unchanged == 12 and more.documents_added == 1

        # the next reindex works the same way: back to all-minilm, real stand-in only
        minilm = OllamaEmbedder(old)
        try:
            reindex.start(conn, minilm, lines.append)
            reindex.fill(conn, minilm, batch_size=16, out=lines.append)
        finally:
            minilm.close()
        reindex.build_index(conn, lines.append)
        # the new-model instance is still connected: --force, as an operator who knows
        with pytest.raises(reindex.ReindexError, match="--force"):
            reindex.finish(conn, out=lines.append)
        reindex.finish(conn, force=True, out=lines.append)
        assert _schema(conn) == _fresh_schema(
            postgres, make_settings, f"{db}_fresh_old"
        )
        back = create_app(old)
        apps.append(back)
        assert (
            _top(back.test_client(), "password reset instructions")
            == "it-password-reset"
        )
        assert (
            _top(back.test_client(), "quokka survey on Rottnest Island")
            == "reindex-quokka"
        )
    finally:
        conn.close()


def test_reindex_refusals(
    postgres: Postgres,
    fresh_db: tuple[str, SettingsFactory],
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, factory = fresh_db
    for key, value in {**base_env, "DATABASE_NAME": db}.items():
        monkeypatch.setenv(key, value)

    # the model's real dimension is probed before anything changes
    assert (
        main(["reindex", "start", "--model", "all-minilm", "--dimension", "512"]) == 1
    )
    assert "returns 384-dimensional embeddings, not 512" in capsys.readouterr().err
    assert (
        main(["reindex", "start", "--model", "no-such-model", "--dimension", "8"]) == 1
    )
    assert "not available on the embedder" in capsys.readouterr().err
    assert main(["reindex", "start", "--model", "big", "--dimension", "4096"]) == 1
    assert "1 to 2000 dimensions" in capsys.readouterr().err
    assert (
        main(["reindex", "start", "--model", "all-minilm", "--dimension", "384"]) == 1
    )
    assert "nothing to reindex" in capsys.readouterr().err
    for step in ("fill", "index", "finish", "abort"):
        assert main(["reindex", step]) == 1
        assert "no reindex in progress" in capsys.readouterr().err
    assert main(["reindex", "status"]) == 0
    assert "phase: no reindex in progress" in capsys.readouterr().out
    assert main(["reindex", "check"]) == 0
    assert "all-minilm (dimension 384) is searchable" in capsys.readouterr().out
    assert main(["reindex", "check", "--model", "bge-m3", "--dimension", "1024"]) == 1
    assert "reindex start --model bge-m3" in capsys.readouterr().err

    # a model no column holds: migrate and ingest refuse and point at reindex
    with _owner(postgres, db) as conn:
        with pytest.raises(MigrationError, match="reindex"):
            migrate(conn, factory(EMBEDDING_MODEL="bge-m3", EMBEDDING_DIMENSION="1024"))
        with pytest.raises(Exception, match="model of no embedding column"):
            _ingest(conn, factory(EMBEDDING_MODEL="nomic-embed-text"), [CORPUS], "x")

        # during a reindex migrate accepts either model; abort leaves the original
        double = RotatedMiniLMEmbedderDouble(factory())
        try:
            reindex.start(conn, double, print)
        finally:
            double.close()
        migrate(conn, factory())
        migrate(
            conn,
            factory(
                EMBEDDING_MODEL=DOUBLE_MODEL, EMBEDDING_DIMENSION=str(DOUBLE_DIMENSION)
            ),
        )
        assert main(["reindex", "status", "--json"]) == 0
        assert '"phase": "filling (0/0)"' in capsys.readouterr().out
    assert main(["reindex", "abort"]) == 0
    assert "aborted" in capsys.readouterr().out
    with _owner(postgres, db) as conn:
        assert [c.column for c in load_columns(conn)] == [PRIMARY]
        assert not conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 'document_chunks'::regclass "
            "AND attname = 'embedding_next' AND NOT attisdropped"
        ).fetchone()


def test_upgrade_registers_the_existing_column(
    postgres: Postgres,
    make_settings: SettingsFactory,
    main_db: str,
    corpus_ingested: IngestSummary,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database of the previous release (schema 3, chunks hashed with the
    model's name) gets migration 4 only under the model it was built with."""
    from vector_search import migrations

    name = "vs_upgrade_from_v3"
    create_database(postgres, name)
    settings = make_settings(DATABASE_NAME=name)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
        patch.setattr(migrations, "_check_configured_model", lambda c, s: None)
        patch.setattr(migrations, "_grant_runtime", lambda c, s, r: None)
        with _owner(postgres, name) as conn:
            assert migrate(conn, settings).applied == [1, 2, 3]
    # the chunks of two documents as that release wrote them
    with _owner(postgres, main_db) as src, _owner(postgres, name) as dst:
        for doc in src.execute(
            "SELECT id, source, external_id, title, content_hash FROM documents "
            "WHERE external_id IN ('it-eduroam', 'it-password-reset')"
        ).fetchall():
            new_id = dst.execute(
                "INSERT INTO documents (source, external_id, title, content_hash) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                doc[1:],
            ).fetchone()[0]  # type: ignore[index]
            for chunk in src.execute(
                "SELECT chunk_number, heading, text, content_hash, embedding, priority, "
                "clearance_level FROM document_chunks WHERE document_id = %s",
                (doc[0],),
            ).fetchall():
                dst.execute(
                    "INSERT INTO document_chunks (document_id, chunk_number, heading, text, "
                    "content_hash, embedding, priority, clearance_level) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (new_id, *chunk),
                )
        # another model of the same dimension: the hashes tell, nothing changes
        with pytest.raises(
            MigrationError, match="not embedded with EMBEDDING_MODEL=e5"
        ):
            migrate(dst, make_settings(DATABASE_NAME=name, EMBEDDING_MODEL="e5"))
        with pytest.raises(MigrationError, match="EMBEDDING_DIMENSION is 768"):
            migrate(dst, make_settings(DATABASE_NAME=name, EMBEDDING_DIMENSION="768"))
        assert dst.execute("SELECT to_regclass('embedding_columns')").fetchone() == (
            None,
        )
        assert migrate(dst, settings).applied == list(range(4, LATEST_VERSION + 1))
        assert [
            (c.column, c.model, c.dimension, c.ready) for c in load_columns(dst)
        ] == [(PRIMARY, "all-minilm", 384, True)]
        assert "is searchable" in reindex.check_model(dst, "all-minilm", 384)
