"""HTTP server speaking the Ollama API subset (a stand-in, not Ollama)."""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ollama_standin.model import DIMENSION, InputTooLongError, MiniLMEmbedder, shorten
from ollama_standin.registry import ModelRegistry

log = logging.getLogger("ollama_standin")
MAX_BODY = 32 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        embedder: MiniLMEmbedder,
        registry: ModelRegistry,
        reported_version: str,
    ) -> None:
        super().__init__(address, Handler)
        self.embedder = embedder
        self.registry = registry
        self.reported_version = reported_version
        self.load_duration_ns = 0


class Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------
    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large"
            )
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadRequest(
                HTTPStatus.BAD_REQUEST, "request body must be a JSON object"
            )
        return data

    def _dispatch(self, routes: dict[str, Any]) -> None:
        path = self.path.split("?", 1)[0]
        handler = routes.get(path)
        if handler is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "404 page not found"})
            return
        try:
            handler()
        except BadRequest as exc:
            self._send_json(exc.status, {"error": exc.message})
        except (
            Exception
        ):  # pragma: no cover - last resort, never a traceback to clients
            log.exception("request failed")
            self._send_json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
            )

    def do_GET(self) -> None:
        self._dispatch(
            {"/": self._root, "/api/version": self._version, "/api/tags": self._tags}
        )

    def do_HEAD(self) -> None:
        self._dispatch({"/": self._root, "/api/version": self._version})

    def do_POST(self) -> None:
        self._dispatch(
            {
                "/api/embed": self._embed,
                "/api/embeddings": self._embeddings,
                "/api/pull": self._pull,
            }
        )

    # -- endpoints ----------------------------------------------------------
    def _root(self) -> None:
        body = b"Ollama is running"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _version(self) -> None:
        self._send_json(HTTPStatus.OK, {"version": self.server.reported_version})

    def _tags(self) -> None:
        self._send_json(HTTPStatus.OK, {"models": self.server.registry.tags()})

    def _model_name(self, data: dict[str, Any]) -> str:
        name = data.get("model", data.get("name"))
        if not isinstance(name, str) or not name.strip():
            raise BadRequest(HTTPStatus.BAD_REQUEST, "model is required")
        return name.strip()

    def _require_present(self, name: str) -> None:
        registry = self.server.registry
        if not (registry.can_serve(name) and registry.is_present(name)):
            raise BadRequest(HTTPStatus.NOT_FOUND, f"model '{name}' not found")

    def _pull(self) -> None:
        data = self._read_json()
        name = self._model_name(data)
        if not self.server.registry.can_serve(name):
            raise BadRequest(
                HTTPStatus.NOT_FOUND, "pull model manifest: file does not exist"
            )
        self.server.registry.mark_present(name)
        if data.get("stream", True) is False:
            self._send_json(HTTPStatus.OK, {"status": "success"})
            return
        digest = (
            "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
        )
        lines = [
            {"status": "pulling manifest"},
            {"status": f"pulling {digest[7:19]}", "digest": digest, "total": 22928619},
            {
                "status": f"pulling {digest[7:19]}",
                "digest": digest,
                "total": 22928619,
                "completed": 22928619,
            },
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        body = b"".join(json.dumps(line).encode("utf-8") + b"\n" for line in lines)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _parse_inputs(self, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise BadRequest(
            HTTPStatus.BAD_REQUEST, "input must be a string or a list of strings"
        )

    def _embed(self) -> None:
        data = self._read_json()
        name = self._model_name(data)
        self._require_present(name)
        texts = self._parse_inputs(data.get("input"))
        truncate = data.get("truncate", True)
        if not isinstance(truncate, bool):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "truncate must be a boolean")
        dimensions = data.get("dimensions")
        if dimensions is not None and (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not 1 <= dimensions <= DIMENSION
        ):
            raise BadRequest(
                HTTPStatus.BAD_REQUEST,
                f"dimensions must be an integer from 1 to {DIMENSION}",
            )
        started = time.perf_counter_ns()
        try:
            result = (
                self.server.embedder.embed(texts, truncate=truncate) if texts else None
            )
        except InputTooLongError as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        vectors = result.vectors if result else []
        if dimensions is not None:
            vectors = [shorten(v, dimensions) for v in vectors]
        self._send_json(
            HTTPStatus.OK,
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": self.server.load_duration_ns,
                "prompt_eval_count": result.token_count if result else 0,
            },
        )

    def _embeddings(self) -> None:
        data = self._read_json()
        name = self._model_name(data)
        self._require_present(name)
        prompt = data.get("prompt", "")
        if not isinstance(prompt, str):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "prompt must be a string")
        vectors = self.server.embedder.embed([prompt]).vectors if prompt else [[]]
        self._send_json(HTTPStatus.OK, {"embedding": vectors[0]})
