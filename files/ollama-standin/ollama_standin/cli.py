"""Command line of the Ollama stand-in: ``serve``, ``pull``, ``list``, ``--version``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from ollama_standin import __version__

DEFAULT_HOST = "127.0.0.1:11434"


def _split_host(value: str) -> tuple[str, int]:
    value = value.strip()
    for prefix in ("http://", "https://"):
        value = value.removeprefix(prefix)
    host, _, port = value.rpartition(":")
    if not host:
        return value or "127.0.0.1", 11434
    return host.strip("[]"), int(port)


def _env_models() -> list[str]:
    raw = os.environ.get("OLLAMA_STANDIN_MODELS", "all-minilm")
    return [m.strip() for m in raw.split(",") if m.strip()]


def _reported_version() -> str:
    return os.environ.get("OLLAMA_STANDIN_REPORTED_VERSION", f"{__version__}-standin")


def _serve(args: argparse.Namespace) -> int:
    from ollama_standin.model import MiniLMEmbedder
    from ollama_standin.registry import ModelRegistry
    from ollama_standin.server import StandinServer

    env_host, env_port = _split_host(os.environ.get("OLLAMA_HOST", DEFAULT_HOST))
    host = args.host or env_host
    port = args.port if args.port is not None else env_port
    models = args.model or _env_models()
    models_dir = Path(
        args.models_dir
        or os.environ.get("OLLAMA_MODELS")
        or Path.home() / ".ollama" / "models"
    )
    preload = args.preload or os.environ.get("OLLAMA_STANDIN_PRELOAD", "") in {
        "1",
        "true",
    }
    started = time.perf_counter_ns()
    embedder = MiniLMEmbedder(context_length=args.context_length, threads=args.threads)
    registry = ModelRegistry(servable=models, models_dir=models_dir)
    if preload:
        for name in models:
            registry.mark_present(name)
    server = StandinServer((host, port), embedder, registry, _reported_version())
    server.load_duration_ns = time.perf_counter_ns() - started

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("ollama_standin").info(
        "ollama-standin (NOT Ollama) listening on %s:%d, models %s", host, port, models
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _client_url(path: str) -> str:
    host, port = _split_host(os.environ.get("OLLAMA_HOST", DEFAULT_HOST))
    host = "127.0.0.1" if host in {"0.0.0.0", ""} else host
    return f"http://{host}:{port}{path}"


def _pull(args: argparse.Namespace) -> int:
    body = json.dumps({"model": args.name, "stream": False}).encode()
    request = urllib.request.Request(
        _client_url("/api/pull"),
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.loads(response.read())["status"])
    except urllib.error.HTTPError as exc:
        print(f"Error: {json.loads(exc.read()).get('error')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(
            f"Error: could not connect to the stand-in server: {exc.reason}",
            file=sys.stderr,
        )
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(_client_url("/api/tags"), timeout=10) as response:
            models = json.loads(response.read())["models"]
    except urllib.error.URLError as exc:
        print(
            f"Error: could not connect to the stand-in server: {exc.reason}",
            file=sys.stderr,
        )
        return 1
    print("NAME\tSIZE\tMODIFIED")
    for model in models:
        print(f"{model['name']}\t{model['size']}\t{model['modified_at']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ollama-standin",
        description="A stand-in for the Ollama embedding API (not Ollama).",
    )
    parser.add_argument(
        "-v",
        "--version",
        action="version",
        version=f"ollama-standin version {__version__} (a stand-in, not Ollama); "
        f"reports {_reported_version()}",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument(
        "--host", default=None, help="bind address (default from OLLAMA_HOST)"
    )
    serve.add_argument(
        "--port", type=int, default=None, help="port (default from OLLAMA_HOST)"
    )
    serve.add_argument(
        "--model", action="append", help="a model name to answer to (repeatable)"
    )
    serve.add_argument(
        "--models-dir", default=None, help="where pulled names are recorded"
    )
    serve.add_argument(
        "--preload", action="store_true", help="treat every model as pulled"
    )
    serve.add_argument(
        "--context-length",
        type=int,
        default=int(os.environ.get("OLLAMA_STANDIN_CONTEXT_LENGTH", "256")),
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OLLAMA_STANDIN_THREADS", "0")),
    )
    serve.set_defaults(func=_serve)
    pull = sub.add_parser("pull", help="ask a running server to pull a model")
    pull.add_argument("name")
    pull.set_defaults(func=_pull)
    lst = sub.add_parser("list", help="list pulled models of a running server")
    lst.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
