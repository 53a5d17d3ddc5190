#!/usr/bin/env python3
"""Send N search requests as fast as one keep-alive TLS connection allows.

burst.py HOST N [--distinct-keys]  ->  JSON {"status counts": ..., "instances": [...]}
"""

import http.client
import json
import ssl
import sys
from collections import Counter

host, count = sys.argv[1], int(sys.argv[2])
distinct = "--distinct-keys" in sys.argv
context = ssl._create_unverified_context()  # the scenario's self-signed certificate
statuses, instances = Counter(), set()
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
    if response.status == 200:
        instances.add(json.loads(body)["instance"])
print(json.dumps({"statuses": dict(statuses), "instances": sorted(instances)}))
