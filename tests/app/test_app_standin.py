"""The Ollama-API stand-in: the API subset the project relies on."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from vs_services import Standin, start_standin


@pytest.fixture(scope="module")
def fresh_standin() -> Iterator[Standin]:
    """A stand-in that starts with nothing pulled."""
    server = start_standin(preload=False)
    yield server
    server.stop()


def test_version_root_and_tags(fresh_standin: Standin) -> None:
    with httpx.Client(base_url=fresh_standin.url) as client:
        assert client.get("/").text == "Ollama is running"
        assert client.head("/").status_code == 200
        assert client.get("/api/version").json()["version"].endswith("-standin")
        assert client.get("/api/tags").json() == {"models": []}


def test_pull_then_embed(fresh_standin: Standin) -> None:
    with httpx.Client(base_url=fresh_standin.url, timeout=30) as client:
        missing = client.post(
            "/api/embed", json={"model": "all-minilm", "input": "hello"}
        )
        assert missing.status_code == 404
        assert missing.json() == {"error": "model 'all-minilm' not found"}
        unknown = client.post("/api/pull", json={"model": "llama3", "stream": False})
        assert unknown.status_code == 404 and "error" in unknown.json()

        streamed = client.post("/api/pull", json={"model": "all-minilm"})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in streamed.text.splitlines()]
        assert lines[0]["status"] == "pulling manifest" and lines[-1] == {
            "status": "success"
        }
        assert client.post(
            "/api/pull", json={"model": "all-minilm:latest", "stream": False}
        ).json() == {"status": "success"}
        tags = client.get("/api/tags").json()["models"]
        assert [m["name"] for m in tags] == ["all-minilm:latest"]
        assert tags[0]["details"]["embedding_length"] == 384

        single = client.post(
            "/api/embed", json={"model": "all-minilm", "input": "password reset"}
        ).json()
        assert single["model"] == "all-minilm"
        assert len(single["embeddings"]) == 1 and len(single["embeddings"][0]) == 384
        assert math.isclose(
            sum(x * x for x in single["embeddings"][0]), 1.0, rel_tol=1e-5
        )
        assert single["prompt_eval_count"] > 0 and single["total_duration"] > 0

        batch = client.post(
            "/api/embed",
            json={
                "model": "all-minilm",
                "input": ["password reset", "reset my password", "campus parking"],
            },
        ).json()["embeddings"]
        assert len(batch) == 3
        close = sum(a * b for a, b in zip(batch[0], batch[1], strict=True))
        far = sum(a * b for a, b in zip(batch[0], batch[2], strict=True))
        assert close > 0.7 > far
        assert math.isclose(
            sum(a * b for a, b in zip(batch[0], single["embeddings"][0], strict=True)),
            1.0,
            rel_tol=1e-4,
        )

        empty = client.post(
            "/api/embed", json={"model": "all-minilm", "input": []}
        ).json()
        assert empty["embeddings"] == []

        short = client.post(
            "/api/embed", json={"model": "all-minilm", "input": "x", "dimensions": 64}
        ).json()
        assert len(short["embeddings"][0]) == 64
        assert math.isclose(
            sum(x * x for x in short["embeddings"][0]), 1.0, rel_tol=1e-5
        )
        assert (
            client.post(
                "/api/embed",
                json={"model": "all-minilm", "input": "x", "dimensions": 999},
            ).status_code
            == 400
        )

        long_text = "word " * 600
        assert (
            client.post(
                "/api/embed",
                json={"model": "all-minilm", "input": long_text, "truncate": False},
            ).status_code
            == 400
        )
        truncated = client.post(
            "/api/embed", json={"model": "all-minilm", "input": long_text}
        )
        assert (
            truncated.status_code == 200
            and len(truncated.json()["embeddings"][0]) == 384
        )

        assert (
            client.post(
                "/api/embed", json={"model": "all-minilm", "input": 5}
            ).status_code
            == 400
        )
        assert (
            client.post(
                "/api/embed",
                content=b"{bad",
                headers={"content-type": "application/json"},
            ).status_code
            == 400
        )
        legacy = client.post(
            "/api/embeddings", json={"model": "all-minilm", "prompt": "hi"}
        ).json()
        assert len(legacy["embedding"]) == 384


def test_pulled_models_survive_restart() -> None:
    server = start_standin(preload=False)
    models_dir = server.workdir / "models"
    try:
        httpx.post(
            f"{server.url}/api/pull",
            json={"model": "all-minilm", "stream": False},
            timeout=10,
        )
        server.process.terminate()
        server.process.wait(10)
        from vs_services import free_port

        port = free_port()
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ollama_standin",
                "serve",
                "--port",
                str(port),
                "--models-dir",
                str(models_dir),
            ]
        )
        try:
            restarted = Standin(port=port, process=second, workdir=server.workdir)
            import time

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    tags = httpx.get(f"{restarted.url}/api/tags", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert [m["name"] for m in tags["models"]] == ["all-minilm:latest"]
        finally:
            second.terminate()
            second.wait(10)
    finally:
        server.stop()


def test_configurable_model_names_and_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "ollama_standin", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "stand-in, not Ollama" in result.stdout
    from ollama_standin.registry import ModelRegistry

    registry = ModelRegistry(servable=["mini", "all-minilm:v2"], models_dir=tmp_path)
    assert registry.can_serve("mini:latest") and registry.can_serve("all-minilm:v2")
    assert not registry.can_serve("all-minilm")
