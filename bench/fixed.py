"""Section 6: the app's fixed cost per request (issue 15).

One client, one request at a time, through ``vector-search serve`` (waitress,
as in production: the HTTP parsing and the WSGI dispatch are part of the fixed
cost) with a real API key, PostgreSQL and Redis. Three servers of the same
code, the paths interleaved request by request so that the machine's load
falls on all of them alike:

- ``full``: API_KEY_CACHE_SECONDS=0, the key looked up in PostgreSQL on every request;
- ``default``: the shipped settings (the key lookup cached for API_KEY_CACHE_SECONDS);
- ``no limiter``: as ``default`` with RATE_LIMIT_ENABLED=false.

Each server answers the same query repeated (a cached response, a Redis hit)
and a new query each time (response cache missed; the query's embedding is
in Redis as a warm service has it, so the uncached time is the search, not
the embedder). Where a cached request's time goes comes from the differences
between the servers (key lookup, rate limiter) and from the parts timed alone
in this process with the app's own objects (the lookup's transaction, the
response cache's two GETs, the JSON encoding), plus the Redis commands a
cached request sends (INFO commandstats around a burst).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import statistics
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from vector_search.cache import create_client
from vector_search.config import load_settings
from vector_search.db import run_in_transaction
from vector_search.keys import Peppers, authenticate_key, create_key
from vector_search.runtime import Services

from bench import lab
from bench.labside import percentile
from bench.perf import ALL_RESULTS_THRESHOLD, AppServer, Corpus
from bench.services import Stack

SERVERS: dict[str, dict[str, str]] = {
    "full": {"API_KEY_CACHE_SECONDS": "0"},
    "default": {},
    "no limiter": {"RATE_LIMIT_ENABLED": "false"},
}
# an academic key may search 100 times a minute: each key serves at most this many
_PER_KEY = 60


@dataclass
class LatencyRow:
    server: str
    kind: str  # "cached" or "uncached"
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies, 95)


@dataclass
class PartRow:
    part: str
    p50_ms: float
    how: str


@dataclass
class FixedRun:
    chunks: int
    requests: int
    keys: int
    key_cache_seconds: str
    rows: list[LatencyRow]
    parts: list[PartRow]
    redis_commands: dict[str, float]  # per cached request, by command
    key_cache_hits: dict[str, float]  # /metrics of the default server, when it has them
    response_bytes: int

    def row(self, server: str, kind: str) -> LatencyRow | None:
        return next(
            (r for r in self.rows if r.server == server and r.kind == kind), None
        )

    def speedup(self) -> float | None:
        """uncached p50 / cached p50 with the shipped settings."""
        cached, uncached = (
            self.row("default", "cached"),
            self.row("default", "uncached"),
        )
        if not cached or not uncached or not cached.latencies or not uncached.latencies:
            return None
        return uncached.p50_ms / cached.p50_ms


def _post(conn: http.client.HTTPConnection, query: str, key: str) -> tuple[int, bytes]:
    body = json.dumps(
        {"query": query, "config": {"similarity_threshold": ALL_RESULTS_THRESHOLD}}
    )
    conn.request(
        "POST",
        "/api/search",
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    response = conn.getresponse()
    return response.status, response.read()


def _timed(fn: Callable[[], Any], n: int) -> float:
    """p50 in ms of ``fn`` over ``n`` calls."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return percentile(times, 50)  # ms


def _metric(url: str, name: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(
        rf"^{re.escape(name)}\{{result=\"(\w+)\"\}} ([0-9.e+]+)$", text, re.MULTILINE
    ):
        out[m[1]] = float(m[2])
    return out


def _commandstats(client: redis.Redis) -> dict[str, int]:
    info: Any = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def run(
    st: Stack,
    corpus: Corpus,
    queries: list[str],
    vectors: list[list[float]],
    overrides: dict[str, str],
    requests: int,
    seed: Callable[[dict[str, str], list[str], list[list[float]]], None],
) -> FixedRun:
    """``requests`` per path (at most the distinct queries less five kept to warm up)."""
    n = min(requests, len(queries) - 5)
    measured, warm = queries[:n], queries[-5:]
    cached_query = warm[0]
    dbname = corpus.settings.database_name
    # per server: each key once, the warm-up queries, 2n measured, 20 counting Redis commands
    count = max(2, math.ceil((2 * n + len(warm) + 20) / (_PER_KEY - 1)))
    with st.owner(dbname) as conn:
        keys = [create_key(conn, lab.ROLE, f"bench-fixed-{i}")[1] for i in range(count)]
    envs = {
        name: st.env(dbname, **{**overrides, **extra, "THREADS": "1"})
        for name, extra in SERVERS.items()
    }
    servers: dict[str, AppServer] = {}
    conns: dict[str, http.client.HTTPConnection] = {}
    rows = {
        (name, kind): LatencyRow(name, kind, [])
        for name in SERVERS
        for kind in ("cached", "uncached")
    }
    sample_body = b""
    try:
        for name, env in envs.items():
            seed(env, queries, vectors)
            servers[name] = AppServer(st, env, threads=1)
            conns[name] = http.client.HTTPConnection(
                f"127.0.0.1:{servers[name].port}", timeout=120
            )
            # every key checked once, the uncached path warm, the cached response stored
            warm_up = [(cached_query, k) for k in keys] + [
                (q, keys[i % count]) for i, q in enumerate(warm[1:])
            ]
            for q, key in warm_up:
                status, sample_body = _post(conns[name], q, key)
                if status != 200:
                    raise RuntimeError(
                        f"warm-up {name}: {status} {sample_body[:200]!r}"
                    )
            _, sample_body = _post(conns[name], cached_query, keys[0])
        order = list(SERVERS)
        for i in range(n):
            key = keys[i % len(keys)]
            rotation = order[i % len(order) :] + order[: i % len(order)]
            for name in rotation:
                for kind, query in (
                    ("cached", cached_query),
                    ("uncached", measured[i]),
                ):
                    started = time.perf_counter()
                    try:
                        status, payload = _post(conns[name], query, key)
                    except (OSError, http.client.HTTPException) as exc:
                        rows[name, kind].errors[type(exc).__name__] += 1
                        conns[name].close()
                        continue
                    elapsed = time.perf_counter() - started
                    from_cache = b'"from_cache":true' in payload
                    if status != 200:
                        rows[name, kind].errors[str(status)] += 1
                    elif from_cache != (kind == "cached"):
                        rows[name, kind].errors[f"from_cache={from_cache}"] += 1
                    else:
                        rows[name, kind].latencies.append(elapsed)
        hits = _metric(servers["default"].url, "vector_search_api_key_cache_total")
        commands = _redis_commands(st, conns["full"], cached_query, keys)
        parts = _parts(envs["full"], keys[0], json.loads(sample_body))
    finally:
        for conn in conns.values():
            conn.close()
        for server in servers.values():
            server.stop()
    return FixedRun(
        corpus.chunks,
        n,
        count,
        str(
            getattr(
                load_settings(environ=envs["default"]), "api_key_cache_seconds", "n/a"
            )
        ),
        list(rows.values()),
        parts,
        commands,
        hits,
        len(sample_body),
    )


def _redis_commands(
    st: Stack, conn: http.client.HTTPConnection, query: str, keys: list[str]
) -> dict[str, float]:
    """Redis commands per cached request (server ``full``), INFO commandstats
    around 20 of them (no other client uses this Redis meanwhile)."""
    client = redis.Redis.from_url(st.redis.url)
    try:
        burst = 20
        before = _commandstats(client)
        for i in range(burst):
            _post(conn, query, keys[i % len(keys)])
        after = _commandstats(client)
    finally:
        client.close()
    diff = {k: (v - before.get(k, 0)) / burst for k, v in after.items()}
    diff["info"] = diff.get("info", 0) - 1 / burst  # our own INFO
    return {k: round(v, 2) for k, v in sorted(diff.items()) if v > 0.01}


def _parts(env: dict[str, str], key: str, body: dict[str, Any]) -> list[PartRow]:
    """The pieces of a cached request timed alone, with the app's own objects."""
    settings = load_settings(environ=env)
    services = Services.build(settings)
    peppers = Peppers.from_settings(settings)
    try:
        services.pool.wait(30)
        generation = services.cache.generation() or 0
        services.cache.set_search(generation, "bench-fixed-part", body)
        client = create_client(settings)

        def lookup() -> Any:
            return run_in_transaction(
                services.pool,
                lambda conn: authenticate_key(conn, key, peppers),
                settings.database_statement_timeout_ms,
                settings.database_retry_seconds,
            )

        def cache_read() -> Any:
            gen = services.cache.generation()
            return services.cache.get_search(gen or 0, "bench-fixed-part")

        n = 200
        found = lookup()
        if not found.ok:
            raise RuntimeError(f"the bench key does not authenticate: {found.status}")
        # interleaved in blocks so that a burst of load falls on every part
        timings: dict[str, list[float]] = {
            "lookup": [],
            "cache": [],
            "json": [],
            "ping": [],
        }
        for _ in range(10):
            timings["lookup"].append(_timed(lookup, n // 10))
            timings["cache"].append(_timed(cache_read, n // 10))
            timings["json"].append(
                _timed(lambda: json.dumps(body, separators=(",", ":")), n // 10)
            )
            timings["ping"].append(_timed(client.ping, n // 10))
        client.close()
    finally:
        services.close()
    med = {k: statistics.median(v) for k, v in timings.items()}
    return [
        PartRow(
            "API key lookup (api_key_lookup in a transaction, from the pool)",
            med["lookup"],
            "timed alone: BEGIN, statement_timeout, SELECT api_key_lookup(...), COMMIT",
        ),
        PartRow(
            "response cache read (generation GET + search GET + JSON decode)",
            med["cache"],
            "timed alone, this response",
        ),
        PartRow("JSON encode of the response", med["json"], "timed alone, json.dumps"),
        PartRow("one Redis round trip (PING)", med["ping"], "timed alone, for scale"),
    ]
