"""Steady search load for upgrade rehearsals, bounded in time; prints status counts.

    python tests/production/loadgen.py --base-url https://localhost:8443 --insecure \
        --keys-file inventories/lab/.secrets/keys.txt --seconds 300

Each key gets its own client thread (as students with their own keys would).
Exit status 1 when any request failed (a status other than 200 or 429, or a
connection error): a rolling upgrade must not drop requests; 429s are counted
separately because they are the rate limits working.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
from pathlib import Path

import httpx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--keys-file", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--interval", type=float, default=0.25, help="pause per client between searches"
    )
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    keys = [
        line.split()[1]
        for line in Path(args.keys_file).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    deadline = time.monotonic() + min(args.seconds, 3600.0)
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def client(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(
            base_url=args.base_url,
            verify=not args.insecure,
            timeout=30,
            headers=headers,
        ) as c:
            while time.monotonic() < deadline:
                try:
                    outcome = str(
                        c.post(
                            "/api/search", json={"query": "library opening hours"}
                        ).status_code
                    )
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    counts[outcome] += 1
                time.sleep(args.interval)

    threads = [threading.Thread(target=client, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = sum(n for outcome, n in counts.items() if outcome not in ("200", "429"))
    print(f"requests: {dict(sorted(counts.items()))}; failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
