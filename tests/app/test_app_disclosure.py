"""What each caller may learn: /api/stats scoped to clearance, /health detail only
for the monitoring networks or an admin key, score_parts for admins, documents
without a clearance refused, anonymous access off by default, one body limit."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pgvector.psycopg import register_vector
from vector_search import __version__
from vector_search.cli import main
from vector_search.config import ConfigError, load_settings
from vector_search.embedder import OllamaEmbedder
from vector_search.ingest import Ingestor, IngestSummary
from vector_search.web.health import address_in
from vs_services import (
    Postgres,
    SettingsFactory,
    bearer,
    free_port,
    owner_connection,
    search,
)

PUBLIC = {"REMOTE_ADDR": "203.0.113.7"}  # TEST-NET-3: outside every detail network
INTERNAL_WORDS = ("components", "schema", "embedding", "all-minilm", "latency")


# --- /api/stats ---------------------------------------------------------------


def _visible_counts(
    postgres: Postgres, db: str, clearance: int
) -> dict[tuple[str, str], int]:
    with owner_connection(postgres, db) as conn:
        rows = conn.execute(
            "SELECT department, campus, count(*) FROM documents "
            "WHERE clearance_level <= %s GROUP BY 1, 2",
            (clearance,),
        ).fetchall()
    return {(r[0], r[1]): int(r[2]) for r in rows}


def test_student_stats_hold_nothing_above_their_clearance(
    client: FlaskClient, api_keys: dict[str, str], postgres: Postgres, main_db: str
) -> None:
    response = client.get("/api/stats", headers=bearer(api_keys["student"]))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["clearance_level"] == 2
    rows = {(r["department"], r["campus"]): r for r in body["documents"]}
    # HR (clearance 3) and Research Services (3) are not even named
    departments = {department for department, _ in rows}
    assert "HR" not in departments and "Research Services" not in departments
    text = response.get_data(as_text=True)
    assert "HR" not in text and "Research Services" not in text
    # the clearance-4 runbook shares IT Services / Central Campus with a public page:
    # the student's count there is the public page alone
    assert {k: r["documents"] for k, r in rows.items()} == _visible_counts(
        postgres, main_db, 2
    )
    assert rows[("IT Services", "Central Campus")]["documents"] == 1
    assert body["totals"]["documents"] == sum(
        _visible_counts(postgres, main_db, 2).values()
    )
    # no internals: SQL text, cache and pool are the admin's
    for internal in ("query_performance", "cache", "pool"):
        assert internal not in body, internal
    assert "document_chunks" not in text


def test_admin_stats_hold_everything_and_internals(
    client: FlaskClient, api_keys: dict[str, str], postgres: Postgres, main_db: str
) -> None:
    search(client, {"query": "eduroam wifi"}, api_keys["admin"])
    body = client.get("/api/stats", headers=bearer(api_keys["admin"])).json
    rows = {(r["department"], r["campus"]): r for r in body["documents"]}
    assert {"HR", "Research Services"} <= {d for d, _ in rows}
    assert rows[("IT Services", "Central Campus")]["documents"] == 2
    assert body["totals"]["documents"] == 12
    assert body["query_performance"]["available"] is True
    assert body["cache"]["available"] is True
    assert body["pool"]["pool_max"] == 4


def test_staff_stats_stop_at_clearance_three(
    client: FlaskClient, api_keys: dict[str, str]
) -> None:
    body = client.get("/api/stats", headers=bearer(api_keys["staff"])).json
    rows = {(r["department"], r["campus"]): r for r in body["documents"]}
    assert "HR" in {d for d, _ in rows}  # clearance 3
    assert (
        rows[("IT Services", "Central Campus")]["documents"] == 1
    )  # not the level-4 runbook
    assert "pool" not in body


# --- /health ------------------------------------------------------------------


def test_public_health_is_status_only(client: FlaskClient) -> None:
    response = client.get("/health", environ_base=PUBLIC)
    assert response.status_code == 200
    assert set(response.json) == {"status", "version", "timestamp"}
    assert response.json["status"] == "healthy"
    assert response.json["version"] == __version__
    text = response.get_data(as_text=True)
    for word in INTERNAL_WORDS:
        assert word not in text, word
    ready = client.get("/health/ready", environ_base=PUBLIC)
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "version": __version__}
    live = client.get("/health/live", environ_base=PUBLIC)
    assert live.json == {"status": "alive", "version": __version__}


def test_loopback_gets_health_detail_by_default(client: FlaskClient) -> None:
    body = client.get("/health", environ_base={"REMOTE_ADDR": "127.0.0.1"}).json
    assert set(body["components"]) == {"database", "cache", "embedder"}
    assert body["components"]["embedder"]["model"] == "all-minilm"
    ready = client.get("/health/ready", environ_base={"REMOTE_ADDR": "::1"}).json
    assert ready["database"]["schema_version"] >= 1


def test_configured_network_gets_detail_and_others_do_not(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(HEALTH_DETAIL_NETWORKS="198.51.100.0/24, 192.0.2.10")
    for address in ("198.51.100.9", "192.0.2.10", "::ffff:198.51.100.20"):
        body = client.get("/health", environ_base={"REMOTE_ADDR": address}).json
        assert "components" in body, address
    for address in ("127.0.0.1", "192.0.2.11", "203.0.113.7"):
        body = client.get("/health", environ_base={"REMOTE_ADDR": address}).json
        assert "components" not in body, address


def test_forwarded_client_is_judged_by_its_own_address(
    make_client: Callable[..., FlaskClient],
) -> None:
    """A load balancer missing from TRUSTED_PROXY forwards with its own address
    (a detail address): the client named in X-Real-IP still decides."""
    client = make_client(HEALTH_DETAIL_NETWORKS="10.0.0.0/24")
    balancer = {"REMOTE_ADDR": "10.0.0.5"}
    outside = client.get(
        "/health", environ_base=balancer, headers={"X-Real-IP": "203.0.113.7"}
    )
    assert "components" not in outside.json
    inside = client.get(
        "/health", environ_base=balancer, headers={"X-Real-IP": "10.0.0.9"}
    )
    assert "components" in inside.json
    assert "components" in client.get("/health", environ_base=balancer).json


def test_admin_key_gets_health_detail_from_anywhere(
    client: FlaskClient, api_keys: dict[str, str]
) -> None:
    admin = client.get(
        "/health", environ_base=PUBLIC, headers=bearer(api_keys["admin"])
    )
    assert set(admin.json["components"]) == {"database", "cache", "embedder"}
    for other in (api_keys["student"], api_keys["academic"], "vs_not-a-real-key"):
        body = client.get("/health", environ_base=PUBLIC, headers=bearer(other)).json
        assert "components" not in body
    ready = client.get(
        "/health/ready", environ_base=PUBLIC, headers=bearer(api_keys["admin"])
    )
    assert "database" in ready.json


def test_degraded_health_shows_no_error_text_to_the_public(
    make_client: Callable[..., FlaskClient],
) -> None:
    broken = make_client(OLLAMA_URL="http://127.0.0.1:9", OLLAMA_TIMEOUT="1")
    public = broken.get("/health", environ_base=PUBLIC)
    assert public.status_code == 503
    assert set(public.json) == {"status", "version", "timestamp"}
    assert public.json["status"] == "degraded"
    inside = broken.get("/health").json
    assert inside["components"]["embedder"]["healthy"] is False
    assert inside["components"]["embedder"]["error"]


def test_health_rate_limit_per_address_spares_monitoring(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(HEALTH_RATE_LIMIT="3", HEALTH_DETAIL_NETWORKS="192.0.2.0/24")
    statuses = [
        client.get(path, environ_base=PUBLIC).status_code
        for path in ("/health", "/health/ready", "/health/live", "/health", "/health")
    ]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
    refused = client.get("/health", environ_base=PUBLIC)
    assert refused.json["error"] == "rate_limited" and "Retry-After" in refused.headers
    # another public address has its own budget; the monitoring network none at all
    assert (
        client.get(
            "/health/live", environ_base={"REMOTE_ADDR": "203.0.113.8"}
        ).status_code
        == 200
    )
    monitoring = {"REMOTE_ADDR": "192.0.2.5"}
    assert all(
        client.get("/health", environ_base=monitoring).status_code == 200
        for _ in range(10)
    )


def test_health_detail_networks_setting() -> None:
    env = {"HEALTH_DETAIL_NETWORKS": "10.1.2.3, 10.20.0.0/24 fd00::/8"}
    settings = load_settings(environ=env, env_file=os.devnull)
    assert settings.health_detail_networks == (
        "10.1.2.3/32",
        "10.20.0.0/24",
        "fd00::/8",
    )
    with pytest.raises(ConfigError, match="HEALTH_DETAIL_NETWORKS.*lb1"):
        load_settings(environ={"HEALTH_DETAIL_NETWORKS": "lb1"}, env_file=os.devnull)
    nets = (ipaddress.ip_network("10.20.0.0/24"), ipaddress.ip_network("::1/128"))
    assert address_in("10.20.0.7", nets) and address_in("::ffff:10.20.0.7", nets)
    assert address_in("::1", nets)
    assert not address_in("10.20.1.7", nets) and not address_in(None, nets)
    assert not address_in("not-an-address", nets)


# --- score_parts ----------------------------------------------------------------


def test_score_parts_for_admins_only(
    client: FlaskClient, api_keys: dict[str, str]
) -> None:
    body = {"query": "how do I reset my university password?"}
    for attempt in ("fresh", "cached"):
        for role in ("student", "staff", "academic"):
            response = search(client, body, api_keys[role])
            assert response.status_code == 200
            results = response.json["results"]
            assert results, (role, attempt)
            for result in results:
                assert "score_parts" not in result, (role, attempt)
                assert result["score"] == round(result["score"], 2)
        admin = search(client, body, api_keys["admin"]).json["results"]
        assert admin and all("lexical_score" in r["score_parts"] for r in admin)
    anonymous = search(client, body).json["results"]
    assert anonymous and all("score_parts" not in r for r in anonymous)


# --- documents without a clearance --------------------------------------------------


def _ingest(
    postgres: Postgres, db: str, settings, paths: list[Path], **kwargs
) -> IngestSummary:  # type: ignore[no-untyped-def]
    embedder = OllamaEmbedder(settings)
    try:
        with owner_connection(postgres, db) as conn:
            register_vector(conn)
            return Ingestor(conn, embedder, settings).ingest(paths, **kwargs)
    finally:
        embedder.close()


def _stored(postgres: Postgres, db: str) -> dict[str, int]:
    with owner_connection(postgres, db) as conn:
        rows = conn.execute(
            "SELECT external_id, clearance_level FROM documents"
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def _mixed_corpus(root: Path) -> Path:
    root.mkdir()
    (root / "open.md").write_text(
        "---\ntitle: Open day\nclearance_level: 1\n---\nThe open day starts at ten.\n"
    )
    (root / "unlabelled.md").write_text(
        "---\ntitle: Disciplinary cases\ndepartment: HR\n---\nCase notes.\n"
    )
    (root / "page.html").write_text(
        "<html><head><title>Payroll</title></head><body><p>Salaries.</p></body></html>"
    )
    records = [
        {"id": "r1", "text": "Labelled record", "clearance_level": 2},
        {"id": "r2", "text": "Unlabelled record"},
    ]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_document_without_clearance_is_refused_and_the_rest_ingested(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    root = _mixed_corpus(tmp_path / "mixed")
    summary = _ingest(postgres, db, factory(), [root])
    assert summary.documents_seen == 5
    assert summary.documents_added == 2 and summary.documents_refused == 3
    assert _stored(postgres, db) == {"open.md": 1, "r1": 2}
    refused = "\n".join(summary.refused)
    for name in ("unlabelled.md", "page.html", "records.jsonl:2"):
        assert name in refused, name
    assert "clearance_level" in refused and "DEFAULT_CLEARANCE_LEVEL" in refused


def test_refused_document_keeps_its_stored_version_under_prune(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    root = tmp_path / "docs"
    root.mkdir()
    page = root / "guide.md"
    page.write_text("---\ntitle: Guide\nclearance_level: 3\n---\nStaff guide.\n")
    _ingest(postgres, db, factory(), [root], source="docs")
    page.write_text("---\ntitle: Guide\n---\nStaff guide, edited.\n")  # label lost
    summary = _ingest(postgres, db, factory(), [root], source="docs", prune=True)
    assert summary.documents_refused == 1 and summary.documents_pruned == 0
    assert _stored(postgres, db) == {"guide.md": 3}  # never public, never deleted


def test_default_clearance_level_setting_applies_a_chosen_level(
    postgres: Postgres, fresh_db: tuple[str, SettingsFactory], tmp_path: Path
) -> None:
    db, factory = fresh_db
    root = _mixed_corpus(tmp_path / "mixed")
    summary = _ingest(postgres, db, factory(DEFAULT_CLEARANCE_LEVEL="5"), [root])
    assert summary.documents_refused == 0 and summary.documents_clearance_defaulted == 3
    assert _stored(postgres, db) == {
        "open.md": 1,
        "r1": 2,
        "unlabelled.md": 5,
        "page.html": 5,
        "r2": 5,
    }
    with pytest.raises(ConfigError, match="DEFAULT_CLEARANCE_LEVEL"):
        factory(DEFAULT_CLEARANCE_LEVEL="public")


def test_cli_names_refused_documents_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    fresh_db: tuple[str, SettingsFactory],
    base_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, _ = fresh_db
    for key, value in {**base_env, "DATABASE_NAME": db}.items():
        monkeypatch.setenv(key, value)
    root = _mixed_corpus(tmp_path / "mixed")
    assert main(["ingest", str(root)]) == 2
    captured = capsys.readouterr()
    assert "2 added" in captured.out and "3 refused" in captured.out
    refused = [
        line for line in captured.err.splitlines() if line.startswith("refused: ")
    ]
    assert len(refused) == 3 and any("unlabelled.md" in line for line in refused)


# --- anonymous access -------------------------------------------------------------


def test_anonymous_access_is_off_by_default(
    make_client: Callable[..., FlaskClient], empty_env_file: Path
) -> None:
    assert (
        load_settings(environ={}, env_file=str(empty_env_file)).anonymous_enabled
        is False
    )
    closed = make_client(ANONYMOUS_ENABLED="false")
    response = search(closed, {"query": "library opening hours"})
    assert response.status_code == 401 and response.json["error"] == "unauthorized"


# --- one body limit -----------------------------------------------------------------


def test_body_over_the_limit_gets_json_413(
    make_client: Callable[..., FlaskClient], api_keys: dict[str, str]
) -> None:
    client = make_client(MAX_BODY_BYTES="4096")
    at_limit = json.dumps({"query": "eduroam wifi", "config": {}}).ljust(4096)
    response = client.post(
        "/api/search",
        data=at_limit,
        content_type="application/json",
        headers=bearer(api_keys["staff"]),
    )
    assert response.status_code == 200, response.json
    response = client.post(
        "/api/search",
        data=at_limit + " ",
        content_type="application/json",
        headers=bearer(api_keys["staff"]),
    )
    assert response.status_code == 413
    assert response.json["error"] == "payload_too_large"


def _raw(port: int, headers: dict[str, str], body: bytes, chunked: bool = False):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/api/search")
        for name, value in headers.items():
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for start in range(0, len(body), 1000):
                part = body[start : start + 1000]
                conn.send(b"%x\r\n%s\r\n" % (len(part), part))
            conn.send(b"0\r\n\r\n")
        else:
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            try:
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused after the headers: the answer is already waiting
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_waitress_enforces_the_same_limit_with_json(
    base_env: dict[str, str], corpus_ingested: object, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **base_env,
        "CACHE_NAMESPACE": "vs-body-test",
        "MAX_BODY_BYTES": "4096",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vector_search", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                time.sleep(0.2)
        headers = {"Content-Type": "application/json"}
        at_limit = json.dumps({"query": "eduroam wifi"}).ljust(4096).encode()
        status, _, _ = _raw(port, headers, at_limit)
        assert status == 200, log.read_text()
        for chunked in (False, True):
            status, content_type, body = _raw(port, headers, at_limit + b" ", chunked)
            assert status == 413, (chunked, body)
            assert content_type.startswith("application/json"), (chunked, body)
            assert json.loads(body)["error"] == "payload_too_large"
        status, _, body = _raw(port, headers, b"x" * 1_000_000)
        assert status == 413 and b"4096" in body
    finally:
        process.terminate()
        assert process.wait(10) == 0
