"""Versioned, idempotent schema migrations, run by the owner role.

Applied versions are recorded in ``schema_migrations``. After the versioned
steps, ``migrate`` re-applies the repeatable parts: the optional
``query_performance`` view (needs pg_stat_statements) and the runtime role's
grants (least privilege: read the corpus; API keys only through the SECURITY
DEFINER functions of migration 6, never the table itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from vector_search.access import KEY_ROLES
from vector_search.config import Settings

LOCK_KEY = 741_852_963


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Settings], list[sql.SQL | sql.Composed]]
    # runs first, in the migration's transaction; raises MigrationError to refuse
    check: Callable[[psycopg.Connection[Any], Settings], None] | None = None


def _v1(settings: Settings) -> list[sql.SQL | sql.Composed]:
    dim = sql.Literal(settings.embedding_dimension)
    ts = sql.Literal(settings.text_search_config)
    return [
        sql.SQL("""
        CREATE TABLE documents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source text NOT NULL,
            external_id text NOT NULL,
            title text NOT NULL,
            url text,
            department text,
            campus text,
            priority smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
            clearance_level smallint NOT NULL DEFAULT 1 CHECK (clearance_level BETWEEN 1 AND 5),
            popularity real NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 1),
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
            content_hash text NOT NULL,
            chunk_count integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, external_id)
        )"""),
        sql.SQL("""
        CREATE TABLE document_chunks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            chunk_number integer NOT NULL,
            heading text NOT NULL DEFAULT '',
            text text NOT NULL,
            content_hash text NOT NULL,
            embedding vector({dim}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector({ts}::regconfig, heading), 'A')
                || to_tsvector({ts}::regconfig, text)
            ) STORED,
            department text,
            campus text,
            priority smallint NOT NULL,
            clearance_level smallint NOT NULL,
            UNIQUE (document_id, chunk_number)
        )""").format(dim=dim, ts=ts),
        sql.SQL(
            "CREATE INDEX document_chunks_embedding_hnsw ON document_chunks "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        ),
        sql.SQL(
            "CREATE INDEX document_chunks_tsv_gin ON document_chunks USING gin (tsv)"
        ),
        sql.SQL(
            "CREATE INDEX document_chunks_department_idx ON document_chunks (department)"
        ),
        sql.SQL("CREATE INDEX document_chunks_campus_idx ON document_chunks (campus)"),
        sql.SQL(
            "CREATE INDEX document_chunks_priority_idx ON document_chunks (priority)"
        ),
        sql.SQL(
            "CREATE INDEX document_chunks_clearance_idx ON document_chunks (clearance_level)"
        ),
        sql.SQL("""
        CREATE TABLE api_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key_prefix text NOT NULL,
            key_hash text NOT NULL UNIQUE,
            role text NOT NULL CHECK (role IN ('student', 'staff', 'academic', 'admin')),
            owner text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz,
            last_used_at timestamptz
        )"""),
        sql.SQL("""
        CREATE VIEW document_stats AS
        SELECT d.department,
               d.campus,
               count(DISTINCT d.id) AS documents,
               count(c.id) AS chunks,
               round(avg(length(c.text)))::integer AS avg_chunk_length,
               max(d.updated_at) AS last_updated
        FROM documents d
        LEFT JOIN document_chunks c ON c.document_id = d.id
        GROUP BY d.department, d.campus"""),
    ]


def _v2(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """BM25 term statistics, kept exact by statement-level triggers (with transition
    tables, so COPY, cascaded deletes and updates are all counted) in the same
    transaction as the change."""
    ts = sql.Literal(settings.text_search_config)
    return [
        sql.SQL("""
        CREATE FUNCTION tsvector_token_count(tsvector) RETURNS integer
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        RETURN (SELECT coalesce(sum(coalesce(pg_catalog.array_length(u.positions, 1), 1)), 0)::integer
                FROM pg_catalog.unnest($1) AS u)"""),
        sql.SQL("""
        ALTER TABLE document_chunks ADD COLUMN token_count integer GENERATED ALWAYS AS (
            tsvector_token_count(
                setweight(to_tsvector({ts}::regconfig, heading), 'A')
                || to_tsvector({ts}::regconfig, text))
        ) STORED""").format(ts=ts),
        sql.SQL("""
        CREATE TABLE lexeme_stats (
            lexeme text PRIMARY KEY,
            doc_freq integer NOT NULL CHECK (doc_freq >= 0)
        )"""),
        sql.SQL("""
        CREATE TABLE corpus_stats (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            chunk_count bigint NOT NULL,
            total_tokens bigint NOT NULL
        )"""),
        sql.SQL("""
        INSERT INTO corpus_stats (chunk_count, total_tokens)
        SELECT count(*), coalesce(sum(token_count), 0) FROM document_chunks"""),
        sql.SQL("""
        INSERT INTO lexeme_stats (lexeme, doc_freq)
        SELECT lexeme, count(*) FROM document_chunks, unnest(tsvector_to_array(tsv)) AS lexeme
        GROUP BY lexeme"""),
        sql.SQL("""
        CREATE FUNCTION bm25_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO lexeme_stats AS s (lexeme, doc_freq)
            SELECT lexeme, count(*)
            FROM new_rows, unnest(tsvector_to_array(new_rows.tsv)) AS lexeme
            GROUP BY lexeme ORDER BY lexeme
            ON CONFLICT (lexeme) DO UPDATE SET doc_freq = s.doc_freq + EXCLUDED.doc_freq;
            UPDATE corpus_stats SET
                chunk_count = chunk_count + (SELECT count(*) FROM new_rows),
                total_tokens = total_tokens + (SELECT coalesce(sum(token_count), 0) FROM new_rows);
            RETURN NULL;
        END $$"""),
        sql.SQL("""
        CREATE FUNCTION bm25_stats_remove() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched text[];
        BEGIN
            WITH gone AS (
                SELECT lexeme, count(*) AS n
                FROM old_rows, unnest(tsvector_to_array(old_rows.tsv)) AS lexeme
                GROUP BY lexeme ORDER BY lexeme
            ), changed AS (
                UPDATE lexeme_stats s SET doc_freq = s.doc_freq - gone.n
                FROM gone WHERE s.lexeme = gone.lexeme
                RETURNING s.lexeme, s.doc_freq
            )
            SELECT array_agg(lexeme) INTO touched FROM changed WHERE doc_freq <= 0;
            IF touched IS NOT NULL THEN
                DELETE FROM lexeme_stats WHERE lexeme = ANY(touched) AND doc_freq <= 0;
            END IF;
            UPDATE corpus_stats SET
                chunk_count = chunk_count - (SELECT count(*) FROM old_rows),
                total_tokens = total_tokens - (SELECT coalesce(sum(token_count), 0) FROM old_rows);
            RETURN NULL;
        END $$"""),
        sql.SQL("""
        CREATE FUNCTION bm25_stats_reset() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM lexeme_stats;
            UPDATE corpus_stats SET chunk_count = 0, total_tokens = 0;
            RETURN NULL;
        END $$"""),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_insert AFTER INSERT ON document_chunks "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_add()"
        ),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_delete AFTER DELETE ON document_chunks "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_remove()"
        ),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_update_old AFTER UPDATE ON document_chunks "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_remove()"
        ),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_update_new AFTER UPDATE ON document_chunks "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_add()"
        ),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_truncate AFTER TRUNCATE ON document_chunks "
            "FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_reset()"
        ),
    ]


def _v3(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """The fingerprint of the pepper each key's hash was made with (NULL: not known
    yet; set at the key's next use), so a previous pepper can be retired once no
    active key needs it."""
    return [
        sql.SQL("ALTER TABLE api_keys ADD COLUMN pepper_id text"),
        sql.SQL(
            "COMMENT ON COLUMN api_keys.pepper_id IS "
            "'fingerprint of the pepper key_hash was made with (keys.pepper_id); NULL: not known yet'"
        ),
    ]


def _v4_check(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Register the existing column under the configured model only if that is
    the model the corpus was built with: the dimension must match, and chunk
    hashes (sha256 of model NUL title NL NL text, since the first release) must
    have been made with this model name. Synthetic rows (no hex hash) are skipped."""
    dim = embedding_dimension(conn)
    if dim != settings.embedding_dimension:
        raise MigrationError(_dimension_message(settings, dim))
    rows = conn.execute(
        "SELECT content_hash = encode(sha256(convert_to(%s, 'UTF8') || '\\x00'::bytea "
        "|| convert_to(heading || E'\\n\\n' || text, 'UTF8')), 'hex') "
        "FROM document_chunks WHERE content_hash ~ '^[0-9a-f]{64}$' LIMIT 100",
        (settings.embedding_model,),
    ).fetchall()
    if rows and not any(r[0] for r in rows):
        raise MigrationError(
            f"the corpus's chunks were not embedded with EMBEDDING_MODEL={settings.embedding_model} "
            "(their content hashes name another model): run migrate with the model the corpus "
            "was built with; change models afterwards with vector-search reindex (docs/reindex.md)"
        )


def _v4(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """Which model each vector column holds (zero-downtime model changes,
    vector-search reindex), the fixed salt of content hashes, and a BM25 update
    trigger that ignores updates leaving the text alone (reindex fill)."""
    model = sql.Literal(settings.embedding_model)
    dim = sql.Literal(settings.embedding_dimension)
    return [
        sql.SQL("""
        CREATE TABLE embedding_columns (
            column_name text PRIMARY KEY CHECK (column_name IN ('embedding', 'embedding_next')),
            model text NOT NULL CHECK (model <> ''),
            dimension integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
            created_at timestamptz NOT NULL DEFAULT now(),
            ready_at timestamptz,
            UNIQUE (model, dimension)
        )"""),
        sql.SQL(
            "COMMENT ON TABLE embedding_columns IS 'the embedding model and dimension each vector "
            "column of document_chunks holds; a process searches the column of its "
            "EMBEDDING_MODEL/EMBEDDING_DIMENSION once ready_at is set (vector-search reindex)'"
        ),
        sql.SQL(
            "INSERT INTO embedding_columns (column_name, model, dimension, ready_at) "
            "VALUES ('embedding', {}, {}, now())"
        ).format(model, dim),
        sql.SQL("""
        CREATE TABLE content_hash_basis (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            model text NOT NULL,
            dimension integer NOT NULL
        )"""),
        sql.SQL(
            "COMMENT ON TABLE content_hash_basis IS 'the model identity document and chunk "
            "content hashes are salted with: the first model, kept through reindexes so that a "
            "model change does not make every document look changed'"
        ),
        sql.SQL(
            "INSERT INTO content_hash_basis (model, dimension) VALUES ({}, {})"
        ).format(model, dim),
        sql.SQL("DROP TRIGGER document_chunks_bm25_update_old ON document_chunks"),
        sql.SQL("DROP TRIGGER document_chunks_bm25_update_new ON document_chunks"),
        sql.SQL("""
        CREATE FUNCTION bm25_stats_update() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched text[];
        BEGIN
            -- an update that changes no chunk's text (reindex fill) leaves the statistics alone
            IF NOT EXISTS (
                SELECT 1 FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
                WHERE o.id IS NULL OR n.id IS NULL OR o.tsv IS DISTINCT FROM n.tsv
                   OR o.token_count IS DISTINCT FROM n.token_count
            ) THEN
                RETURN NULL;
            END IF;
            WITH gone AS (
                SELECT lexeme, count(*) AS n
                FROM old_rows, unnest(tsvector_to_array(old_rows.tsv)) AS lexeme
                GROUP BY lexeme ORDER BY lexeme
            ), changed AS (
                UPDATE lexeme_stats s SET doc_freq = s.doc_freq - gone.n
                FROM gone WHERE s.lexeme = gone.lexeme
                RETURNING s.lexeme, s.doc_freq
            )
            SELECT array_agg(lexeme) INTO touched FROM changed WHERE doc_freq <= 0;
            IF touched IS NOT NULL THEN
                DELETE FROM lexeme_stats WHERE lexeme = ANY(touched) AND doc_freq <= 0;
            END IF;
            INSERT INTO lexeme_stats AS s (lexeme, doc_freq)
            SELECT lexeme, count(*)
            FROM new_rows, unnest(tsvector_to_array(new_rows.tsv)) AS lexeme
            GROUP BY lexeme ORDER BY lexeme
            ON CONFLICT (lexeme) DO UPDATE SET doc_freq = s.doc_freq + EXCLUDED.doc_freq;
            UPDATE corpus_stats SET
                chunk_count = chunk_count - (SELECT count(*) FROM old_rows)
                    + (SELECT count(*) FROM new_rows),
                total_tokens = total_tokens - (SELECT coalesce(sum(token_count), 0) FROM old_rows)
                    + (SELECT coalesce(sum(token_count), 0) FROM new_rows);
            RETURN NULL;
        END $$"""),
        sql.SQL(
            "CREATE TRIGGER document_chunks_bm25_update AFTER UPDATE ON document_chunks "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION bm25_stats_update()"
        ),
    ]


def _v5(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """Key expiry (NULL: never). Keys active at migration time get their role's
    default lifetime (API_KEY_EXPIRY_DAYS_<ROLE>) counted from the migration, so
    every key ends some day and none ends sooner than a new key of its role
    would; a role whose default is 0 keeps its keys without expiry. The table is
    small (one row per key): adding a nullable column without a default only
    changes the catalogue, and lock_timeout keeps the brief lock from queueing
    behind a long transaction (migrate fails and can simply be run again)."""
    days = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(
            sql.Literal(role), sql.Literal(settings.key_expiry_days(role))
        )
        for role in KEY_ROLES
    )
    return [
        sql.SQL("SET LOCAL lock_timeout = '5s'"),
        sql.SQL("ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz"),
        sql.SQL(
            "COMMENT ON COLUMN api_keys.expires_at IS 'the key is refused from this time on; "
            "NULL: it does not expire'"
        ),
        sql.SQL("""
        UPDATE api_keys SET expires_at = now() + make_interval(days => d.days)
        FROM (SELECT id, CASE role {days} ELSE 0 END AS days FROM api_keys) AS d
        WHERE api_keys.id = d.id AND d.days > 0
          AND api_keys.revoked_at IS NULL AND api_keys.expires_at IS NULL""").format(
            days=days
        ),
    ]


_SECURE = sql.SQL("SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp")
KEY_FUNCTIONS = (
    "api_key_lookup(text[], text[])",
    "api_key_rehash(bigint, text, text, text)",
    "api_key_expiry_summary(interval)",
)
KEY_FUNCTIONS_VERSION = 6


def _v6(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """Least privilege for API keys: the runtime role calls these functions (owned
    by the schema owner, fixed search_path) instead of reading or writing
    api_keys; it can no longer read stored hashes nor change a key it does not
    hold."""
    statements: list[sql.SQL | sql.Composed] = [
        sql.SQL("""
        CREATE OR REPLACE FUNCTION api_key_lookup(candidate_hashes text[], candidate_pepper_ids text[])
        RETURNS TABLE (key_id bigint, key_role text, key_owner text, matched_hash text,
                       key_expires_at timestamptz, key_status text)
        LANGUAGE plpgsql VOLATILE STRICT {secure} AS $$
        DECLARE
            k record;
            used_pepper text;
        BEGIN
            SELECT a.id, a.role, a.owner, a.key_hash, a.expires_at, a.revoked_at,
                   a.last_used_at, a.pepper_id
              INTO k
              FROM public.api_keys a
             WHERE a.key_hash = ANY (candidate_hashes)
             LIMIT 1;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            IF k.revoked_at IS NOT NULL THEN
                RETURN QUERY SELECT k.id, NULL::text, NULL::text, k.key_hash, k.expires_at, 'revoked'::text;
                RETURN;
            END IF;
            IF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN
                RETURN QUERY SELECT k.id, NULL::text, NULL::text, k.key_hash, k.expires_at, 'expired'::text;
                RETURN;
            END IF;
            used_pepper := left(candidate_pepper_ids[array_position(candidate_hashes, k.key_hash)], 64);
            IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'
               OR k.pepper_id IS DISTINCT FROM used_pepper THEN
                UPDATE public.api_keys SET last_used_at = now(), pepper_id = used_pepper
                 WHERE id = k.id;
            END IF;
            RETURN QUERY SELECT k.id, k.role, k.owner, k.key_hash, k.expires_at, 'active'::text;
        END $$""").format(secure=_SECURE),
        sql.SQL(
            "COMMENT ON FUNCTION api_key_lookup(text[], text[]) IS 'the key whose stored hash "
            "is one of the candidates (a presented key hashed with each accepted pepper): id, "
            "role, owner, matched hash, expiry, status (active, revoked, expired); stamps an "
            "active key''s last use at most once a minute and the pepper its hash used'"
        ),
        sql.SQL("""
        CREATE OR REPLACE FUNCTION api_key_rehash(p_key_id bigint, p_current_hash text,
                                                  p_new_hash text, p_new_pepper_id text)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE {secure} AS $$
        BEGIN
            IF p_new_hash IS NULL OR p_new_hash !~ '^[0-9a-f]{{64}}$' THEN
                RAISE EXCEPTION 'api_key_rehash: the new hash must be 64 lower-case hex digits'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            UPDATE public.api_keys
               SET key_hash = p_new_hash, pepper_id = left(p_new_pepper_id, 64), last_used_at = now()
             WHERE id = p_key_id AND key_hash = p_current_hash AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > now());
            RETURN FOUND;
        END $$""").format(secure=_SECURE),
        sql.SQL(
            "COMMENT ON FUNCTION api_key_rehash(bigint, text, text, text) IS 'replaces an "
            "active key''s hash (pepper rotation) only when the caller supplies its current "
            "stored hash, which proves it holds the key; false: nothing changed'"
        ),
        sql.SQL("""
        CREATE OR REPLACE FUNCTION api_key_expiry_summary(p_within interval)
        RETURNS TABLE (key_role text, active bigint, expiring bigint, without_expiry bigint)
        LANGUAGE sql STABLE {secure} AS $$
            SELECT a.role, count(*),
                   count(*) FILTER (WHERE a.expires_at <= now() + p_within),
                   count(*) FILTER (WHERE a.expires_at IS NULL)
              FROM public.api_keys a
             WHERE a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
             GROUP BY a.role
        $$""").format(secure=_SECURE),
        sql.SQL(
            "COMMENT ON FUNCTION api_key_expiry_summary(interval) IS 'active keys per role: "
            "all, expiring within the interval, without expiry (counts only, for /metrics)'"
        ),
    ]
    statements += [
        sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(sql.SQL(f))
        for f in KEY_FUNCTIONS
    ]
    return statements


# The chunks a statement added (new_rows) or removed (old_rows), counted per
# lexeme and clearance level; the global tables take the sums over levels.
_LEVEL_COUNTS = """
    SELECT lexeme, clearance_level, count(*) AS n
    FROM {rows}, unnest(tsvector_to_array({rows}.tsv)) AS lexeme
    GROUP BY lexeme, clearance_level"""


def _stats_add(rows: str) -> str:
    """Statements adding ``rows`` (a transition table) to every statistics table.
    Rows are upserted in key order, so concurrent ingests lock them in one order."""
    counts = _LEVEL_COUNTS.format(rows=rows)
    return f"""
            WITH counts AS MATERIALIZED ({counts}
            ), per_level AS (
                INSERT INTO lexeme_level_stats AS s (lexeme, clearance_level, doc_freq)
                SELECT lexeme, clearance_level, n FROM counts ORDER BY lexeme, clearance_level
                ON CONFLICT (lexeme, clearance_level) DO UPDATE SET doc_freq = s.doc_freq + EXCLUDED.doc_freq
            )
            INSERT INTO lexeme_stats AS s (lexeme, doc_freq)
            SELECT lexeme, sum(n) FROM counts GROUP BY lexeme ORDER BY lexeme
            ON CONFLICT (lexeme) DO UPDATE SET doc_freq = s.doc_freq + EXCLUDED.doc_freq;
            INSERT INTO corpus_level_stats AS s (clearance_level, chunk_count, total_tokens)
            SELECT clearance_level, count(*), coalesce(sum(token_count), 0)
            FROM {rows} GROUP BY clearance_level ORDER BY clearance_level
            ON CONFLICT (clearance_level) DO UPDATE SET
                chunk_count = s.chunk_count + EXCLUDED.chunk_count,
                total_tokens = s.total_tokens + EXCLUDED.total_tokens;
            UPDATE corpus_stats SET
                chunk_count = chunk_count + (SELECT count(*) FROM {rows}),
                total_tokens = total_tokens + (SELECT coalesce(sum(token_count), 0) FROM {rows});"""


def _stats_remove(rows: str) -> str:
    """Statements removing ``rows`` from every statistics table; a lexeme no chunk
    holds any more (at a level, or at all) loses its row."""
    counts = _LEVEL_COUNTS.format(rows=rows)
    return f"""
            WITH counts AS MATERIALIZED ({counts}
            ), per_level AS (
                UPDATE lexeme_level_stats s SET doc_freq = s.doc_freq - c.n
                FROM (SELECT * FROM counts ORDER BY lexeme, clearance_level) AS c
                WHERE s.lexeme = c.lexeme AND s.clearance_level = c.clearance_level
            ), changed AS (
                UPDATE lexeme_stats s SET doc_freq = s.doc_freq - g.n
                FROM (SELECT lexeme, sum(n) AS n FROM counts GROUP BY lexeme ORDER BY lexeme) AS g
                WHERE s.lexeme = g.lexeme
                RETURNING s.lexeme
            )
            SELECT array_agg(lexeme) INTO touched FROM changed;
            IF touched IS NOT NULL THEN
                DELETE FROM lexeme_level_stats WHERE lexeme = ANY(touched) AND doc_freq <= 0;
                DELETE FROM lexeme_stats WHERE lexeme = ANY(touched) AND doc_freq <= 0;
            END IF;
            UPDATE corpus_level_stats s SET
                chunk_count = s.chunk_count - g.n, total_tokens = s.total_tokens - g.tokens
            FROM (SELECT clearance_level, count(*) AS n, coalesce(sum(token_count), 0) AS tokens
                  FROM {rows} GROUP BY clearance_level) AS g
            WHERE s.clearance_level = g.clearance_level;
            UPDATE corpus_stats SET
                chunk_count = chunk_count - (SELECT count(*) FROM {rows}),
                total_tokens = total_tokens - (SELECT coalesce(sum(token_count), 0) FROM {rows});"""


def _v7(settings: Settings) -> list[sql.SQL | sql.Composed]:
    """BM25 statistics per clearance level (issue 14 item 9, issue 15): a caller's
    document frequencies, chunk count and average length count only the chunks at
    or below the caller's clearance, so lexical scores reveal nothing about
    restricted chunks. The global tables stay, kept by the same triggers, for
    instances of the previous release during a rolling upgrade (expand; a later
    release may drop them).

    Online: ``LOCK ... IN SHARE MODE`` holds writes to the chunks (ingest waits)
    while the new tables are filled from them and the trigger functions are
    replaced, so no write can slip between the fill and the triggers that keep
    it exact; searches (ACCESS SHARE) never wait. ``lock_timeout`` stops the
    migration from queueing behind a long transaction: run it again."""
    return [
        sql.SQL("SET LOCAL lock_timeout = '10s'"),
        sql.SQL("LOCK TABLE document_chunks IN SHARE MODE"),
        sql.SQL("""
        CREATE TABLE lexeme_level_stats (
            lexeme text NOT NULL,
            clearance_level smallint NOT NULL CHECK (clearance_level BETWEEN 1 AND 5),
            doc_freq integer NOT NULL CHECK (doc_freq >= 0),
            PRIMARY KEY (lexeme, clearance_level)
        )"""),
        sql.SQL(
            "COMMENT ON TABLE lexeme_level_stats IS 'BM25 document frequencies per lexeme and "
            "clearance level; a caller''s frequency is the sum over the levels it may see'"
        ),
        sql.SQL("""
        CREATE TABLE corpus_level_stats (
            clearance_level smallint PRIMARY KEY CHECK (clearance_level BETWEEN 1 AND 5),
            chunk_count bigint NOT NULL,
            total_tokens bigint NOT NULL
        )"""),
        sql.SQL("""
        INSERT INTO lexeme_level_stats (lexeme, clearance_level, doc_freq)
        SELECT lexeme, clearance_level, count(*)
        FROM document_chunks, unnest(tsvector_to_array(tsv)) AS lexeme
        GROUP BY lexeme, clearance_level"""),
        sql.SQL("""
        INSERT INTO corpus_level_stats (clearance_level, chunk_count, total_tokens)
        SELECT level, count(c.id), coalesce(sum(c.token_count), 0)
        FROM generate_series(1, 5) AS level
        LEFT JOIN document_chunks c ON c.clearance_level = level
        GROUP BY level"""),
        sql.SQL(f"""
        CREATE OR REPLACE FUNCTION bm25_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN{_stats_add("new_rows")}
            RETURN NULL;
        END $$"""),
        sql.SQL(f"""
        CREATE OR REPLACE FUNCTION bm25_stats_remove() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched text[];
        BEGIN{_stats_remove("old_rows")}
            RETURN NULL;
        END $$"""),
        sql.SQL(f"""
        CREATE OR REPLACE FUNCTION bm25_stats_update() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched text[];
        BEGIN
            -- an update that changes no chunk's text or clearance (reindex fill) leaves
            -- the statistics alone
            IF NOT EXISTS (
                SELECT 1 FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
                WHERE o.id IS NULL OR n.id IS NULL OR o.tsv IS DISTINCT FROM n.tsv
                   OR o.token_count IS DISTINCT FROM n.token_count
                   OR o.clearance_level IS DISTINCT FROM n.clearance_level
            ) THEN
                RETURN NULL;
            END IF;{_stats_remove("old_rows")}{_stats_add("new_rows")}
            RETURN NULL;
        END $$"""),
        sql.SQL("""
        CREATE OR REPLACE FUNCTION bm25_stats_reset() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM lexeme_stats;
            DELETE FROM lexeme_level_stats;
            UPDATE corpus_stats SET chunk_count = 0, total_tokens = 0;
            UPDATE corpus_level_stats SET chunk_count = 0, total_tokens = 0;
            RETURN NULL;
        END $$"""),
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1),
    Migration(2, "bm25 term statistics", _v2),
    Migration(3, "api key pepper fingerprints", _v3),
    Migration(4, "embedding column registry", _v4, _v4_check),
    Migration(5, "api key expiry", _v5),
    Migration(KEY_FUNCTIONS_VERSION, "api key functions for the runtime role", _v6),
    Migration(7, "bm25 statistics per clearance level", _v7),
)
LATEST_VERSION = MIGRATIONS[-1].version


@dataclass
class MigrationReport:
    applied: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class MigrationError(RuntimeError):
    pass


def _ensure_extension(conn: psycopg.Connection[Any], name: str, required: bool) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = %s", (name,)
    ).fetchone()
    if row:
        return True
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(
                    sql.Identifier(name)
                )
            )
        return True
    except psycopg.Error as exc:
        if required:
            raise MigrationError(
                f"the {name} extension is not installed in database "
                f"{conn.info.dbname} and this role cannot create it ({exc.diag.message_primary}); "
                f"as a superuser run: CREATE EXTENSION {name};"
            ) from exc
        return False


def applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    exists = conn.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL"
    ).fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def embedding_dimension(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = to_regclass('document_chunks') AND attname = 'embedding'"
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


def _dimension_message(settings: Settings, dim: int | None) -> str:
    return (
        f"EMBEDDING_DIMENSION is {settings.embedding_dimension} but document_chunks.embedding "
        f"is vector({dim}); use the embedder the corpus was built with, or re-create the "
        f"database and re-ingest"
    )


def _check_configured_model(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """The configured model must be the model of a vector column: the current
    one, or during a reindex the one being built (docs/reindex.md)."""
    rows = conn.execute(
        "SELECT column_name, model, dimension FROM embedding_columns ORDER BY column_name"
    ).fetchall()
    configured = (settings.embedding_model, settings.embedding_dimension)
    if any((r[1], r[2]) == configured for r in rows):
        return
    held = "; ".join(f"{r[0]} = {r[1]} (dimension {r[2]})" for r in rows)
    raise MigrationError(
        f"EMBEDDING_MODEL={settings.embedding_model} with EMBEDDING_DIMENSION="
        f"{settings.embedding_dimension} is the model of no embedding column ({held}): "
        "configure the corpus's model, or change models with vector-search reindex "
        "(docs/reindex.md)"
    )


def migrate(conn: psycopg.Connection[Any], settings: Settings) -> MigrationReport:
    report = MigrationReport()
    _ensure_extension(conn, "vector", required=True)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = applied_versions(conn)
        for migration in MIGRATIONS:
            if migration.version in done:
                report.already.append(migration.version)
                continue
            if migration.check is not None:
                migration.check(conn, settings)
            for statement in migration.statements(settings):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            report.applied.append(migration.version)
    _check_configured_model(conn, settings)
    _query_performance_view(conn, report)
    _grant_runtime(conn, settings, report)
    return report


def _query_performance_view(
    conn: psycopg.Connection[Any], report: MigrationReport
) -> None:
    if not _ensure_extension(conn, "pg_stat_statements", required=False):
        report.notes.append(
            "pg_stat_statements is not installed: query_performance view skipped "
            "(a superuser can CREATE EXTENSION pg_stat_statements; it also needs "
            "shared_preload_libraries)"
        )
        return
    with conn.transaction():
        conn.execute("""
            CREATE OR REPLACE VIEW query_performance AS
            SELECT queryid,
                   left(query, 500) AS query,
                   calls,
                   total_exec_time,
                   mean_exec_time,
                   stddev_exec_time,
                   rows
            FROM pg_stat_statements
            WHERE query ILIKE '%document_chunks%'
            ORDER BY total_exec_time DESC""")


def _grant_runtime(
    conn: psycopg.Connection[Any], settings: Settings, report: MigrationReport
) -> None:
    role = settings.runtime_role
    if not role or role == settings.database_owner_user:
        report.notes.append("no separate runtime role configured: no grants made")
        return
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    if not exists:
        raise MigrationError(
            f"runtime role {role!r} (DATABASE_RUNTIME_ROLE / DATABASE_USER) does not exist; "
            f"create it first, e.g. CREATE ROLE {role} LOGIN PASSWORD '...'"
        )
    ident = sql.Identifier(role)
    views = ["document_stats"]
    if conn.execute("SELECT to_regclass('query_performance')").fetchone()[0]:  # type: ignore[index]
        views.append("query_performance")
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL(
            "REVOKE ALL ON documents, document_chunks, api_keys, schema_migrations, lexeme_stats, "
            "corpus_stats, lexeme_level_stats, corpus_level_stats FROM {}"
        ).format(ident),
        sql.SQL(
            "GRANT SELECT ON documents, document_chunks, schema_migrations, lexeme_stats, "
            "corpus_stats, lexeme_level_stats, corpus_level_stats TO {}"
        ).format(ident),
        # searches look up the column of their model (vector_search.embedding_columns)
        sql.SQL("REVOKE ALL ON embedding_columns, content_hash_basis FROM {}").format(
            ident
        ),
        sql.SQL("GRANT SELECT ON embedding_columns TO {}").format(ident),
        # API keys only through the SECURITY DEFINER functions (keys.py, migration 6)
        *(
            sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(sql.SQL(f))
            for f in KEY_FUNCTIONS
        ),
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
            sql.SQL(", ").join(sql.SQL(f) for f in KEY_FUNCTIONS), ident
        ),
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(v) for v in views), ident
        ),
    ]
    # Expand, then contract: the release that brings the functions keeps the
    # previous release's direct key privileges while its instances still run
    # (a rolling upgrade restarts them after this migrate); the next migrate
    # run takes them away.
    held = _holds_key_privileges(conn, role)
    legacy = KEY_FUNCTIONS_VERSION in report.applied and held
    if legacy:
        statements += [
            sql.SQL("GRANT SELECT ON api_keys TO {}").format(ident),
            sql.SQL(
                "GRANT UPDATE (last_used_at, key_hash, pepper_id) ON api_keys TO {}"
            ).format(ident),
        ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(conn.info.dbname), ident
                )
            )
    except psycopg.Error:
        report.notes.append(
            f"could not GRANT CONNECT to {role}: the database owner must do it"
        )
    report.notes.append(
        f"runtime role {role}: read-only corpus; API keys only through "
        "api_key_lookup, api_key_rehash and api_key_expiry_summary"
    )
    if held and not legacy:
        report.notes.append(
            f"revoked the previous release's direct privileges on api_keys from {role}"
        )
    if legacy:
        report.notes.append(
            f"runtime role {role} keeps SELECT on api_keys and UPDATE of its hashes for "
            "instances of the previous release until they restart: run `vector-search "
            "migrate` again once every instance runs this release, which revokes them"
        )


def _holds_key_privileges(conn: psycopg.Connection[Any], role: str) -> bool:
    row = conn.execute(
        "SELECT has_table_privilege(%s, 'api_keys', 'SELECT') "
        "OR has_any_column_privilege(%s, 'api_keys', 'UPDATE')",
        (role, role),
    ).fetchone()
    return bool(row and row[0])
