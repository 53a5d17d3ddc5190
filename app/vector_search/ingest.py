"""Ingestion: load, chunk, embed in batches, and write documents atomically.

A document whose content hash is unchanged is skipped. A changed document
replaces all its chunks in one transaction (embeddings of chunks whose text did
not change are reused). ``prune`` deletes documents of a source that are no
longer present. Chunks are written with binary COPY.

Every vector column registered in ``embedding_columns`` is written, each with
its own model: during a reindex new and changed documents get both embeddings,
so ``reindex fill`` never misses one. Which columns exist is read again inside
each document's transaction, after its chunks are locked, so a reindex started,
finished or aborted meanwhile is followed. Document and chunk hashes are salted
with ``content_hash_basis`` (not the configured model): switching an instance's
model during a reindex does not make every document look changed.
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
from psycopg import sql
from psycopg.types.json import Jsonb

from vector_search.chunking import chunk_text
from vector_search.config import Settings
from vector_search.embedder import Embedder, for_model
from vector_search.embedding_columns import (
    ColumnRegistryError,
    EmbeddingColumn,
    Identity,
    column_for,
    content_hash_basis,
    describe,
    load_columns,
)
from vector_search.loaders import DocumentError, SourceDocument, discover, load_file

CHUNK_COLUMNS = (
    "document_id, chunk_number, heading, text, content_hash, "
    "department, campus, priority, clearance_level"
)
CHUNK_TYPES = [
    "int8",
    "int4",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int2",
    "int2",
]
# builds an embedder of another model (reindex in progress); tests inject doubles
EmbedderFactory = Callable[[str, int], Embedder]


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
    # embeddings made for another column's model (a reindex is in progress)
    reindex_embedded: int = 0
    # documents without a clearance level: not ingested (DEFAULT_CLEARANCE_LEVEL=refuse) ...
    documents_refused: int = 0
    # ... or given DEFAULT_CLEARANCE_LEVEL
    documents_clearance_defaulted: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    # one message per refused document: where it is and what to add
    refused: list[str] = field(default_factory=list)

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
    vectors: dict[Identity, list[list[float] | None]]


def document_hash(
    doc: SourceDocument, settings: Settings, basis: Identity | None = None
) -> str:
    """``basis``: the model identity hashes are salted with (content_hash_basis);
    the configured model when not given."""
    model = basis or (settings.embedding_model, settings.embedding_dimension)
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
        "model": list(model),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def missing_clearance(doc: SourceDocument) -> str:
    """Why a document without a clearance level was not ingested, and what to do."""
    return (
        f"{doc.origin or doc.external_id}: document {doc.external_id!r} has no clearance_level "
        "and was not ingested (a missing clearance must not make it public). Add "
        "clearance_level: 1 (public) to 5 (admin only) to its metadata (front matter "
        '\'clearance_level: 3\', HTML <meta name="clearance_level" content="3">, a '
        "'clearance_level' field of the JSON Lines record, or a NAME.meta.json sidecar) and "
        "ingest again, or set DEFAULT_CLEARANCE_LEVEL to the level such documents should "
        "get. Any stored version of it is kept unchanged."
    )


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
        embedder: Embedder,
        settings: Settings,
        progress_stream: TextIO | None = None,
        embedder_factory: EmbedderFactory | None = None,
    ) -> None:
        self.conn = conn
        self.embedder = embedder
        self.settings = settings
        self.stream = progress_stream or sys.stderr
        self.identity: Identity = (
            settings.embedding_model,
            settings.embedding_dimension,
        )
        self._factory = embedder_factory or (
            lambda model, dimension: for_model(settings, model, dimension)
        )
        self._embedders: dict[Identity, Embedder] = {self.identity: embedder}
        self._owned: list[Embedder] = []
        self.columns: list[EmbeddingColumn] = []
        self.basis: Identity = self.identity

    def _embedder(self, identity: Identity) -> Embedder:
        if identity not in self._embedders:
            made = self._factory(*identity)
            self._owned.append(made)
            self._embedders[identity] = made
        return self._embedders[identity]

    def _load_columns(self) -> list[EmbeddingColumn]:
        self.columns = load_columns(self.conn)
        return self.columns

    def ingest(
        self,
        roots: Iterable[Path],
        prune: bool = False,
        source: str | None = None,
        on_changed: Callable[[], None] | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary()
        columns = self._load_columns()
        if column_for(columns, *self.identity) is None:
            raise ColumnRegistryError(
                f"EMBEDDING_MODEL={self.identity[0]} with EMBEDDING_DIMENSION={self.identity[1]} "
                f"is the model of no embedding column ({describe(columns)}): configure the "
                "corpus's model, or change models with vector-search reindex (docs/reindex.md)"
            )
        self.basis = content_hash_basis(self.conn)
        try:
            for root in roots:
                self._ingest_root(
                    Path(root), source or str(Path(root).resolve()), prune, summary
                )
        finally:
            for made in self._owned:
                made.close()
            self._owned.clear()
            self._embedders = {self.identity: self.embedder}
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
        # A document without a clearance is refused (its id still counts as
        # present, so --prune keeps any stored version) or gets the operator's
        # DEFAULT_CLEARANCE_LEVEL; it never defaults to public.
        refused: set[str] = set()
        for external_id, doc in docs.items():
            if doc.clearance_level is not None:
                continue
            if self.settings.default_clearance_level is None:
                refused.add(external_id)
                summary.documents_refused += 1
                summary.refused.append(missing_clearance(doc))
            else:
                doc.clearance_level = self.settings.default_clearance_level
                summary.documents_clearance_defaulted += 1
        existing = {
            row[0]: (int(row[1]), str(row[2]))
            for row in self.conn.execute(
                "SELECT external_id, id, content_hash FROM documents WHERE source = %s",
                (source,),
            )
        }
        progress = Progress(len(docs) - len(refused), self.stream, self.stream.isatty())
        batch: list[_Pending] = []
        for external_id, doc in docs.items():
            if external_id in refused:
                continue
            digest = document_hash(doc, self.settings, self.basis)
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
                f"{self.basis[0]}\0{embedding_input(doc.title, c)}".encode()
            ).hexdigest()
            for c in chunks
        ]
        vectors: dict[Identity, list[list[float] | None]] = {
            c.identity: [None] * len(chunks) for c in self.columns
        }
        if existing_id is not None:
            # a chunk whose text (and title) did not change keeps its embeddings
            query = sql.SQL(
                "SELECT content_hash, {} FROM document_chunks WHERE document_id = %s"
            ).format(sql.SQL(", ").join(sql.Identifier(c.column) for c in self.columns))
            reusable = {
                row[0]: row[1:] for row in self.conn.execute(query, (existing_id,))
            }
            for i, h in enumerate(hashes):
                for n, column in enumerate(self.columns):
                    value = reusable[h][n] if h in reusable else None
                    if value is not None:
                        vectors[column.identity][i] = _as_list(value)
                        if column.identity == self.identity:
                            summary.chunks_reused += 1
        return _Pending(doc, digest, existing_id, chunks, hashes, vectors)

    def _embed_missing(
        self, batch: list[_Pending], identity: Identity, summary: IngestSummary
    ) -> None:
        """Embed, in EMBED_BATCH_SIZE requests, every chunk without a vector of this model."""
        todo: list[tuple[list[list[float] | None], int, str]] = []
        for p in batch:
            vectors = p.vectors.setdefault(identity, [None] * len(p.chunks))
            todo.extend(
                (vectors, i, embedding_input(p.doc.title, p.chunks[i]))
                for i, v in enumerate(vectors)
                if v is None
            )
        embedder = self._embedder(identity)
        size = self.settings.embed_batch_size
        for start in range(0, len(todo), size):
            part = todo[start : start + size]
            made = embedder.embed([text for _, _, text in part])
            for (vectors, index, _), vector in zip(part, made, strict=True):
                vectors[index] = vector
            if identity == self.identity:
                summary.chunks_embedded += len(part)
            else:
                summary.reindex_embedded += len(part)

    def _flush(
        self,
        batch: list[_Pending],
        source: str,
        summary: IngestSummary,
        progress: Progress,
    ) -> None:
        if not batch:
            return
        for column in self.columns:
            self._embed_missing(batch, column.identity, summary)
        for pending in batch:
            self._write(pending, source, summary)
            summary.chunks_written += len(pending.chunks)
            if pending.existing_id is None:
                summary.documents_added += 1
            else:
                summary.documents_updated += 1
            progress.advance()

    def _write(self, p: _Pending, source: str, summary: IngestSummary) -> None:
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
            # The DELETE holds document_chunks' ROW EXCLUSIVE lock until commit, so
            # reindex start/finish/abort (ACCESS EXCLUSIVE) cannot change the
            # columns between this read and the COPY.
            columns = self._load_columns()
            for column in columns:
                if any(v is None for v in p.vectors.get(column.identity, [None])):
                    self._embed_missing([p], column.identity, summary)
            copy_sql = sql.SQL(
                "COPY document_chunks ({}, {}) FROM STDIN (FORMAT BINARY)"
            ).format(
                sql.SQL(CHUNK_COLUMNS),
                sql.SQL(", ").join(sql.Identifier(c.column) for c in columns),
            )
            with self.conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(CHUNK_TYPES + ["vector"] * len(columns))
                for number, (text, digest) in enumerate(
                    zip(p.chunks, p.chunk_hashes, strict=True)
                ):
                    embeddings = []
                    for column in columns:
                        vector = p.vectors[column.identity][number]
                        assert vector is not None
                        embeddings.append(Vector(vector))
                    copy.write_row(
                        (
                            document_id,
                            number,
                            doc.title,
                            text,
                            digest,
                            doc.department,
                            doc.campus,
                            doc.priority,
                            doc.clearance_level,
                            *embeddings,
                        )
                    )
