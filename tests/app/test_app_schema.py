"""Migrations, least privilege and monitoring views on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from vector_search.migrations import LATEST_VERSION, MigrationError, migrate
from vs_services import Postgres, SettingsFactory, create_database, owner_connection


def test_migrate_from_empty_then_rerun(
    postgres: Postgres, make_settings: SettingsFactory
) -> None:
    create_database(postgres, "vs_migrate")
    settings = make_settings(DATABASE_NAME="vs_migrate")
    with owner_connection(postgres, "vs_migrate") as conn:
        first = migrate(conn, settings)
        assert first.applied == list(range(1, LATEST_VERSION + 1))
        second = migrate(conn, settings)
        assert second.applied == []
        assert second.already == list(range(1, LATEST_VERSION + 1))
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert sorted(versions) == list(range(1, LATEST_VERSION + 1))
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        assert {
            "documents",
            "document_chunks",
            "api_keys",
            "schema_migrations",
        } <= tables
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'document_chunks'"
            )
        }
        assert "document_chunks_embedding_hnsw" in indexes
        assert "document_chunks_tsv_gin" in indexes
        typ = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
        ).fetchone()
        assert typ == ("vector(384)",)
        # the view uses the PostgreSQL 13+ column names
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'query_performance'"
            )
        }
        assert {"total_exec_time", "mean_exec_time", "calls"} <= cols


def test_dimension_mismatch_is_refused(
    postgres: Postgres, make_settings: SettingsFactory
) -> None:
    create_database(postgres, "vs_dim")
    with owner_connection(postgres, "vs_dim") as conn:
        migrate(conn, make_settings(DATABASE_NAME="vs_dim"))
        with pytest.raises(MigrationError, match="EMBEDDING_DIMENSION"):
            migrate(
                conn, make_settings(DATABASE_NAME="vs_dim", EMBEDDING_DIMENSION="1024")
            )


def test_missing_vector_extension_explains_fix(
    postgres: Postgres, make_settings: SettingsFactory
) -> None:
    with postgres.connect() as conn:
        conn.execute("CREATE DATABASE vs_noext OWNER vs_owner")
    with (
        owner_connection(postgres, "vs_noext") as conn,
        pytest.raises(MigrationError, match="CREATE EXTENSION vector"),
    ):
        migrate(conn, make_settings(DATABASE_NAME="vs_noext"))


def test_runtime_role_is_least_privilege(
    postgres: Postgres, main_db: str, corpus_ingested: object
) -> None:
    with psycopg.connect(
        postgres.dsn(main_db, "vs_app", "app-pw"), autocommit=True
    ) as conn:
        assert conn.execute("SELECT count(*) FROM document_chunks").fetchone()[0] > 0  # type: ignore[index]
        conn.execute("SELECT * FROM document_stats").fetchall()
        conn.execute("SELECT * FROM query_performance LIMIT 1").fetchall()
        for statement in (
            "DELETE FROM document_chunks",
            "UPDATE documents SET title = 'x'",
            "INSERT INTO api_keys (key_prefix, key_hash, role, owner) VALUES ('a', 'b', 'admin', 'x')",
            "UPDATE api_keys SET role = 'admin'",
            "CREATE TABLE intruder (id int)",
            "DROP TABLE documents",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_query_performance_view_optional(
    postgres: Postgres, make_settings: SettingsFactory
) -> None:
    with postgres.connect() as conn:
        conn.execute("CREATE DATABASE vs_nostat OWNER vs_owner")
    with postgres.connect("vs_nostat") as conn:
        conn.execute("CREATE EXTENSION vector")
    with owner_connection(postgres, "vs_nostat") as conn:
        report = migrate(conn, make_settings(DATABASE_NAME="vs_nostat"))
        assert any("pg_stat_statements" in note for note in report.notes)
        assert conn.execute("SELECT to_regclass('query_performance')").fetchone() == (
            None,
        )
