"""Ingestion: load, chunk, embed in batches, and write documents atomically.

A document whose content hash is unchanged is skipped. A changed document
replaces all its chunks in one transaction (embeddings of chunks whose text did
not change are reused). ``prune`` deletes documents of a source that are no
longer present. Chunks are written with binary COPY.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg
from pgvector import Vector
from psycopg.types.json import Jsonb

from vector_search.chunking import chunk_text
from vector_search.config import Settings
from vector_search.embedder import OllamaEmbedder
from vector_search.loaders import DocumentError, SourceDocument, discover, load_file

CHUNK_COLUMNS = (
    "document_id, chunk_number, heading, text, content_hash, embedding, "
    "department, campus, priority, clearance_level"
)
CHUNK_TYPES = [
    "int8",
    "int4",
    "text",
    "text",
    "text",
    "vector",
    "text",
    "text",
    "int2",
    "int2",
]


@dataclass
class IngestSummary:
    documents_seen: int = 0
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    documents_pruned: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.documents_added or self.documents_updated or self.documents_pruned
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Pending:
    doc: SourceDocument
    content_hash: str
    existing_id: int | None
    chunks: list[str]
    chunk_hashes: list[str]
    vectors: list[list[float] | None]


def document_hash(doc: SourceDocument, settings: Settings) -> str:
    payload = {
        "title": doc.title,
        "text": doc.text,
        "url": doc.url,
        "department": doc.department,
        "campus": doc.campus,
        "priority": doc.priority,
        "clearance_level": doc.clearance_level,
        "popularity": doc.popularity,
        "metadata": doc.metadata,
        "chunking": [settings.chunk_tokens, settings.chunk_overlap],
        "model": [settings.embedding_model, settings.embedding_dimension],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def embedding_input(title: str, chunk: str) -> str:
    return f"{title}\n\n{chunk}"


def _as_list(value: Any) -> list[float]:
    raw = value.to_list() if hasattr(value, "to_list") else value
    return [float(x) for x in raw]


class Progress:
    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.done, self.stream, self.enabled = total, 0, stream, enabled

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and self.total:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} documents"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total:
            self.stream.write("\n")


class Ingestor:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        embedder: OllamaEmbedder,
        settings: Settings,
        progress_stream: TextIO | None = None,
    ) -> None:
        self.conn = conn
        self.embedder = embedder
        self.settings = settings
        self.stream = progress_stream or sys.stderr

    def ingest(
        self,
        roots: Iterable[Path],
        prune: bool = False,
        source: str | None = None,
        on_changed: Callable[[], None] | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary()
        for root in roots:
            self._ingest_root(
                Path(root), source or str(Path(root).resolve()), prune, summary
            )
        if summary.changed:
            self.conn.execute("ANALYZE documents")
            self.conn.execute("ANALYZE document_chunks")
            if on_changed is not None:
                on_changed()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _ingest_root(
        self, root: Path, source: str, prune: bool, summary: IngestSummary
    ) -> None:
        if not root.exists():
            raise DocumentError(f"{root}: no such file or directory")
        docs: dict[str, SourceDocument] = {}
        for path, relative in discover(root):
            for doc in load_file(path, relative):
                if doc.external_id in docs:
                    raise DocumentError(
                        f"{path}: duplicate document id {doc.external_id!r}"
                    )
                docs[doc.external_id] = doc
        summary.documents_seen += len(docs)
        existing = {
            row[0]: (int(row[1]), str(row[2]))
            for row in self.conn.execute(
                "SELECT external_id, id, content_hash FROM documents WHERE source = %s",
                (source,),
            )
        }
        progress = Progress(len(docs), self.stream, self.stream.isatty())
        batch: list[_Pending] = []
        for external_id, doc in docs.items():
            digest = document_hash(doc, self.settings)
            known = existing.get(external_id)
            if known and known[1] == digest:
                summary.documents_unchanged += 1
                progress.advance()
                continue
            batch.append(
                self._prepare(doc, digest, known[0] if known else None, summary)
            )
            if sum(len(p.chunks) for p in batch) >= self.settings.embed_batch_size * 4:
                self._flush(batch, source, summary, progress)
                batch = []
        self._flush(batch, source, summary, progress)
        progress.close()
        if prune:
            with self.conn.transaction():
                cur = self.conn.execute(
                    "DELETE FROM documents WHERE source = %s AND NOT (external_id = ANY(%s))",
                    (source, list(docs)),
                )
                summary.documents_pruned += cur.rowcount

    def _prepare(
        self,
        doc: SourceDocument,
        digest: str,
        existing_id: int | None,
        summary: IngestSummary,
    ) -> _Pending:
        chunks = chunk_text(
            doc.text, self.settings.chunk_tokens, self.settings.chunk_overlap
        )
        if not chunks:
            chunks = [doc.title]
        hashes = [
            hashlib.sha256(
                f"{self.settings.embedding_model}\0{embedding_input(doc.title, c)}".encode()
            ).hexdigest()
            for c in chunks
        ]
        vectors: list[list[float] | None] = [None] * len(chunks)
        if existing_id is not None:
            reusable = {
                row[0]: row[1]
                for row in self.conn.execute(
                    "SELECT content_hash, embedding FROM document_chunks WHERE document_id = %s",
                    (existing_id,),
                )
            }
            for i, h in enumerate(hashes):
                if h in reusable:
                    vectors[i] = _as_list(reusable[h])
                    summary.chunks_reused += 1
        return _Pending(doc, digest, existing_id, chunks, hashes, vectors)

    def _flush(
        self,
        batch: list[_Pending],
        source: str,
        summary: IngestSummary,
        progress: Progress,
    ) -> None:
        if not batch:
            return
        todo = [
            (p, i, embedding_input(p.doc.title, p.chunks[i]))
            for p in batch
            for i, v in enumerate(p.vectors)
            if v is None
        ]
        size = self.settings.embed_batch_size
        for start in range(0, len(todo), size):
            part = todo[start : start + size]
            vectors = self.embedder.embed([text for _, _, text in part])
            for (pending, index, _), vector in zip(part, vectors, strict=True):
                pending.vectors[index] = vector
            summary.chunks_embedded += len(part)
        for pending in batch:
            self._write(pending, source)
            summary.chunks_written += len(pending.chunks)
            if pending.existing_id is None:
                summary.documents_added += 1
            else:
                summary.documents_updated += 1
            progress.advance()

    def _write(self, p: _Pending, source: str) -> None:
        doc = p.doc
        with self.conn.transaction():
            row = self.conn.execute(
                """
                INSERT INTO documents (source, external_id, title, url, department, campus,
                    priority, clearance_level, popularity, metadata, content_hash, chunk_count)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (source, external_id) DO UPDATE SET
                    title = EXCLUDED.title, url = EXCLUDED.url,
                    department = EXCLUDED.department, campus = EXCLUDED.campus,
                    priority = EXCLUDED.priority, clearance_level = EXCLUDED.clearance_level,
                    popularity = EXCLUDED.popularity, metadata = EXCLUDED.metadata,
                    content_hash = EXCLUDED.content_hash, chunk_count = EXCLUDED.chunk_count,
                    updated_at = now()
                RETURNING id
                """,
                (
                    source,
                    doc.external_id,
                    doc.title,
                    doc.url,
                    doc.department,
                    doc.campus,
                    doc.priority,
                    doc.clearance_level,
                    doc.popularity,
                    Jsonb(doc.metadata),
                    p.content_hash,
                    len(p.chunks),
                ),
            ).fetchone()
            assert row is not None
            document_id = int(row[0])
            self.conn.execute(
                "DELETE FROM document_chunks WHERE document_id = %s", (document_id,)
            )
            with self.conn.cursor() as cur:
                copy_sql = (
                    f"COPY document_chunks ({CHUNK_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                )
                with cur.copy(copy_sql) as copy:
                    copy.set_types(CHUNK_TYPES)
                    for number, (text, digest, vector) in enumerate(
                        zip(p.chunks, p.chunk_hashes, p.vectors, strict=True)
                    ):
                        assert vector is not None
                        copy.write_row(
                            (
                                document_id,
                                number,
                                doc.title,
                                text,
                                digest,
                                Vector(vector),
                                doc.department,
                                doc.campus,
                                doc.priority,
                                doc.clearance_level,
                            )
                        )
