"""Change the embedding model or its dimension without downtime.

The new embeddings are built beside the current ones, in a second nullable
column ``document_chunks.embedding_next vector(N)`` registered in
``embedding_columns`` with its model, then switched to by a rolling restart
(each instance searches the column of its own EMBEDDING_MODEL/DIMENSION), then
the old column is dropped:

``start``   add ``embedding_next`` and register the target model (instant DDL).
``fill``    embed every chunk whose ``embedding_next`` is NULL, in batches, one
            transaction each: resumable; then add and validate
            ``CHECK (embedding_next IS NOT NULL)`` so no row can lack it later.
``index``   ``CREATE INDEX CONCURRENTLY`` the HNSW index with the current
            index's method, operator class and options; mark the column ready.
``finish``  drop ``embedding`` and its index, rename ``embedding_next`` (and its
            index) to ``embedding``, SET NOT NULL (no scan: the validated check
            proves it), drop the check: the schema of a fresh install.
``abort``   drop ``embedding_next`` and its registration.

DDL that needs ACCESS EXCLUSIVE runs with a short ``lock_timeout`` and retries,
so it never queues searches behind a long transaction for more than a moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from pgvector import Vector
from psycopg import sql
from psycopg.conninfo import make_conninfo

from vector_search.embedder import Embedder
from vector_search.embedding_columns import (
    APPLICATION_PREFIX,
    NEXT,
    PRIMARY,
    TABLE,
    EmbeddingColumn,
    announces,
    column_state,
    index_name,
    load_columns,
    not_null_constraint,
    searchable_column,
)
from vector_search.ingest import embedding_input

HNSW_MAX_DIMENSIONS = 2000  # pgvector: HNSW indexes vector columns up to 2000
FILL_LOCK_KEY = 741_852_964  # one ``reindex fill`` at a time (session advisory lock)
LOCK_TIMEOUT_MS = 3000
LOCK_ATTEMPTS = 20


class ReindexError(RuntimeError):
    """A reindex step cannot run now; the message says why and what to do."""


Output = Callable[[str], None]


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _columns(conn: psycopg.Connection[Any]) -> dict[str, EmbeddingColumn]:
    return {c.column: c for c in load_columns(conn)}


def target(conn: psycopg.Connection[Any]) -> EmbeddingColumn:
    """The column being built (embedding_next), or ReindexError."""
    return _require_next(conn)[1]


def check_model(conn: psycopg.Connection[Any], model: str, dimension: int) -> str:
    """Whether instances configured with this model can search now (deploy gate)."""
    column, detail = searchable_column(conn, model, dimension)
    if column is None:
        raise ReindexError(detail)
    return f"{model} (dimension {dimension}) is searchable: {detail}"


def _require_next(
    conn: psycopg.Connection[Any],
) -> tuple[EmbeddingColumn, EmbeddingColumn]:
    columns = _columns(conn)
    if NEXT not in columns:
        raise ReindexError(
            "no reindex in progress: vector-search reindex start --model MODEL --dimension N"
        )
    return columns[PRIMARY], columns[NEXT]


def _ddl(
    conn: psycopg.Connection[Any],
    work: Callable[[], Any],
    what: str,
    out: Output,
) -> Any:
    """Run ``work`` in a transaction that first takes ACCESS EXCLUSIVE on
    document_chunks with a short lock_timeout; retry while the lock is busy."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (str(LOCK_TIMEOUT_MS),),
                )
                conn.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        _ident(TABLE)
                    )
                )
                return work()
        except psycopg.errors.LockNotAvailable:
            if attempt == LOCK_ATTEMPTS:
                break
            out(
                f"{what}: document_chunks is busy (a long transaction holds a lock), "
                f"retrying ({attempt}/{LOCK_ATTEMPTS - 1})"
            )
            time.sleep(min(5.0, 0.5 * attempt))
    raise ReindexError(
        f"{what}: could not lock document_chunks within {LOCK_ATTEMPTS} tries of "
        f"{LOCK_TIMEOUT_MS} ms; find the long transaction in pg_stat_activity "
        "(state 'idle in transaction' or a long query) and retry"
    )


# -- start -----------------------------------------------------------------------


def start(
    conn: psycopg.Connection[Any],
    embedder: Embedder,
    out: Output = print,
) -> str:
    """Add ``embedding_next vector(N)`` for ``embedder``'s model; idempotent."""
    model, dimension = embedder.model, embedder.dimension
    if not 1 <= dimension <= HNSW_MAX_DIMENSIONS:
        raise ReindexError(
            f"--dimension {dimension}: pgvector's HNSW index takes vector columns of 1 to "
            f"{HNSW_MAX_DIMENSIONS} dimensions"
        )
    columns = _columns(conn)
    current = columns[PRIMARY]
    if current.identity == (model, dimension):
        raise ReindexError(
            f"{model} (dimension {dimension}) is already the model of column embedding: "
            "nothing to reindex"
        )
    pending = columns.get(NEXT)
    if pending is not None:
        if pending.identity == (model, dimension):
            return (
                f"reindex to {model} (dimension {dimension}) already started; "
                "next: vector-search reindex fill"
            )
        raise ReindexError(
            f"a reindex to {pending.model} (dimension {pending.dimension}) is in progress; "
            f"finish it (vector-search reindex finish) or abort it (vector-search reindex "
            f"abort) before starting one to {model} (dimension {dimension})"
        )
    probe = embedder.embed(["dimension probe"], check_dimension=False)[0]
    if len(probe) != dimension:
        raise ReindexError(
            f"model {model} returns {len(probe)}-dimensional embeddings, not {dimension}: "
            f"use --dimension {len(probe)} (and set vector_search_embedding_dimension to it)"
        )
    if column_state(conn, NEXT).exists:
        raise ReindexError(
            "document_chunks.embedding_next exists but is not registered in "
            "embedding_columns (left by hand?); drop it first: "
            "ALTER TABLE document_chunks DROP COLUMN embedding_next"
        )

    def work() -> None:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} vector({})").format(
                _ident(TABLE), _ident(NEXT), sql.Literal(dimension)
            )
        )
        conn.execute(
            "INSERT INTO embedding_columns (column_name, model, dimension) VALUES (%s, %s, %s)",
            (NEXT, model, dimension),
        )

    _ddl(conn, work, "reindex start", out)
    return (
        f"started: column embedding_next vector({dimension}) for {model}; "
        "new and changed documents now get both embeddings; next: vector-search reindex fill"
    )


# -- fill ------------------------------------------------------------------------


@dataclass
class FillReport:
    filled: int = 0
    total: int = 0
    missing: int = 0
    seconds: float = 0.0
    passes: int = 0
    constraint: str = ""


def _missing(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} IS NULL) FROM {}").format(
            _ident(NEXT), _ident(TABLE)
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class _Progress:
    def __init__(self, out: Output, total: int, missing: int, every: float) -> None:
        self.out, self.total, self.every = out, total, every
        self.done_before = total - missing
        self.filled = 0
        self.started = self.last = time.monotonic()

    def advance(self, count: int, force: bool = False) -> None:
        self.filled += count
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        done = min(self.total, self.done_before + self.filled)
        rate = self.filled / max(now - self.started, 1e-6)
        left = max(self.total - done, 0)
        eta = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
        percent = 100.0 * done / self.total if self.total else 100.0
        self.out(
            f"filled {done}/{self.total} chunks ({percent:.1f}%), {rate:.1f} chunks/s{eta}"
        )


def _fill_pass(
    conn: psycopg.Connection[Any],
    embedder: Embedder,
    batch_size: int,
    progress: _Progress,
) -> int:
    """Embed every chunk whose embedding_next is NULL, in id order (keyset over
    the primary key, so a pass reads the table once); one transaction per batch."""
    select = sql.SQL(
        "SELECT id, heading, text FROM {} WHERE id > %s AND {} IS NULL ORDER BY id LIMIT %s"
    ).format(_ident(TABLE), _ident(NEXT))
    update = sql.SQL("UPDATE {} SET {} = %s WHERE id = %s AND {} IS NULL").format(
        _ident(TABLE), _ident(NEXT), _ident(NEXT)
    )
    after, filled = 0, 0
    while True:
        rows = conn.execute(select, (after, batch_size)).fetchall()
        if not rows:
            return filled
        vectors = embedder.embed([embedding_input(r[1], r[2]) for r in rows])
        for attempt in range(3):
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        update,
                        [(Vector(v), r[0]) for r, v in zip(rows, vectors, strict=True)],
                    )
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
        filled += len(rows)
        after = int(rows[-1][0])
        progress.advance(len(rows))


def fill(
    conn: psycopg.Connection[Any],
    embedder: Embedder,
    batch_size: int = 32,
    out: Output = print,
    progress_every: float = 5.0,
) -> FillReport:
    """Fill embedding_next with the target model; resumable (a second run
    continues where an interrupted one stopped)."""
    _, target = _require_next(conn)
    if (embedder.model, embedder.dimension) != target.identity:
        raise ReindexError(
            f"the reindex target is {target.model} (dimension {target.dimension}), "
            f"not {embedder.model} (dimension {embedder.dimension})"
        )
    if batch_size < 1:
        raise ReindexError("--batch-size must be at least 1")
    locked = conn.execute(
        "SELECT pg_try_advisory_lock(%s)", (FILL_LOCK_KEY,)
    ).fetchone()
    if not locked or not locked[0]:
        raise ReindexError(
            "another vector-search reindex fill is running on this database"
        )
    try:
        return _fill_locked(conn, embedder, batch_size, out, progress_every)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (FILL_LOCK_KEY,))


def _fill_locked(
    conn: psycopg.Connection[Any],
    embedder: Embedder,
    batch_size: int,
    out: Output,
    progress_every: float,
) -> FillReport:
    started = time.monotonic()
    report = FillReport()
    total, missing = _missing(conn)
    out(
        f"filling embedding_next with {embedder.model}: {missing} of {total} chunks to embed, "
        f"{batch_size} per batch"
    )
    progress = _Progress(out, total, missing, progress_every)
    constraint = not_null_constraint(NEXT)
    for _ in range(3):
        report.passes += 1
        report.filled += _fill_pass(conn, embedder, batch_size, progress)
        state = column_state(conn, NEXT)
        if state.check_validated is None:
            # From now on no row can be written without embedding_next (an old
            # release's ingest fails loudly instead of leaving a hole); rows that
            # slipped in before are filled by the next pass.
            _ddl(
                conn,
                lambda: conn.execute(
                    sql.SQL(
                        "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID"
                    ).format(_ident(TABLE), _ident(constraint), _ident(NEXT))
                ),
                "reindex fill",
                out,
            )
            continue
        if state.check_validated:
            break
        try:
            # SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans
            conn.execute(
                sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                    _ident(TABLE), _ident(constraint)
                )
            )
            break
        except psycopg.errors.CheckViolation:
            continue
    total, missing = _missing(conn)
    progress.advance(0, force=True)
    report.total, report.missing = total, missing
    report.seconds = round(time.monotonic() - started, 3)
    state = column_state(conn, NEXT)
    report.constraint = "validated" if state.check_validated else "not validated"
    if missing or not state.check_validated:
        raise ReindexError(
            f"{missing} chunks still have no embedding_next after {report.passes} passes "
            "(something writes chunks without it): run vector-search reindex fill again"
        )
    out(
        f"filled {report.filled} chunks in {report.seconds:.1f} s; every chunk has "
        f"embedding_next (CHECK {constraint} validated); next: vector-search reindex index"
    )
    return report


# -- index -----------------------------------------------------------------------


def _index_sql(conn: psycopg.Connection[Any]) -> sql.Composed:
    """CREATE INDEX CONCURRENTLY on embedding_next with the current index's
    method, operator class and options (v1: hnsw vector_cosine_ops, m=16,
    ef_construction=64)."""
    current = column_state(conn, PRIMARY)
    method = current.index_method or "hnsw"
    opclass = current.index_opclass or "vector_cosine_ops"
    options = (
        list(current.index_options) if current.index else ["m=16", "ef_construction=64"]
    )
    with_options = sql.SQL("")
    if options:
        parts = []
        for option in options:
            key, _, value = option.partition("=")
            parts.append(sql.SQL("{} = {}").format(_ident(key), sql.Literal(value)))
        with_options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(parts))
    return sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} USING {} ({} {}){}").format(
        _ident(index_name(NEXT)),
        _ident(TABLE),
        _ident(method),
        _ident(NEXT),
        _ident(opclass),
        with_options,
    )


def _watch_build(
    conninfo: str, pid: int, out: Output, every: float, stop: threading.Event
) -> None:
    """Report pg_stat_progress_create_index of the building backend every ``every`` s."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as watcher:
            while not stop.wait(every):
                row = watcher.execute(
                    "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                    "FROM pg_stat_progress_create_index WHERE pid = %s",
                    (pid,),
                ).fetchone()
                if row:
                    done = (
                        f"{row[1]}/{row[2]} tuples"
                        if row[2]
                        else f"{row[3]}/{row[4]} blocks"
                    )
                    out(f"building: {row[0]}, {done}")
    except psycopg.Error:
        return  # progress is informational


def build_index(
    conn: psycopg.Connection[Any],
    out: Output = print,
    maintenance_work_mem: str | None = None,
    progress_every: float = 15.0,
) -> str:
    """Build the HNSW index on embedding_next concurrently and mark it ready."""
    _, target = _require_next(conn)
    state = column_state(conn, NEXT)
    if not state.complete:
        _, missing = _missing(conn)
        raise ReindexError(
            f"embedding_next is not completely filled ({missing} chunks without it, or its "
            "NOT NULL check not validated yet): run vector-search reindex fill first"
        )
    if state.index and not state.index_valid:
        out(f"dropping the invalid index {state.index} left by an interrupted build")
        conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_ident(state.index))
        )
        state = column_state(conn, NEXT)
    started = time.monotonic()
    if not state.index_valid:
        statement = _index_sql(conn)
        out(f"building: {statement.as_string(conn)}")
        if maintenance_work_mem:
            conn.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)",
                (maintenance_work_mem,),
            )

        def notice(diag: psycopg.errors.Diagnostic) -> None:
            # e.g. pgvector's "hnsw graph no longer fits into maintenance_work_mem"
            out(f"notice: {diag.message_primary}")

        conn.add_notice_handler(notice)
        stop = threading.Event()
        conninfo = make_conninfo(conn.info.dsn, password=conn.info.password or None)
        watcher = threading.Thread(
            target=_watch_build,
            args=(conninfo, conn.info.backend_pid, out, progress_every, stop),
            daemon=True,
        )
        watcher.start()
        try:
            conn.execute(statement)
        finally:
            stop.set()
            watcher.join(5)
            conn.remove_notice_handler(notice)
            if maintenance_work_mem:
                conn.execute("RESET maintenance_work_mem")
        state = column_state(conn, NEXT)
        if not state.index_valid:
            raise ReindexError(
                f"index {state.index} is not valid after the build; run vector-search reindex "
                "index again (it drops and rebuilds it)"
            )
    conn.execute(
        "UPDATE embedding_columns SET ready_at = coalesce(ready_at, now()) WHERE column_name = %s",
        (NEXT,),
    )
    size = conn.execute(
        "SELECT pg_size_pretty(pg_relation_size(to_regclass(%s)))", (state.index,)
    ).fetchone()
    return (
        f"index {state.index} on embedding_next is valid ({size[0] if size else '?'}, "
        f"{time.monotonic() - started:.1f} s); {target.model} (dimension {target.dimension}) "
        "is ready to search: switch the instances (vector_search_embedding_model/_dimension, "
        "playbooks/rolling_upgrade.yml), then vector-search reindex finish"
    )


# -- status ----------------------------------------------------------------------


def connections(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """API connections to this database by application_name (their model)."""
    return {
        str(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name LIKE %s GROUP BY 1",
            (APPLICATION_PREFIX.replace("%", r"\%").replace("_", r"\_") + "%",),
        )
    }


def _connected(seen: dict[str, int], column: EmbeddingColumn) -> int:
    return sum(
        n for name, n in seen.items() if announces(name, column.model, column.dimension)
    )


@dataclass
class ColumnStatus:
    column: str
    model: str
    dimension: int
    ready: bool
    filled: int
    total: int
    complete: bool
    index: str | None
    index_valid: bool
    connections: int


@dataclass
class Status:
    phase: str
    next_step: str
    columns: list[ColumnStatus] = field(default_factory=list)
    other_connections: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(conn: psycopg.Connection[Any]) -> Status:
    columns = load_columns(conn)
    seen = connections(conn)
    result = Status(phase="", next_step="")
    known: set[str] = set()
    for column in columns:
        state = column_state(conn, column.column)
        row = conn.execute(
            sql.SQL("SELECT count(*), count({}) FROM {}").format(
                _ident(column.column), _ident(TABLE)
            )
        ).fetchone()
        assert row is not None
        result.columns.append(
            ColumnStatus(
                column=column.column,
                model=column.model,
                dimension=column.dimension,
                ready=column.ready,
                filled=int(row[1]),
                total=int(row[0]),
                complete=state.complete,
                index=state.index,
                index_valid=state.index_valid,
                connections=_connected(seen, column),
            )
        )
        known.update(
            name for name in seen if announces(name, column.model, column.dimension)
        )
    result.other_connections = {k: v for k, v in seen.items() if k not in known}
    by_name = {c.column: c for c in result.columns}
    nxt = by_name.get(NEXT)
    if nxt is None:
        result.phase = "no reindex in progress"
        result.next_step = "vector-search reindex start --model MODEL --dimension N"
    elif not nxt.complete:
        result.phase = f"filling ({nxt.filled}/{nxt.total})"
        result.next_step = "vector-search reindex fill"
    elif not (nxt.index_valid and nxt.ready):
        result.phase = "filled, not indexed"
        result.next_step = "vector-search reindex index"
    elif by_name[PRIMARY].connections:
        result.phase = "ready; instances still use the old model"
        result.next_step = (
            "set vector_search_embedding_model/_dimension to the new model and run "
            "playbooks/rolling_upgrade.yml, then vector-search reindex finish"
        )
    else:
        result.phase = "ready; no instance announces the old model"
        result.next_step = "vector-search reindex finish"
    return result


def format_status(result: Status) -> str:
    rows = [["COLUMN", "MODEL", "DIMENSION", "FILLED", "INDEX", "READY", "CONNECTIONS"]]
    for c in result.columns:
        index = (
            f"{c.index} ({'valid' if c.index_valid else 'INVALID'})" if c.index else "-"
        )
        rows.append(
            [
                c.column,
                c.model,
                str(c.dimension),
                f"{c.filled}/{c.total}" + ("" if c.complete else " (filling)"),
                index,
                "yes" if c.ready else "no",
                str(c.connections),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"phase: {result.phase}", f"next: {result.next_step}", ""]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for name, count in sorted(result.other_connections.items()):
        lines.append(
            f"connections announcing a model no column holds: {name!r}: {count}"
        )
    return "\n".join(lines)


# -- finish / abort --------------------------------------------------------------


def _refuse_if_used(
    conn: psycopg.Connection[Any], column: EmbeddingColumn, action: str, force: bool
) -> None:
    count = _connected(connections(conn), column)
    if count and not force:
        raise ReindexError(
            f"{count} database connection(s) announce {column.model} (dimension "
            f"{column.dimension}), the model of column {column.column}: instances still "
            f"search it and would fail after {action}. Switch them first "
            "(vector_search_embedding_model/_dimension, playbooks/rolling_upgrade.yml). "
            "Behind PgBouncer an idle server connection keeps the last client's name until "
            "it is reused or closed (server_idle_timeout): wait, or RECONNECT in the "
            "PgBouncer console; --force skips this check"
        )


def finish(
    conn: psycopg.Connection[Any], force: bool = False, out: Output = print
) -> str:
    """Make embedding_next the column embedding and drop the old one."""
    current, target = _require_next(conn)
    state = column_state(conn, NEXT)
    if not (state.searchable and target.ready):
        raise ReindexError(
            "embedding_next is not ready (filled, NOT NULL check validated, HNSW index "
            "valid): run vector-search reindex fill and vector-search reindex index first; "
            "see vector-search reindex status"
        )
    _refuse_if_used(conn, current, "finish", force)
    old_index = column_state(conn, PRIMARY).index

    def work() -> None:
        again = column_state(conn, NEXT)
        if not again.searchable:
            raise ReindexError(
                "embedding_next changed meanwhile; see vector-search reindex status"
            )
        statements: list[sql.Composed] = []
        if old_index:
            statements.append(sql.SQL("DROP INDEX {}").format(_ident(old_index)))
        statements += [
            sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                _ident(TABLE), _ident(PRIMARY)
            ),
            sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                _ident(TABLE), _ident(NEXT), _ident(PRIMARY)
            ),
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                _ident(again.index or index_name(NEXT)), _ident(index_name(PRIMARY))
            ),
            # the validated CHECK proves there is no NULL: no table scan
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
                _ident(TABLE), _ident(PRIMARY)
            ),
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                _ident(TABLE), _ident(not_null_constraint(NEXT))
            ),
        ]
        for statement in statements:
            conn.execute(statement)
        conn.execute("DELETE FROM embedding_columns WHERE column_name = %s", (PRIMARY,))
        conn.execute(
            "UPDATE embedding_columns SET column_name = %s WHERE column_name = %s",
            (PRIMARY, NEXT),
        )

    _ddl(conn, work, "reindex finish", out)
    return (
        f"finished: column embedding is now {target.model} (vector({target.dimension})) with "
        f"index {index_name(PRIMARY)}; {current.model} (dimension {current.dimension}) is "
        "gone. Its disk space returns as rows are rewritten (or VACUUM FULL / pg_repack)"
    )


def abort(
    conn: psycopg.Connection[Any], force: bool = False, out: Output = print
) -> str:
    """Give up a reindex: drop embedding_next, its index and its registration."""
    current, target = _require_next(conn)
    _refuse_if_used(conn, target, "abort", force)
    index = column_state(conn, NEXT).index

    def work() -> None:
        if index:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(_ident(index)))
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                _ident(TABLE), _ident(NEXT)
            )
        )
        conn.execute("DELETE FROM embedding_columns WHERE column_name = %s", (NEXT,))

    _ddl(conn, work, "reindex abort", out)
    return (
        f"aborted: embedding_next ({target.model}, dimension {target.dimension}) dropped; "
        f"column embedding ({current.model}) is unchanged"
    )
