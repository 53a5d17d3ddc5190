"""BM25 lexical retrieval: exact term statistics and scores (issue 10 groundwork)."""

from __future__ import annotations

import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from vector_search import migrations
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor
from vector_search.retrievers.bm25 import Bm25Retriever
from vector_search.search import Filters, filter_predicate, parse_operators
from vs_services import CORPUS, Postgres, SettingsFactory, owner_connection, search


def _ingest(
    postgres: Postgres, db: str, settings: Any, path: Path, prune: bool = False
) -> None:
    embedder = OllamaEmbedder(settings)
    try:
        with owner_connection(postgres, db) as conn:
            register_vector(conn)
            Ingestor(conn, embedder, settings).ingest([path], prune=prune)
    finally:
        embedder.close()


def _assert_stats_exact(conn: psycopg.Connection[Any]) -> None:
    expected = dict(
        conn.execute(
            "SELECT lexeme, count(*) FROM document_chunks, unnest(tsvector_to_array(tsv)) AS lexeme "
            "GROUP BY lexeme"
        ).fetchall()
    )
    stored = dict(conn.execute("SELECT lexeme, doc_freq FROM lexeme_stats").fetchall())
    assert stored == expected
    totals = conn.execute(
        "SELECT count(*), coalesce(sum(token_count), 0) FROM document_chunks"
    ).fetchone()
    assert (
        conn.execute("SELECT chunk_count, total_tokens FROM corpus_stats").fetchone()
        == totals
    )
    per_level = {
        (lexeme, level): n
        for lexeme, level, n in conn.execute(
            "SELECT lexeme, clearance_level, count(*) "
            "FROM document_chunks, unnest(tsvector_to_array(tsv)) AS lexeme "
            "GROUP BY lexeme, clearance_level"
        ).fetchall()
    }
    stored_levels = {
        (lexeme, level): n
        for lexeme, level, n in conn.execute(
            "SELECT lexeme, clearance_level, doc_freq FROM lexeme_level_stats"
        ).fetchall()
    }
    assert stored_levels == per_level
    level_totals = {
        level: (n, tokens)
        for level, n, tokens in conn.execute(
            "SELECT level, count(c.id), coalesce(sum(c.token_count), 0) "
            "FROM generate_series(1, 5) AS level "
            "LEFT JOIN document_chunks c ON c.clearance_level = level GROUP BY level"
        ).fetchall()
    }
    stored_totals = {
        level: (n, tokens)
        for level, n, tokens in conn.execute(
            "SELECT clearance_level, chunk_count, total_tokens FROM corpus_level_stats"
        ).fetchall()
    }
    assert stored_totals == level_totals
    lengths = conn.execute(
        "SELECT count(*) FROM document_chunks c WHERE c.token_count <> "
        "(SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) FROM unnest(c.tsv) u)"
    ).fetchone()
    assert lengths == (0,)


def test_stats_stay_exact(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    settings = factory()
    source = tmp_path / "corpus"
    shutil.copytree(CORPUS, source)
    with owner_connection(postgres, db) as conn:
        _assert_stats_exact(conn)  # empty
    _ingest(postgres, db, settings, source)
    with owner_connection(postgres, db) as conn:
        _assert_stats_exact(conn)
        assert conn.execute("SELECT chunk_count FROM corpus_stats").fetchone()[0] > 0  # type: ignore[index]
    _ingest(postgres, db, settings, source)  # re-ingest: unchanged
    page = source / "it-services" / "eduroam-wifi.md"
    page.write_text(
        page.read_text() + "\nZebracrossing quokka lexemes appear only here.\n"
    )
    _ingest(postgres, db, settings, source)  # update
    with owner_connection(postgres, db) as conn:
        _assert_stats_exact(conn)
        assert conn.execute(
            "SELECT doc_freq FROM lexeme_stats WHERE lexeme = 'quokka'"
        ).fetchone() == (1,)
    page.write_text(
        page.read_text().replace("Zebracrossing quokka lexemes appear only here.", "")
    )
    (source / "library" / "library-services.md").unlink()
    _ingest(
        postgres, db, settings, source, prune=True
    )  # update + prune (cascaded delete)
    with owner_connection(postgres, db) as conn:
        _assert_stats_exact(conn)
        assert (
            conn.execute(
                "SELECT 1 FROM lexeme_stats WHERE lexeme = 'quokka'"
            ).fetchone()
            is None
        )
        conn.execute("UPDATE document_chunks SET text = text || ' extra words here'")
        _assert_stats_exact(conn)
        # a clearance change alone moves the chunks' counts between levels
        conn.execute(
            "UPDATE document_chunks SET clearance_level = 6 - clearance_level "
            "WHERE id % 2 = 0"
        )
        _assert_stats_exact(conn)
        conn.execute("UPDATE document_chunks SET priority = priority")  # no change
        _assert_stats_exact(conn)
        conn.execute("DELETE FROM documents")
        _assert_stats_exact(conn)
        assert conn.execute(
            "SELECT chunk_count, total_tokens FROM corpus_stats"
        ).fetchone() == (0, 0)
    _ingest(postgres, db, settings, source)
    with owner_connection(postgres, db) as conn:
        conn.execute("TRUNCATE document_chunks")
        _assert_stats_exact(conn)


def _python_bm25(
    conn: psycopg.Connection[Any], query: str, k1: float, b: float, clearance: int = 5
) -> dict[int, float]:
    """BM25 recomputed from scratch over the chunks a caller of ``clearance`` may
    see: their term frequencies, lengths, count and document frequencies only."""
    tf: dict[int, dict[str, int]] = defaultdict(dict)
    for chunk_id, lexeme, count in conn.execute(
        "SELECT c.id, u.lexeme, coalesce(array_length(u.positions, 1), 1) "
        "FROM document_chunks c, unnest(c.tsv) AS u WHERE c.clearance_level <= %s",
        (clearance,),
    ):
        tf[chunk_id][lexeme] = count
    lengths = {cid: sum(terms.values()) for cid, terms in tf.items()}
    n = len(tf)
    avg = sum(lengths.values()) / n
    df = Counter(lexeme for terms in tf.values() for lexeme in terms)
    row = conn.execute(
        "SELECT tsvector_to_array(to_tsvector('english', %s))", (query,)
    ).fetchone()
    terms = set(row[0]) if row else set()
    scores: dict[int, float] = {}
    for cid, chunk_terms in tf.items():
        score = 0.0
        for term in terms & set(chunk_terms):
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            f = chunk_terms[term]
            score += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lengths[cid] / avg))
        if score:
            scores[cid] = score
    return scores


@pytest.mark.parametrize("clearance", [5, 2, 1])
@pytest.mark.parametrize(
    "query",
    [
        "password reset instructions",
        "how do I connect to the eduroam wireless network?",
        "library",
        "forensic evidence escalation runbook",
    ],
)
def test_scores_match_reference_bm25(
    postgres: Postgres,
    main_db: str,
    corpus_ingested: object,
    query: str,
    clearance: int,
) -> None:
    retriever = Bm25Retriever(k1=1.2, b=0.75)
    sql = f"SELECT * FROM ({retriever.cte(filter_predicate(Filters()))}) AS lex"
    params = {
        "query": query,
        "tsconfig": "english",
        "candidates": 1000,
        "clearance": clearance,
        **retriever.params(),
    }
    with owner_connection(postgres, main_db) as conn:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            got = {row["id"]: float(row["lex_score"]) for row in cur.fetchall()}
        expected = _python_bm25(conn, query, 1.2, 0.75, clearance)
    assert got.keys() == expected.keys()
    for chunk_id, score in expected.items():
        assert math.isclose(got[chunk_id], score, rel_tol=1e-9), chunk_id


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("password reset instructions", "it-password-reset"),
        ("eduroam wifi", "it-eduroam"),
        ("how many books can I borrow", "library-services"),
        ("report a leaking roof", "estates-maintenance"),
    ],
)
def test_hybrid_search_with_bm25(
    make_client: Callable[..., FlaskClient],
    api_keys: dict[str, str],
    query: str,
    expected: str,
) -> None:
    client = make_client(LEXICAL_RETRIEVER="bm25")
    body = search(client, {"query": query}, api_keys["student"]).json
    assert body["results"][0]["document_id"] == expected
    assert "score_parts" not in body["results"][0]  # admin only
    body = search(client, {"query": query}, api_keys["admin"]).json
    assert body["results"][0]["document_id"] == expected
    assert body["results"][0]["score_parts"]["lexical_rank"] is not None


@pytest.mark.parametrize("query", ["the and of which", "zzzzqqqq xxyyzz"])
def test_no_lexical_match_falls_back_to_vectors(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str], query: str
) -> None:
    client = make_client(LEXICAL_RETRIEVER="bm25")
    response = search(
        client,
        {"query": query, "config": {"similarity_threshold": -1}},
        api_keys["admin"],  # score_parts: admin only
    )
    assert response.status_code == 200
    results = response.json["results"]
    assert results and all(r["score_parts"]["lexical_rank"] is None for r in results)


def test_bm25_respects_clearance(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    client = make_client(LEXICAL_RETRIEVER="bm25")
    body = search(
        client,
        {
            "query": "forensic evidence escalation runbook",
            "config": {"similarity_threshold": -1, "max_results": 20},
        },
        api_keys["student"],
    ).json
    assert all(r["metadata"]["clearance_level"] <= 2 for r in body["results"])


def test_candidate_cap_prefers_rare_lexemes(
    postgres: Postgres, main_db: str, corpus_ingested: object
) -> None:
    """With a cap, BM25 scores only chunks holding the rarest query lexemes first."""
    retriever = Bm25Retriever(max_candidates=2)
    sql = f"SELECT * FROM ({retriever.cte(filter_predicate(Filters()))}) AS lex"
    params = {
        "query": "university eduroam",  # 'univers' is everywhere, 'eduroam' in few chunks
        "tsconfig": "english",
        "candidates": 100,
        "clearance": 5,
        **retriever.params(),
    }
    with owner_connection(postgres, main_db) as conn:
        rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
        eduroam_chunks = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM document_chunks WHERE tsv @@ 'eduroam'::tsquery"
            )
        }
        common = conn.execute(
            "SELECT doc_freq FROM lexeme_stats WHERE lexeme = 'univers'"
        ).fetchone()
    assert common is not None and common[0] > 2
    assert 1 <= len(rows) <= 2
    assert {r[0] for r in rows} <= eduroam_chunks


def test_parse_operators() -> None:
    ops = parse_operators('how is "heat transfer" measured -laminar -well-known x-ray')
    assert ops.phrases == ("heat transfer",)
    assert ops.excluded == ("laminar", "well-known")
    assert ops.text == "how is heat transfer measured x-ray"
    assert parse_operators("a - b").excluded == ()


@pytest.mark.parametrize("retriever", ["bm25", "tsrank"])
def test_excluded_term_is_never_returned(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str], retriever: str
) -> None:
    client = make_client(LEXICAL_RETRIEVER=retriever)
    config = {"similarity_threshold": -1, "max_results": 20}
    plain = search(
        client, {"query": "eduroam wifi", "config": config}, api_keys["staff"]
    ).json
    assert any("eduroam" in (r["title"] + r["text"]).lower() for r in plain["results"])
    body = search(
        client, {"query": "eduroam wifi -eduroam", "config": config}, api_keys["staff"]
    ).json
    assert body["results"]
    assert all(
        "eduroam" not in (r["title"] + r["text"]).lower() for r in body["results"]
    )


def test_quoted_phrase_restricts_lexical_candidates(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    client = make_client(LEXICAL_RETRIEVER="bm25")
    body = search(
        client,
        {
            "query": 'report "leaking roofs"',
            "config": {"similarity_threshold": -1, "max_results": 20},
        },
        api_keys["admin"],  # score_parts: admin only
    ).json
    lexical = [
        r for r in body["results"] if r["score_parts"]["lexical_rank"] is not None
    ]
    assert lexical and body["results"][0]["document_id"] == "estates-maintenance"
    assert all("leaking roof" in r["text"].lower() for r in lexical)


def _lexical_scores(
    conn: psycopg.Connection[Any], query: str, clearance: int
) -> dict[int, float]:
    retriever = Bm25Retriever()
    sql = f"SELECT id, lex_score FROM ({retriever.cte(filter_predicate(Filters()))}) AS lex"
    params = {
        "query": query,
        "tsconfig": "english",
        "candidates": 1000,
        "clearance": clearance,
        **retriever.params(),
    }
    return {r[0]: float(r[1]) for r in conn.execute(sql, params).fetchall()}  # type: ignore[arg-type]


def test_restricted_chunks_do_not_move_a_callers_scores(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    """Issue 14 item 9: a student's lexical scores are computed from what a
    student may see. Adding restricted chunks full of the query's words changes
    an admin's scores (their statistics count them) and not the student's: no
    probing of how many restricted chunks hold a word."""
    db, factory = fresh_db
    settings = factory()
    source = tmp_path / "corpus"
    shutil.copytree(CORPUS, source)
    _ingest(postgres, db, settings, source)
    query = "password reset instructions"
    with owner_connection(postgres, db) as conn:
        student_before = _lexical_scores(conn, query, 1)
        admin_before = _lexical_scores(conn, query, 5)
    assert student_before
    secret = source / "hr" / "restricted-password-notes.md"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(
        "---\ntitle: Restricted password notes\ndepartment: HR\nclearance_level: 5\n---\n"
        + "Password reset instructions for the payroll system. " * 20
    )
    _ingest(postgres, db, settings, source)
    with owner_connection(postgres, db) as conn:
        student_after = _lexical_scores(conn, query, 1)
        admin_after = _lexical_scores(conn, query, 5)
        _assert_stats_exact(conn)
    assert student_after == student_before
    assert admin_after != admin_before
    assert set(admin_after) > set(admin_before)


def test_migration_7_fills_the_level_statistics_of_a_live_corpus(
    postgres: Postgres,
    fresh_db: tuple[str, SettingsFactory],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A corpus ingested under the previous release (migrations 1-6) gets exact
    per-level statistics from migration 7, and later writes keep them exact."""
    db, factory = fresh_db
    settings = factory()
    with owner_connection(postgres, db) as conn:
        conn.execute("DROP TABLE lexeme_level_stats, corpus_level_stats")
        conn.execute("DELETE FROM schema_migrations WHERE version = 7")
    with monkeypatch.context() as patch:
        # the previous release's trigger functions, from its migrations
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:6])
        with owner_connection(postgres, db) as conn:
            for version in (2, 4):
                for statement in migrations.MIGRATIONS[version - 1].statements(
                    settings
                ):
                    text = statement.as_string(conn)
                    if "CREATE FUNCTION bm25_stats" in text:
                        conn.execute(
                            text.replace(
                                "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"
                            )
                        )  # type: ignore[arg-type]
    source = tmp_path / "corpus"
    shutil.copytree(CORPUS, source)
    _ingest(postgres, db, settings, source)
    with owner_connection(postgres, db) as conn:
        assert conn.execute("SELECT to_regclass('lexeme_level_stats')").fetchone() == (
            None,
        )
        report = migrations.migrate(conn, settings)
        assert report.applied == [7]
        _assert_stats_exact(conn)
    page = source / "it-services" / "eduroam-wifi.md"
    page.write_text(page.read_text() + "\nQuokka wombat lexemes.\n")
    _ingest(postgres, db, settings, source)
    with owner_connection(postgres, db) as conn:
        _assert_stats_exact(conn)


def test_chunks_sharing_two_rare_words_are_candidates_above_the_budget(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    """Above the budget, half of it goes to chunks holding two of the rarest
    query lexemes: the chunks holding both 'wombat' and 'quokka' (each word
    common) are scored although the rarest word 'axolotl' fills its half."""
    db, factory = fresh_db
    settings = factory()
    source = tmp_path / "corpus"
    source.mkdir()
    texts = (  # in ingestion order: the chunks holding both words come last
        ["Axolotl care notes."] * 3
        + ["Wombat burrow maps."] * 4
        + ["Quokka island visit."] * 4
        + ["Wombat and quokka survey results."] * 2
    )
    for number, text in enumerate(texts):
        (source / f"doc{number:02d}.md").write_text(
            f"---\nid: doc{number:02d}\ntitle: Note {number}\nclearance_level: 1\n---\n{text}\n"
        )
    _ingest(postgres, db, settings, source)
    query = "axolotl wombat quokka"
    with owner_connection(postgres, db) as conn:
        both = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM document_chunks WHERE tsv @@ 'wombat & quokka'::tsquery"
            )
        }
        axolotl = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM document_chunks WHERE tsv @@ 'axolotl'::tsquery"
            )
        }
        for cap in (6, 100):
            retriever = Bm25Retriever(max_candidates=cap)
            sql = (
                f"SELECT id FROM ({retriever.cte(filter_predicate(Filters()))}) AS lex"
            )
            params = {
                "query": query,
                "tsconfig": "english",
                "candidates": 100,
                "clearance": 5,
                **retriever.params(),
            }
            got = {r[0] for r in conn.execute(sql, params).fetchall()}  # type: ignore[arg-type]
            assert len(got) <= cap
            assert both <= got, (cap, got)
            assert got & axolotl, (cap, got)
