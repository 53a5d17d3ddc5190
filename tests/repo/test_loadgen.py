"""The load generator's rules: what is ok, a declared degradation, or a failure;
and its one retry on a reused connection the server closed without answering."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

_spec = importlib.util.spec_from_file_location(
    "loadgen", Path(__file__).resolve().parents[1] / "production" / "loadgen.py"
)
assert _spec and _spec.loader
loadgen = importlib.util.module_from_spec(_spec)
sys.modules["loadgen"] = loadgen  # its dataclasses look their module up
_spec.loader.exec_module(loadgen)

JSON = {"content-type": "application/json"}


def _response(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None):
    return httpx.Response(
        status, content=body, headers=headers if headers is not None else JSON
    )


def test_ok_and_rate_limited() -> None:
    always = loadgen.Recovery("", 5)
    assert loadgen.verdict("new", _response(200), set(), always) == "ok"
    limited = _response(429, headers={**JSON, "retry-after": "1"})
    assert loadgen.verdict("new", limited, set(), always) == "ok"
    # A 429 without Retry-After, or as HTML, is not the limits working as declared.
    assert loadgen.verdict("new", _response(429), set(), always) == "failed"


def test_html_and_502_are_failures_even_when_declared() -> None:
    always = loadgen.Recovery("", 5)
    html = _response(
        503, b"<html>503</html>", {"content-type": "text/html", "retry-after": "5"}
    )
    declared = {("new", "503"), ("new", "502")}
    assert loadgen.verdict("new", html, declared, always) == "failed"
    bad_gateway = _response(502, headers={**JSON, "retry-after": "5"})
    assert loadgen.verdict("repeated", bad_gateway, declared, always) == "failed"


def test_declared_degradation_only_for_its_kind_and_until_recovery(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "recovered"
    recovery = loadgen.Recovery(str(marker), 0.2)
    unavailable = _response(503, headers={**JSON, "retry-after": "5"})
    declared = {("new", "503")}
    assert loadgen.verdict("new", unavailable, declared, recovery) == "degraded"
    assert loadgen.verdict("repeated", unavailable, declared, recovery) == "failed"
    no_retry_after = _response(503)
    assert loadgen.verdict("new", no_retry_after, declared, recovery) == "failed"
    marker.touch()
    assert loadgen.verdict("new", unavailable, declared, recovery) == "degraded"
    time.sleep(0.3)
    assert loadgen.verdict("new", unavailable, declared, recovery) == "failed"


def test_health_may_be_degraded_but_must_be_json() -> None:
    always = loadgen.Recovery("", 5)
    assert loadgen.verdict("health", _response(503), set(), always) == "degraded"
    assert (
        loadgen.verdict("health", _response(502, b"<html/>", {}), set(), always)
        == "failed"
    )


def test_degraded_ok_is_checked() -> None:
    assert loadgen._degraded_ok(["new:503"]) == {("new", "503")}
    with pytest.raises(SystemExit, match="KIND:STATUS"):
        loadgen._degraded_ok(["embedder:503"])


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """Answers the first request of each connection, then reads the next
    request and closes without a word (as nginx closing an idle keep-alive
    connection during a reload). Yields its URL and the requests it answered."""
    listener = socket.create_server(("127.0.0.1", 0))
    answered: list[int] = []
    body = json.dumps({"results": []}).encode()

    def read_request(conn: socket.socket) -> None:
        """One whole request (headers and Content-Length body): a request that
        arrives in two segments must not pass for two requests."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += conn.recv(65536)

    def serve(conn: socket.socket) -> None:
        with conn:
            read_request(conn)
            # counted before the answer leaves: the client may check the count
            # as soon as it has read the answer
            answered.append(1)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            conn.recv(65536)  # the next request on the kept-alive connection

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answered
    listener.close()


def test_reused_connection_closed_before_an_answer_is_sent_again(
    closing_server: tuple[str, list[int]],
) -> None:
    url, answered = closing_server
    tally = loadgen.Tally()
    with httpx.Client(base_url=url) as client:
        first = loadgen._send(client, "new", "q", tally, reused=False)
        second = loadgen._send(client, "new", "q", tally, reused=True)
    assert (first.status_code, second.status_code) == (200, 200)
    assert tally.reconnected == 1
    assert len(answered) == 2


def test_fresh_connection_closed_before_an_answer_is_a_failure() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def close_at_once() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=close_at_once, daemon=True).start()
    tally = loadgen.Tally()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with httpx.Client(base_url=url) as client, pytest.raises(httpx.HTTPError):
        loadgen._send(client, "new", "q", tally, reused=False)
    listener.close()
    assert tally.reconnected == 0
