"""Production test suite: runs against a deployed service, never in plain `pytest tests`.

    pytest tests/production --base-url https://search.example.ac.uk \
        --keys-file keys.txt [--ca-file ca.pem | --insecure]

keys.txt holds one API key per line as `ROLE KEY` (blank lines and # comments
ignored); the concurrency test needs at least --clients keys (default 100).
Without --base-url every test here is skipped, so the repository's own test
run does not need a deployment.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("production", "production test suite")
    group.addoption(
        "--base-url", default="", help="URL of the deployment (load balancer)"
    )
    group.addoption(
        "--http-url",
        default="",
        help="plain-HTTP URL expected to redirect (default: base URL on port 80)",
    )
    group.addoption("--keys-file", default="", help="file of `ROLE KEY` lines")
    group.addoption(
        "--ca-file", default="", help="CA bundle that signed the server certificate"
    )
    group.addoption(
        "--insecure",
        action="store_true",
        help="do not verify the certificate (self-signed lab)",
    )
    group.addoption(
        "--clients", type=int, default=100, help="concurrent clients in the load test"
    )
    group.addoption(
        "--requests-per-client", type=int, default=3, help="searches each client sends"
    )


@dataclass(frozen=True)
class Target:
    base_url: str
    http_url: str
    verify: ssl.SSLContext | bool
    keys: dict[str, list[str]]
    clients: int
    requests_per_client: int

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, verify=self.verify, timeout=30.0, **kwargs
        )

    def all_keys(self) -> list[str]:
        return [k for keys in self.keys.values() for k in keys]


def _read_keys(path: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    if not path:
        return keys
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise pytest.UsageError(
                f"{path}:{number}: expected `ROLE KEY`, got {line!r}"
            )
        keys.setdefault(parts[0], []).append(parts[1])
    return keys


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    base_url = request.config.getoption("--base-url").rstrip("/")
    if not base_url:
        pytest.skip("production suite: pass --base-url to run it against a deployment")
    ca_file = request.config.getoption("--ca-file")
    verify: ssl.SSLContext | bool
    if request.config.getoption("--insecure"):
        verify = False
    elif ca_file:
        verify = ssl.create_default_context(cafile=ca_file)
    else:
        verify = True
    parts = urlsplit(base_url)
    http_url = (
        request.config.getoption("--http-url").rstrip("/") or f"http://{parts.hostname}"
    )
    return Target(
        base_url=base_url,
        http_url=http_url,
        verify=verify,
        keys=_read_keys(request.config.getoption("--keys-file")),
        clients=request.config.getoption("--clients"),
        requests_per_client=request.config.getoption("--requests-per-client"),
    )
