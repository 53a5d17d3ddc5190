"""Steady search load for upgrade rehearsals; prints (and optionally writes) status counts.

    python tests/production/loadgen.py --base-url https://localhost:8443 --insecure \
        --keys-file inventories/lab/.secrets/keys.txt --seconds 300

Each key gets its own client thread (as students with their own keys would),
all from this one address (as behind a campus NAT). The run ends after
--seconds, or as soon as --stop-file exists (so a playbook can run it in the
background around a rolling upgrade and stop it afterwards).

Exit status 1 when any request failed (a status other than 200 or 429, or a
connection error): a rolling upgrade must not drop requests; 429s are counted
separately because they are the rate limits working.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import threading
import time
from pathlib import Path

import httpx

QUERIES = (
    "library opening hours",
    "how do I reset my university password?",
    "student accommodation application deadline",
    "report a broken heating system in a lecture theatre",
)


def _keys(path: str, limit: int) -> list[str]:
    keys = [
        line.split()[1]
        for line in Path(path).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise SystemExit(f"loadgen: no `ROLE KEY` lines in {path}")
    return keys[:limit] if limit else keys


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
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    keys = _keys(args.keys_file, args.clients)
    stop_file = Path(args.stop_file) if args.stop_file else None
    started = time.monotonic()
    deadline = started + min(args.seconds, 3600.0)
    stop = threading.Event()
    counts: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def client(number: int, key: str) -> None:
        queries = itertools.cycle(QUERIES[number % len(QUERIES) :] + QUERIES)
        with httpx.Client(
            base_url=args.base_url,
            verify=not args.insecure,
            timeout=30,
            headers={"Authorization": f"Bearer {key}"},
        ) as c:
            while not stop.is_set():
                try:
                    response = c.post("/api/search", json={"query": next(queries)})
                    outcome = str(response.status_code)
                    detail = response.text[:200]
                except httpx.HTTPError as exc:
                    outcome, detail = type(exc).__name__, str(exc)[:200]
                with lock:
                    counts[outcome] += 1
                    if outcome not in ("200", "429") and len(errors) < 20:
                        errors.append(
                            f"{time.monotonic() - started:7.2f}s {outcome} {detail}"
                        )
                stop.wait(args.interval)

    threads = [threading.Thread(target=client, args=(n, k)) for n, k in enumerate(keys)]
    for t in threads:
        t.start()
    while time.monotonic() < deadline and not (stop_file and stop_file.exists()):
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    failed = sum(n for outcome, n in counts.items() if outcome not in ("200", "429"))
    result = {
        "clients": len(keys),
        "seconds": round(time.monotonic() - started, 1),
        "counts": dict(sorted(counts.items())),
        "ok": counts["200"],
        "rate_limited": counts["429"],
        "failed": failed,
        "errors": errors,
    }
    print(f"requests: {result['counts']}; failed: {failed}; clients: {len(keys)}")
    for line in errors:
        print(f"  {line}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
