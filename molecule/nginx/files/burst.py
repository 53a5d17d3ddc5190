#!/usr/bin/env python3
"""Send N search requests as fast as one keep-alive TLS connection allows.

burst.py HOST N [--distinct-keys]
  ->  JSON {"statuses": {status: count}, "instances": [...], "answered_by": [...],
            "not_json": count, "without_retry_after": count (of 429/503 answers)}
"answered_by" names the instances whose own answers (any status) came back.
"""

import http.client
import json
import ssl
import sys
from collections import Counter

host, count = sys.argv[1], int(sys.argv[2])
distinct = "--distinct-keys" in sys.argv
context = ssl._create_unverified_context()  # the scenario's self-signed certificate
statuses, instances, answered_by = Counter(), set(), set()
not_json = without_retry_after = 0
conn = http.client.HTTPSConnection(host, 443, context=context, timeout=10)
for i in range(count):
    headers = {"Content-Type": "application/json"}
    if distinct:
        headers["Authorization"] = f"Bearer scenario-key-{i}"
    try:
        conn.request(
            "POST",
            "/api/search",
            body=json.dumps({"query": "eduroam"}),
            headers=headers,
        )
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        statuses[f"error:{type(exc).__name__}"] += 1
        conn.close()
        conn = http.client.HTTPSConnection(host, 443, context=context, timeout=10)
        continue
    statuses[str(response.status)] += 1
    try:
        payload = json.loads(body)
    except ValueError:
        not_json += 1
        payload = {}
    if "application/json" not in (response.getheader("Content-Type") or ""):
        not_json += 1
    if response.status in (429, 503) and not response.getheader("Retry-After"):
        without_retry_after += 1
    if "instance" in payload:
        answered_by.add(payload["instance"])
        if response.status == 200:
            instances.add(payload["instance"])
print(
    json.dumps(
        {
            "statuses": dict(statuses),
            "instances": sorted(instances),
            "answered_by": sorted(answered_by),
            "not_json": not_json,
            "without_retry_after": without_retry_after,
        }
    )
)
