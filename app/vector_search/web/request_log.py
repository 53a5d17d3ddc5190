"""Request ids, one JSON access-log line per request, and request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from vector_search.metrics import Metrics

access_log = logging.getLogger("vector_search.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def install(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def _start() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = (
            request.url_rule.rule if request.url_rule is not None else "unmatched"
        )
        response.headers["X-Request-ID"] = g.get("request_id", "")
        metrics.requests.labels(
            endpoint, request.method, str(response.status_code)
        ).inc()
        metrics.request_seconds.labels(endpoint).observe(elapsed)
        principal = g.get("principal")
        access_log.info(
            "request",
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "endpoint": endpoint,
                "status": response.status_code,
                "role": principal.role.name if principal is not None else None,
                "key_id": principal.key_id if principal is not None else None,
                "duration_ms": round(elapsed * 1000, 2),
                "remote_addr": request.remote_addr,
                "from_cache": g.get("from_cache"),
                "results": g.get("result_count"),
            },
        )
        return response
