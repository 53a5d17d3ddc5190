"""Row (c): the same searches through nginx + app on the lab (``make lab``).

The lab's database gets the same synthetic corpus as the harness's own
database, streamed from it (binary COPY) into ``bench/labside.py load`` run on
``vslab-app1`` with the app's own Python and settings; ``labside.py drive``
measures row (a) there too (psycopg from the app host through PgBouncer), so
the lab's rows have a baseline on the lab's own database. API keys: the lab's
nginx and app limit searches per key (5/s and the role's per minute), so every
client gets keys of its own, made once with ``vector-search keys create`` on the
lab and kept in ``bench-keys.txt`` next to the lab's ``keys.txt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import labside
from bench.labside import Drive

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URL = "https://localhost:8443"
DEFAULT_KEYS = REPO / "inventories" / "lab" / ".secrets" / "keys.txt"
CONTAINER = "vslab-app1"
ROLE = "academic"  # clearance 4: sees every synthetic chunk (levels 1-3)
REMOTE = "/var/tmp/bench-labside.py"
# the vector-search wrapper's environment (env file, owner password), running
# the release's python instead of its CLI
PYTHON = 'eval "$(sed "s#/venv/bin/vector-search#/venv/bin/python#" /usr/local/bin/vector-search)"'
SKIP = "row (c) skipped: run `make lab` first"


class LabError(RuntimeError):
    pass


@dataclass
class Lab:
    base_url: str = DEFAULT_URL
    keys_file: Path = DEFAULT_KEYS
    insecure: bool = True
    container: str = CONTAINER

    @property
    def bench_keys_file(self) -> Path:
        return self.keys_file.with_name("bench-keys.txt")

    def unavailable(self) -> str | None:
        """Why the lab cannot be measured, or None."""
        if not self.keys_file.exists():
            return f"{SKIP} ({self.keys_file} not found)"
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", self.container],
            capture_output=True,
            text=True,
            check=False,
        )
        if state.stdout.strip() != "true":
            return f"{SKIP} (container {self.container} is not running)"
        try:
            import ssl

            context = ssl._create_unverified_context() if self.insecure else None
            with urllib.request.urlopen(
                self.base_url.rstrip("/") + "/health/live", timeout=10, context=context
            ) as r:
                if r.status != 200:
                    return f"{SKIP} ({self.base_url}/health/live: {r.status})"
        except OSError as exc:
            return f"{SKIP} ({self.base_url} not reachable: {exc})"
        return None

    # -- bench/labside.py on the lab's app host ---------------------------------------
    def _labside(self, *args: str, stdin: Any = None, timeout: float = 1800) -> Any:
        cmd = ["docker", "exec", "-i", self.container, "sh", "-c", PYTHON, "labside"]
        result = subprocess.run(
            [*cmd, REMOTE, *args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise LabError(
                f"labside.py {' '.join(args)} on {self.container}: {result.stderr.decode()[-2000:]}"
            )
        return json.loads(result.stdout)

    def push(self) -> None:
        subprocess.run(
            ["docker", "cp", str(Path(labside.__file__)), f"{self.container}:{REMOTE}"],
            check=True,
            capture_output=True,
        )

    def info(self) -> dict[str, Any]:
        return dict(self._labside("info"))

    def load(self, local: psycopg.Connection[Any]) -> dict[str, Any]:
        """Stream the synthetic corpus of ``local`` (the harness's database
        of this size) into the lab's database."""
        cmd = ["docker", "exec", "-i", self.container, "sh", "-c", PYTHON, "labside"]
        with subprocess.Popen(
            [*cmd, REMOTE, "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                with local.cursor().copy(labside.EXPORT_SQL) as copy:
                    for data in copy:
                        proc.stdin.write(data)
            finally:
                proc.stdin.close()
            out = proc.stdout.read()
            err = proc.stderr.read() if proc.stderr else b""
            if proc.wait() != 0:
                raise LabError(f"labside.py load: {err.decode()[-2000:]}")
        return dict(json.loads(out))

    def drop(self) -> dict[str, Any]:
        return dict(self._labside("drop"))

    def drive(
        self,
        queries: list[str],
        vectors: list[list[float]],
        clearance: int,
        max_results: int,
        concurrency: int,
        seconds: float,
    ) -> Drive:
        job = {
            "queries": queries,
            "vectors": vectors,
            "clearance": clearance,
            "max_results": max_results,
            "concurrency": concurrency,
            "seconds": seconds,
        }
        return Drive.from_dict(
            self._labside(
                "drive", stdin=json.dumps(job).encode(), timeout=seconds + 300
            )
        )

    # -- API keys ----------------------------------------------------------------------
    def keys(self, count: int, fresh: bool = False) -> list[str]:
        """``count`` keys of ROLE for the benchmark's clients, made on the lab
        with the app's CLI when bench-keys.txt holds fewer (or ``fresh``: the
        lab was rebuilt and rejects them)."""
        path = self.bench_keys_file
        have = (
            []
            if fresh or not path.exists()
            else [
                line.split()[1]
                for line in path.read_text().splitlines()
                if line.split()[:1] == [ROLE]
            ]
        )
        if len(have) < count:
            made = subprocess.run(
                [
                    "docker",
                    "exec",
                    self.container,
                    "vector-search",
                    "keys",
                    "create",
                    "--json",
                    "--role",
                    ROLE,
                    "--owner",
                    "bench-client",
                    "--count",
                    str(count - len(have)),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if made.returncode != 0:
                raise LabError(f"vector-search keys create: {made.stderr[-2000:]}")
            have += [
                json.loads(line)["key"]
                for line in made.stdout.splitlines()
                if line.strip()
            ]
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{ROLE} {k}\n" for k in have))
        return have[:count]
