"""Which vector column of ``document_chunks`` holds which embedding model.

``embedding_columns`` (migration 4) maps each vector column to the model and
dimension whose embeddings it holds: normally one row, ``embedding``; during a
reindex (``vector-search reindex``) a second one, ``embedding_next``. A process
uses the column of *its* ``EMBEDDING_MODEL``/``EMBEDDING_DIMENSION``, so
instances configured with the old and with the new model both search correctly
during a rolling restart. ``ready_at`` is set once a column is completely filled
and its HNSW index is valid; only then is it searched.

The catalog is the source of truth for what a column can do (type, NOT NULL or
a validated ``IS NOT NULL`` check, a valid HNSW index): :func:`column_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

TABLE = "document_chunks"
PRIMARY = "embedding"
NEXT = "embedding_next"
COLUMNS = (PRIMARY, NEXT)
APPLICATION_PREFIX = "vector-search "

Identity = tuple[str, int]  # (model, dimension)


class ColumnRegistryError(RuntimeError):
    """The configured model has no usable vector column, or the registry is missing."""


def index_name(column: str) -> str:
    return f"{TABLE}_{column}_hnsw"


def not_null_constraint(column: str) -> str:
    """The ``CHECK (column IS NOT NULL)`` that ``reindex fill`` validates."""
    return f"{TABLE}_{column}_not_null"


def application_name(model: str, dimension: int) -> str:
    """What an API process announces in ``pg_stat_activity``: which model it
    searches with. ``reindex finish`` refuses while the old model is announced.
    PostgreSQL keeps 63 bytes (Ollama model names are ASCII)."""
    return f"{APPLICATION_PREFIX}{model}/{dimension}"[:63]


def announces(seen: str, model: str, dimension: int) -> bool:
    """Whether an ``application_name`` is that of an API process using this model
    (PgBouncer's ``application_name_add_host`` appends `` - host:port``)."""
    name = application_name(model, dimension)
    return seen == name or (seen.startswith(name + " - ") and len(name) < 63)


@dataclass(frozen=True)
class EmbeddingColumn:
    column: str
    model: str
    dimension: int
    ready: bool

    @property
    def identity(self) -> Identity:
        return (self.model, self.dimension)

    def describe(self) -> str:
        return f"{self.column} = {self.model} (dimension {self.dimension})"


def load_columns(conn: psycopg.Connection[Any]) -> list[EmbeddingColumn]:
    """The registry, ``embedding`` first."""
    if not conn.execute("SELECT to_regclass('embedding_columns')").fetchone()[0]:  # type: ignore[index]
        raise ColumnRegistryError(
            "table embedding_columns is missing: run vector-search migrate (owner role)"
        )
    return [
        EmbeddingColumn(str(r[0]), str(r[1]), int(r[2]), bool(r[3]))
        for r in conn.execute(
            "SELECT column_name, model, dimension, ready_at IS NOT NULL "
            "FROM embedding_columns ORDER BY column_name = 'embedding' DESC, column_name"
        )
    ]


def describe(columns: list[EmbeddingColumn]) -> str:
    return "; ".join(c.describe() for c in columns) or "no embedding column registered"


def column_for(
    columns: list[EmbeddingColumn], model: str, dimension: int
) -> EmbeddingColumn | None:
    return next((c for c in columns if c.identity == (model, dimension)), None)


def content_hash_basis(conn: psycopg.Connection[Any]) -> Identity:
    """The model identity document and chunk hashes are salted with. It is the
    model the database was created (or first migrated) with and stays the same
    through reindexes: a new model must not make every document look changed."""
    row = conn.execute("SELECT model, dimension FROM content_hash_basis").fetchone()
    if row is None:
        raise ColumnRegistryError(
            "table content_hash_basis is empty: run vector-search migrate (owner role)"
        )
    return (str(row[0]), int(row[1]))


@dataclass(frozen=True)
class ColumnState:
    """What the catalog says about one vector column."""

    column: str
    exists: bool
    dimension: int | None = None
    not_null: bool = False
    check_validated: bool | None = None  # None: no IS NOT NULL check constraint
    index: str | None = None
    index_valid: bool = False
    index_method: str | None = None
    index_opclass: str | None = None
    index_options: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every row has a value, and PostgreSQL guarantees new rows will too."""
        return self.exists and (self.not_null or bool(self.check_validated))

    @property
    def searchable(self) -> bool:
        return self.complete and self.index_valid


def column_state(conn: psycopg.Connection[Any], column: str) -> ColumnState:
    row = conn.execute(
        """
        SELECT a.atttypmod, a.attnotnull,
               (SELECT k.convalidated FROM pg_constraint k
                 WHERE k.conrelid = a.attrelid AND k.conname = %(constraint)s),
               ix.name, ix.valid, ix.method, ix.opclass, ix.options
        FROM pg_attribute a
        LEFT JOIN LATERAL (
            SELECT ic.relname::text AS name, i.indisvalid AND i.indisready AS valid,
                   am.amname::text AS method, opc.opcname::text AS opclass,
                   coalesce(ic.reloptions, '{}') AS options
            FROM pg_index i
            JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_am am ON am.oid = ic.relam
            JOIN pg_opclass opc ON opc.oid = i.indclass[0]
            WHERE i.indrelid = a.attrelid AND i.indnatts = 1 AND i.indkey[0] = a.attnum
              AND am.amname IN ('hnsw', 'ivfflat')
            ORDER BY i.indisvalid DESC, ic.relname = %(index)s DESC
            LIMIT 1
        ) ix ON true
        WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = %(column)s
          AND NOT a.attisdropped
        """,
        {
            "table": TABLE,
            "column": column,
            "constraint": not_null_constraint(column),
            "index": index_name(column),
        },
    ).fetchone()
    if row is None:
        return ColumnState(column, exists=False)
    return ColumnState(
        column,
        exists=True,
        dimension=int(row[0]) if row[0] and row[0] > 0 else None,
        not_null=bool(row[1]),
        check_validated=None if row[2] is None else bool(row[2]),
        index=row[3],
        index_valid=bool(row[4]),
        index_method=row[5],
        index_opclass=row[6],
        index_options=tuple(row[7] or ()),
    )


def searchable_column(
    conn: psycopg.Connection[Any], model: str, dimension: int
) -> tuple[str | None, str]:
    """``(column, detail)``: the column a process configured with this model
    searches, or ``(None, why not and what to do)``."""
    columns = load_columns(conn)
    found = column_for(columns, model, dimension)
    if found is None:
        return None, (
            f"EMBEDDING_MODEL={model} with EMBEDDING_DIMENSION={dimension} is the model of no "
            f"embedding column ({describe(columns)}): configure the corpus's model, or build "
            f"a column for this one first (vector-search reindex start --model {model} "
            f"--dimension {dimension}; docs/reindex.md)"
        )
    state = column_state(conn, found.column)
    if not state.exists or state.dimension != dimension:
        return None, (
            f"embedding_columns says {found.describe()} but the column is "
            f"{'missing' if not state.exists else f'vector({state.dimension})'}"
        )
    if not state.complete:
        return None, (
            f"column {found.column} ({model}) is still being filled: "
            "vector-search reindex fill, then vector-search reindex index"
        )
    if not state.index_valid:
        return None, (
            f"column {found.column} ({model}) has no valid HNSW index yet: "
            "vector-search reindex index"
        )
    if not found.ready:
        return None, (
            f"column {found.column} ({model}) is not marked ready: vector-search reindex index"
        )
    return found.column, f"{found.describe()}, filled and indexed"
