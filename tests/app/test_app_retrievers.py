"""The lexical retriever registry (issue 15): settings and the search SQL take
the retrievers' names and list counts from it, and a new retriever is one new
file in ``vector_search/retrievers/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import vector_search
from vector_search import retrievers
from vector_search.config import ConfigError, load_settings
from vector_search.embedder import OllamaEmbedder
from vector_search.search import Filters, SearchEngine
from vs_services import Postgres, SettingsFactory

BM25_SETTINGS = SimpleNamespace(bm25_k1=1.2, bm25_b=0.75, bm25_max_candidates=2000)


def _engine(name: str) -> SearchEngine:
    return SearchEngine(
        retrievers.make(name, BM25_SETTINGS), 100, 60, "english", fusion="rrf"
    )


def test_the_registry_holds_one_retriever_per_module() -> None:
    package = Path(retrievers.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "base"}
    assert retrievers.names() == ("bm25", "none", "tsrank")
    assert {
        cls.__module__.rsplit(".", 1)[1] for cls in retrievers.REGISTRY.values()
    } == modules


def test_the_fused_list_count_comes_from_the_retriever() -> None:
    # RRF is normalised by the best score a chunk can reach: first in every list
    assert "f.rrf / (2.0 / (%(rrf_k)s + 1))" in _engine("bm25").sql(Filters())
    assert "f.rrf / (2.0 / (%(rrf_k)s + 1))" in _engine("tsrank").sql(Filters())
    assert "f.rrf / (1.0 / (%(rrf_k)s + 1))" in _engine("none").sql(Filters())


def test_settings_refuse_an_unknown_retriever_naming_the_known_ones(
    tmp_path: Path,
) -> None:
    env = tmp_path / "empty.env"
    env.write_text("")
    with pytest.raises(ConfigError) as error:
        load_settings(
            environ={"VECTOR_SEARCH_ENV_FILE": str(env), "LEXICAL_RETRIEVER": "bm42"}
        )
    assert "LEXICAL_RETRIEVER must be one of bm25, none, tsrank, got 'bm42'" in str(
        error.value
    )
    with pytest.raises(ValueError, match="known: bm25, none, tsrank"):
        retrievers.make("bm42", BM25_SETTINGS)


def test_a_retriever_needs_a_unique_name() -> None:
    class Again(retrievers.LexicalRetriever):
        name = "bm25"
        summary = "a second bm25"

        def cte(self, filters_sql: str) -> str:
            return ""

    with pytest.raises(TypeError, match="'bm25' is taken by .*Bm25Retriever"):
        retrievers.register(Again)
    assert retrievers.REGISTRY["bm25"].__name__ == "Bm25Retriever"


# A retriever of its own: every chunk matching one of the query's lexemes, in id
# order, each scored 0.5 (a value no real retriever gives every candidate).
NEW_RETRIEVER = '''
"""``firstmatch``: a test retriever."""

from vector_search.retrievers.base import LexicalRetriever, register


@register
class FirstMatch(LexicalRetriever):
    name = "firstmatch"
    summary = "matching chunks in id order"

    def cte(self, filters_sql: str) -> str:
        return f"""
        SELECT c.id, 0.5::real AS lex_score
        FROM document_chunks c
        WHERE c.tsv @@ plainto_tsquery(%(tsconfig)s::regconfig, %(query)s) AND {filters_sql}
        ORDER BY c.id
        LIMIT %(candidates)s"""
'''

# Runs in a fresh interpreter on the copied package: the settings, the engine the
# API builds from them and one search on the sample corpus.
PROBE = """
import json, sys
import psycopg
from pgvector.psycopg import register_vector
import vector_search
from vector_search.config import SETTINGS, load_settings
from vector_search.search import Filters, SearchRequest
from vector_search.runtime import build_engine

given = json.load(sys.stdin)
settings = load_settings(environ=given["env"])
engine = build_engine(settings)
with psycopg.connect(given["dsn"]) as conn:
    register_vector(conn)
    rows = engine.run(conn, SearchRequest(given["query"]), given["vector"], 4)
print(json.dumps({
    "package": vector_search.__file__,
    "retriever": type(engine.retriever).__name__,
    "help": next(s.help for s in SETTINGS if s.name == "LEXICAL_RETRIEVER"),
    "sql": engine.sql(Filters()),
    "lex_scores": [r["score_parts"]["lexical_score"] for r in rows],
    "lexical_ranks": [r["score_parts"]["lexical_rank"] for r in rows],
}))
"""


def test_a_new_retriever_is_one_file(
    tmp_path: Path,
    postgres: Postgres,
    main_db: str,
    corpus_ingested: object,
    make_settings: SettingsFactory,
    base_env: dict[str, str],
) -> None:
    package = tmp_path / "vector_search"
    shutil.copytree(
        Path(vector_search.__file__).parent,
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (package / "retrievers" / "firstmatch.py").write_text(NEW_RETRIEVER)

    query = "eduroam wireless network"
    embedder = OllamaEmbedder(make_settings())
    try:
        [vector] = embedder.embed([query])
    finally:
        embedder.close()
    env = {**base_env, "LEXICAL_RETRIEVER": "firstmatch", "FUSION": "rrf"}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        input=json.dumps(
            {
                "env": env,
                "dsn": postgres.dsn(main_db),
                "query": query,
                "vector": vector,
            }
        ),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)

    assert got["package"] == str(package / "__init__.py")
    assert got["retriever"] == "FirstMatch"
    assert "firstmatch (matching chunks in id order)" in got["help"]
    assert "0.5::real AS lex_score" in got["sql"]
    assert "f.rrf / (2.0 / (%(rrf_k)s + 1))" in got["sql"]  # two fused lists
    # its candidates reached the results, with its score and a lexical rank
    assert 0.5 in got["lex_scores"]
    assert all(
        (score is None) == (rank is None)
        for score, rank in zip(got["lex_scores"], got["lexical_ranks"], strict=True)
    )
    assert set(got["lex_scores"]) <= {0.5, None}
