#!/usr/bin/env python3
"""A tiny stand-in for the search app, for the nginx role's Molecule scenario only.

Answers /health and /api/* with JSON naming its instance (host:port) and
echoing the proxy headers it received; /metrics answers like the real app,
so the scenario can prove nginx does not expose it. While the file
/run/standin-dependency-down exists, searches answer as the real app does
when a shared dependency (the embedder) is down: 503 JSON with Retry-After.
"""

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
INSTANCE = f"{socket.gethostname()}:{PORT}"
DEPENDENCY_DOWN = "/run/standin-dependency-down"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _answer(self, status, payload, content_type="application/json", headers=()):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _seen(self):
        return {
            "instance": INSTANCE,
            "path": self.path,
            "request_id": self.headers.get("X-Request-ID", ""),
            "forwarded_for": self.headers.get("X-Forwarded-For", ""),
            "forwarded_proto": self.headers.get("X-Forwarded-Proto", ""),
            "authorization": bool(self.headers.get("Authorization")),
        }

    def do_GET(self):
        if self.path.startswith("/health"):
            self._answer(200, {"status": "ok", **self._seen()})
        elif self.path == "/metrics":
            self._answer(200, b"vector_search_requests_total 1\n", "text/plain")
        elif self.path.startswith("/api/"):
            self._answer(200, self._seen())
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/api/search") and os.path.exists(DEPENDENCY_DOWN):
            self._answer(
                503,
                {"error": "service_unavailable", **self._seen()},
                headers=[("Retry-After", "5")],
            )
        elif self.path.startswith("/api/"):
            self._answer(200, {"results": [], **self._seen()})
        else:
            self._answer(404, {"error": "not found"})


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
