"""Steady, mixed search load for upgrades and fault drills; prints per-kind status counts.

    python tests/production/loadgen.py --base-url https://localhost:8443 --insecure \
        --keys-file inventories/lab/.secrets/keys.txt --seconds 300

Each key gets its own client thread (as students with their own keys would),
all from this one address (as behind a campus NAT). Searches are a mix, as in
term time: ``repeated`` ones (a few common questions, answered from the cache
once warm) and ``new`` ones (text never asked before, so each needs an
embedding) -- ``--new-share`` sets the mix. ``--health-every`` adds one client
asking ``/health``. The run ends after --seconds, or as soon as --stop-file
exists (so a playbook can run it in the background around an operation).

What counts as what:
- ok: 200; and 429 with JSON + Retry-After (the rate limits working).
- degraded: a declared degradation the operator expects during this phase,
  named with ``--degraded-ok KIND:STATUS`` (e.g. ``new:503`` while the embedder
  is down): it must be JSON with Retry-After. Once ``--recovered-file``
  exists, it is accepted only for ``--recovery-seconds`` more (the service
  must be whole again by then). ``/health`` may answer 200 or 503, as JSON.
- failed: anything else -- a 502, an HTML page, a connection error, a 503
  that was not declared, or one too long after recovery.

A request that dies on a reused keep-alive connection before any byte of an
answer came back is sent again once on a new connection, as browsers and curl
do (the server closed an idle connection as the request was sent, e.g. an
nginx reload); such retries are counted as ``reconnected``, and a retry that
fails again is a failure.

Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPEATED = (
    "library opening hours",
    "how do I reset my university password?",
    "student accommodation application deadline",
    "report a broken heating system in a lecture theatre",
)
# Words for new questions: each new query is three of them and a number, so
# no two are alike and none is in the cache.
WORDS = [
    "library",
    "exam",
    "timetable",
    "eduroam",
    "wifi",
    "printing",
    "laptop",
    "loan",
    "accommodation",
    "fees",
    "scholarship",
    "deadline",
    "extension",
    "module",
    "enrolment",
    "transcript",
    "parking",
    "bicycle",
    "heating",
    "lecture",
    "theatre",
    "laboratory",
    "safety",
    "visa",
    "counselling",
    "sports",
    "graduation",
    "thesis",
    "supervisor",
    "plagiarism",
    "referencing",
    "catering",
    "disability",
    "support",
    "careers",
    "placement",
    "erasmus",
    "password",
    "email",
    "vpn",
    "software",
    "licence",
]
# Transport errors that, on a reused connection and before any answer, mean
# the server closed the idle connection as the request went out.
_CLOSED_BEFORE_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _keys(path: str, limit: int) -> list[str]:
    keys = [
        line.split()[1]
        for line in Path(path).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise SystemExit(f"loadgen: no `ROLE KEY` lines in {path}")
    return keys[:limit] if limit else keys


def _degraded_ok(values: list[str]) -> set[tuple[str, str]]:
    out = set()
    for value in values:
        kind, _, status = value.partition(":")
        if kind not in ("repeated", "new") or not status.isdigit():
            raise SystemExit(
                f"loadgen: --degraded-ok {value!r}: expected KIND:STATUS, KIND repeated or new"
            )
        out.add((kind, status))
    return out


@dataclass
class Tally:
    """Counts per kind and outcome, shared by every client thread."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failed: int = 0
    degraded: int = 0
    reconnected: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, outcome: str, verdict: str, detail: str = "") -> None:
        with self.lock:
            self.counts[kind][outcome] += 1
            if verdict == "failed":
                self.failed += 1
                if len(self.errors) < 20:
                    elapsed = time.monotonic() - self.started
                    self.errors.append(
                        f"{elapsed:7.2f}s {kind} {outcome} {detail[:200]}"
                    )
            elif verdict == "degraded":
                self.degraded += 1

    def reconnect(self) -> None:
        with self.lock:
            self.reconnected += 1


class Recovery:
    """When the --recovered-file appeared (declared degradation ends soon after)."""

    def __init__(self, path: str, grace: float) -> None:
        self.path = Path(path) if path else None
        self.grace = grace
        self.seen_at: float | None = None

    def degradation_allowed(self) -> bool:
        if self.path is None:
            return True
        if self.seen_at is None and self.path.exists():
            self.seen_at = time.monotonic()
        return self.seen_at is None or time.monotonic() - self.seen_at <= self.grace


def _is_json(response: httpx.Response) -> bool:
    if "application/json" not in response.headers.get("content-type", ""):
        return False
    try:
        response.json()
    except ValueError:
        return False
    return True


def verdict(
    kind: str,
    response: httpx.Response,
    degraded_ok: set[tuple[str, str]],
    recovery: Recovery,
) -> str:
    """ok, degraded or failed, by the rules in the module docstring."""
    status = str(response.status_code)
    if not _is_json(response):
        return "failed"
    has_retry_after = bool(response.headers.get("retry-after"))
    if kind == "health":
        if status == "200" or (status == "429" and has_retry_after):
            return "ok"
        return "degraded" if status == "503" else "failed"
    if status == "200":
        return "ok"
    if status == "429":
        return "ok" if has_retry_after else "failed"
    if (
        (kind, status) in degraded_ok
        and has_retry_after
        and recovery.degradation_allowed()
    ):
        return "degraded"
    return "failed"


def _send(
    client: httpx.Client, kind: str, query: str, tally: Tally, reused: bool
) -> httpx.Response:
    def once() -> httpx.Response:
        if kind == "health":
            return client.get("/health")
        return client.post("/api/search", json={"query": query})

    try:
        return once()
    except _CLOSED_BEFORE_ANSWER:
        if not reused:
            raise
        tally.reconnect()
        return once()


def warm_cache(base_url: str, key: str, insecure: bool) -> None:
    """Ask each repeated question until it is answered (and so cached)."""
    with httpx.Client(
        base_url=base_url,
        verify=not insecure,
        timeout=30,
        headers={"Authorization": f"Bearer {key}"},
    ) as c:
        for query in REPEATED:
            for _ in range(20):
                if c.post("/api/search", json={"query": query}).status_code == 200:
                    break
                time.sleep(1)
            else:
                raise SystemExit(f"loadgen: could not warm the cache with {query!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--keys-file", required=True)
    parser.add_argument(
        "--clients", type=int, default=0, help="use the first N keys (default: all)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="upper bound on the run"
    )
    parser.add_argument(
        "--stop-file", default="", help="stop as soon as this file exists"
    )
    parser.add_argument(
        "--json-out", default="", help="also write the counts here as JSON"
    )
    parser.add_argument(
        "--interval", type=float, default=0.25, help="pause per client between searches"
    )
    parser.add_argument(
        "--new-share",
        type=float,
        default=0.5,
        help="share of searches with a never-asked query (0..1; default 0.5)",
    )
    parser.add_argument(
        "--degraded-ok",
        action="append",
        default=[],
        metavar="KIND:STATUS",
        help="a declared degradation accepted in this phase, e.g. new:503 (repeatable)",
    )
    parser.add_argument(
        "--recovered-file",
        default="",
        help="once this file exists, declared degradation ends after --recovery-seconds",
    )
    parser.add_argument("--recovery-seconds", type=float, default=5.0)
    parser.add_argument(
        "--health-every",
        type=float,
        default=0.0,
        help="one more client asks /health this often (seconds; 0: never)",
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="do not warm the cache with the repeated queries",
    )
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    if not 0.0 <= args.new_share <= 1.0:
        raise SystemExit("loadgen: --new-share must be between 0 and 1")
    keys = _keys(args.keys_file, args.clients)
    degraded_ok = _degraded_ok(args.degraded_ok)
    recovery = Recovery(args.recovered_file, args.recovery_seconds)
    stop_file = Path(args.stop_file) if args.stop_file else None
    if not args.no_warm:
        warm_cache(args.base_url, keys[0], args.insecure)
    tally = Tally()
    deadline = tally.started + min(args.seconds, 3600.0)
    stop = threading.Event()
    serial = itertools.count()

    def run(number: int, key: str | None, interval: float) -> None:
        rng = random.Random(number)
        repeated = itertools.cycle(REPEATED[number % len(REPEATED) :] + REPEATED)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(
            base_url=args.base_url,
            verify=not args.insecure,
            timeout=30,
            headers=headers,
        ) as c:
            reused = False
            while not stop.is_set():
                if key is None:
                    kind, query = "health", ""
                elif rng.random() < args.new_share:
                    kind = "new"
                    query = " ".join(rng.sample(WORDS, 3)) + f" {next(serial)}"
                else:
                    kind, query = "repeated", next(repeated)
                try:
                    response = _send(c, kind, query, tally, reused)
                    reused = response.headers.get("connection", "").lower() != "close"
                    tally.add(
                        kind,
                        str(response.status_code),
                        verdict(kind, response, degraded_ok, recovery),
                        response.text,
                    )
                except httpx.HTTPError as exc:
                    reused = False
                    tally.add(kind, type(exc).__name__, "failed", str(exc))
                stop.wait(interval)

    threads = [
        threading.Thread(target=run, args=(n, k, args.interval))
        for n, k in enumerate(keys)
    ]
    if args.health_every > 0:
        threads.append(
            threading.Thread(target=run, args=(len(keys), None, args.health_every))
        )
    for t in threads:
        t.start()
    while time.monotonic() < deadline and not (stop_file and stop_file.exists()):
        recovery.degradation_allowed()  # notes when the recovered file appears
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    counts = {kind: dict(sorted(c.items())) for kind, c in sorted(tally.counts.items())}
    total = sum(sum(c.values()) for c in tally.counts.values())
    searches = {k: c for k, c in tally.counts.items() if k != "health"}
    result = {
        "clients": len(keys),
        "seconds": round(time.monotonic() - tally.started, 1),
        "counts": counts,
        "requests": total,
        "ok": sum(c["200"] for c in searches.values()),
        "rate_limited": sum(c["429"] for c in searches.values()),
        "degraded": tally.degraded,
        "reconnected": tally.reconnected,
        "failed": tally.failed,
        "errors": tally.errors,
    }
    print(
        f"requests: {counts}; degraded (declared): {tally.degraded}; "
        f"reconnected: {tally.reconnected}; failed: {tally.failed}; clients: {len(keys)}"
    )
    for line in tally.errors:
        print(f"  {line}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
