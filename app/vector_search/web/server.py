"""waitress with the app's body limit, and JSON for the errors waitress answers itself.

MAX_BODY_BYTES is one limit for both layers: waitress refuses a body of
``max_request_body_size`` bytes or more before buffering it (so it is set one
above the limit), Flask's MAX_CONTENT_LENGTH refuses one above the limit (a
body that arrives without Content-Length). waitress's own error responses
(413, malformed requests) are plain text by default; here they are the app's
JSON error, so a client gets the same 413 whichever layer refused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

log = logging.getLogger("vector_search.server")

_CODES = {
    400: "bad_request",
    413: "payload_too_large",
    431: "request_header_fields_too_large",
    501: "not_implemented",
}


def body_limit_options(max_body_bytes: int) -> dict[str, int]:
    """waitress options for a body limit of ``max_body_bytes`` (larger bodies: 413)."""
    return {"max_request_body_size": max_body_bytes + 1}


class JsonErrorTask(ErrorTask):
    """waitress's ErrorTask with the app's JSON error body."""

    def execute(self) -> None:
        error = self.request.error
        code = int(error.code)
        if code == 413:
            limit = int(self.channel.adj.max_request_body_size) - 1
            message = f"the request body is larger than {limit} bytes"
        else:
            message = f"{error.reason}: {error.body}"
        body = json.dumps(
            {"error": _CODES.get(code, "http_error"), "message": message}
        ).encode()
        self.status = f"{code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def _servers(server: Any) -> list[BaseWSGIServer]:
    if isinstance(server, BaseWSGIServer):
        return [server]
    # MultiSocketServer (a host name with several addresses): its map holds the servers
    return [
        s for s in getattr(server, "map", {}).values() if isinstance(s, BaseWSGIServer)
    ]


def serve(app: Any, **options: Any) -> None:
    """Like ``waitress.serve``, with JsonErrorChannel on every listening socket."""
    server = create_server(app, **options)
    for one in _servers(server):
        one.channel_class = JsonErrorChannel
    server.print_listen("waitress listening on http://{}:{}")
    server.run()
