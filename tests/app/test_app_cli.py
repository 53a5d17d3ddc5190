"""The vector-search command line, in-process, and `serve` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from vector_search import __version__
from vector_search.cli import main
from vs_services import CORPUS, Postgres, SettingsFactory, create_database, free_port


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch,
    base_env: dict[str, str],
    postgres: Postgres,
    tmp_path: Path,
) -> dict[str, str]:
    """Environment for the CLI against a new database; the password comes from a file."""
    name = f"vs_cli_{os.getpid()}_{time.monotonic_ns() % 100000}"
    create_database(postgres, name)
    secret = tmp_path / "owner-password"
    secret.write_text("owner-pw\n")
    env = {
        **base_env,
        "DATABASE_NAME": name,
        "DATABASE_OWNER_PASSWORD_FILE": str(secret),
    }
    env.pop("DATABASE_OWNER_PASSWORD")
    monkeypatch.delenv("DATABASE_OWNER_PASSWORD", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_cli_workflow(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL schema" in out and "vector-search migrate" in out

    assert main(["migrate"]) == 0
    assert "applied migration 1" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "schema up to date" in capsys.readouterr().out

    assert main(["ingest", str(CORPUS), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents_added"] == 12
    assert main(["ingest", str(CORPUS)]) == 0
    assert "12 unchanged" in capsys.readouterr().out

    assert (
        main(["keys", "create", "--role", "staff", "--owner", "alice", "--json"]) == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("vs_") and created["role"] == "staff"
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["owner"] for k in listed] == ["alice"]
    assert created["key"] not in json.dumps(listed)
    assert main(["keys", "list"]) == 0
    assert "alice" in capsys.readouterr().out
    assert main(["keys", "revoke", str(created["id"])]) == 0
    assert main(["keys", "revoke", str(created["id"])]) == 1
    capsys.readouterr()

    # One key per simulated user, as the lab and the cluster scenario hand out.
    argv = ["keys", "create", "--role", "student", "--owner", "load", "--json"]
    assert main([*argv, "--count", "3"]) == 0
    many = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [k["owner"] for k in many] == ["load-1", "load-2", "load-3"]
    assert len({k["key"] for k in many}) == 3
    assert main([*argv, "--count", "0"]) == 2
    assert "--count must be at least 1" in capsys.readouterr().err

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "OK   embedding dimension" in out

    assert main(["config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["DATABASE_PASSWORD"] == "***"
        and shown["DATABASE_OWNER_PASSWORD"] == "***"
    )


def test_check_reports_dimension_mismatch(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate"]) == 0
    monkeypatch.setenv("EMBEDDING_DIMENSION", "768")
    capsys.readouterr()
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL embedding column" in out and "FAIL embedding dimension" in out


def test_check_reports_unreachable_services(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_PORT", str(free_port()))
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("OLLAMA_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL database" in out and "FAIL redis" in out and "FAIL ollama" in out
    assert out.count("fix:") >= 3


def test_config_error_names_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text("PORT=abc\n")
    assert main(["--env-file", str(env_file), "config"]) == 2
    assert "PORT must be an integer" in capsys.readouterr().err


def test_config_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--example"]) == 0
    assert "EMBEDDING_DIMENSION=384" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_serve_with_waitress(
    base_env: dict[str, str],
    corpus_ingested: object,
    tmp_path: Path,
    make_settings: SettingsFactory,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **base_env,
        "CACHE_NAMESPACE": "vs-serve-test",
        "THREADS": "2",
        "TRUSTED_PROXY": "127.0.0.1",
    }
    stderr = tmp_path / "serve.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "vector_search", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        live = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health/live", timeout=1
                ) as r:
                    live = json.loads(r.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert live == {"status": "alive", "version": __version__}, stderr.read_text()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/search",
            data=json.dumps({"query": "eduroam wifi"}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Request-ID": "serve-test-1",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            body = json.loads(r.read())
            assert r.headers["Server"].startswith("vector-search/")
        assert body["results"][0]["document_id"] == "it-eduroam"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert json.loads(r.read())["version"] == __version__
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM stops waitress cleanly
    lines = [
        json.loads(line)
        for line in stderr.read_text().splitlines()
        if line.startswith("{")
    ]
    access = [line for line in lines if line.get("request_id") == "serve-test-1"]
    assert access and access[0]["status"] == 200 and access[0]["role"] == "anonymous"
    assert (
        access[0]["logger"] == "vector_search.access" and access[0]["level"] == "INFO"
    )
    assert "eduroam" not in stderr.read_text()  # no query text in INFO logs
    messages = [line["message"] for line in lines]
    assert "serving" in messages and "stopped" in messages
