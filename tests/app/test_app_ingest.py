"""Ingestion: idempotence, update, prune, formats, chunking."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pgvector.psycopg import register_vector
from vector_search.chunking import chunk_text
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor, IngestSummary
from vector_search.loaders import DocumentError
from vs_services import CORPUS, Postgres, SettingsFactory, owner_connection


def _ingest(
    postgres: Postgres, db: str, settings, paths: list[Path], **kwargs
) -> IngestSummary:  # type: ignore[no-untyped-def]
    embedder = OllamaEmbedder(settings)
    bumps: list[int] = []
    try:
        with owner_connection(postgres, db) as conn:
            register_vector(conn)
            summary = Ingestor(conn, embedder, settings).ingest(
                paths, on_changed=lambda: bumps.append(1), **kwargs
            )
    finally:
        embedder.close()
    summary.errors = ["bumped"] if bumps else []
    return summary


def test_ingest_idempotent_update_prune(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    settings = factory()
    source = tmp_path / "corpus"
    shutil.copytree(CORPUS, source)

    first = _ingest(postgres, db, settings, [source])
    assert first.documents_seen == 12 and first.documents_added == 12
    assert first.chunks_written >= 12 and first.chunks_embedded == first.chunks_written
    assert first.errors == ["bumped"]

    again = _ingest(postgres, db, settings, [source])
    assert again.documents_unchanged == 12
    assert again.documents_added == again.documents_updated == again.chunks_written == 0
    assert again.errors == []  # nothing changed: no generation bump

    with owner_connection(postgres, db) as conn:
        before = dict(
            conn.execute(
                "SELECT c.chunk_number, c.id FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.external_id = 'it-eduroam'"
            ).fetchall()
        )

    page = source / "it-services" / "eduroam-wifi.md"
    page.write_text(
        page.read_text()
        + "\n\n## Printers\n\nWireless printing uses the eduroam network too.\n"
    )
    updated = _ingest(postgres, db, settings, [source])
    assert updated.documents_updated == 1 and updated.documents_unchanged == 11
    assert updated.chunks_reused >= 1  # unchanged chunk texts keep their embeddings
    assert (
        updated.chunks_embedded < updated.chunks_written or updated.chunks_written == 1
    )
    with owner_connection(postgres, db) as conn:
        rows = conn.execute(
            "SELECT c.chunk_number, c.id, c.text FROM document_chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.external_id = 'it-eduroam' ORDER BY c.chunk_number"
        ).fetchall()
        numbers = [r[0] for r in rows]
        assert numbers == list(range(len(rows)))
        assert "Wireless printing" in rows[-1][2]
        assert {r[1] for r in rows}.isdisjoint(
            before.values()
        )  # replaced, not appended
        assert conn.execute(
            "SELECT chunk_count FROM documents WHERE external_id = 'it-eduroam'"
        ).fetchone() == (len(rows),)

    # metadata-only change updates the filter columns of the chunks too
    page.write_text(page.read_text().replace("priority: 4", "priority: 2"))
    _ingest(postgres, db, settings, [source])
    with owner_connection(postgres, db) as conn:
        priorities = {
            r[0]
            for r in conn.execute(
                "SELECT c.priority FROM document_chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.external_id = 'it-eduroam'"
            )
        }
        assert priorities == {2}

    (source / "library" / "library-services.md").unlink()
    kept = _ingest(postgres, db, settings, [source])
    assert kept.documents_pruned == 0
    pruned = _ingest(postgres, db, settings, [source], prune=True)
    assert pruned.documents_pruned == 1 and pruned.errors == ["bumped"]
    with owner_connection(postgres, db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM documents WHERE external_id = 'library-services'"
        ).fetchone() == (0,)
        orphans = conn.execute(
            "SELECT count(*) FROM document_chunks c LEFT JOIN documents d ON d.id = c.document_id WHERE d.id IS NULL"
        ).fetchone()
        assert orphans == (0,)


def test_prune_is_scoped_to_its_source(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    settings = factory()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.md").write_text(
        "---\ntitle: One\nclearance_level: 1\n---\nFirst source document about bicycles."
    )
    (b / "two.md").write_text(
        "---\ntitle: Two\nclearance_level: 1\n---\nSecond source document about sailing."
    )
    _ingest(postgres, db, settings, [a, b])
    (a / "one.md").unlink()
    (a / "three.txt").write_text("Third document about hiking.")
    (a / "three.txt.meta.json").write_text('{"clearance_level": 1}')
    summary = _ingest(postgres, db, settings, [a], prune=True)
    assert summary.documents_added == 1 and summary.documents_pruned == 1
    with owner_connection(postgres, db) as conn:
        titles = sorted(r[0] for r in conn.execute("SELECT title FROM documents"))
    assert titles == ["Two", "three"]


def test_bad_documents_are_reported(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    settings = factory()
    (tmp_path / "bad.md").write_text("---\ntitle: Bad\nclearance_level: 9\n---\ntext")
    with pytest.raises(DocumentError, match="clearance_level"):
        _ingest(postgres, db, settings, [tmp_path])
    (tmp_path / "bad.md").unlink()
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(DocumentError, match="text"):
        _ingest(postgres, db, settings, [tmp_path])
    with pytest.raises(DocumentError, match="no such file"):
        _ingest(postgres, db, settings, [tmp_path / "missing"])


def test_sidecar_metadata(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    (tmp_path / "notes.txt").write_text(
        "Plain text notes about the campus gym opening times."
    )
    (tmp_path / "notes.txt.meta.json").write_text(
        '{"title": "Gym", "department": "Sport", "priority": 2, "clearance_level": 2, '
        '"owner": "sport-team"}'
    )
    _ingest(postgres, db, factory(), [tmp_path])
    with owner_connection(postgres, db) as conn:
        row = conn.execute(
            "SELECT external_id, title, department, priority, metadata FROM documents"
        ).fetchone()
    assert row == ("notes.txt", "Gym", "Sport", 2, {"owner": "sport-team"})


def test_chunking_bounds_and_overlap() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = chunk_text(text, max_tokens=100, overlap=20)
    assert len(chunks) > 10
    for chunk in chunks:
        assert len(chunk.split()) <= 100
    first, second = chunks[0].split(), chunks[1].split()
    assert first[-20:] == second[:20]
    assert chunks[-1].split()[-1] == "word999"
    assert chunk_text("", 100, 10) == []
    assert chunk_text("short", 100, 10) == ["short"]
