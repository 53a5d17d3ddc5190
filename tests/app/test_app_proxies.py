"""The client's address behind several load balancers (issue 14, item 5).

waitress's trusted_proxy names one address: with two load balancers the
clients of the second lost their address and shared one anonymous bucket.
TRUSTED_PROXIES takes addresses and networks; X-Forwarded-For counts only
from them (its rightmost untrusted hop), never from anyone else.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import waitress
from flask.testing import FlaskClient
from vector_search.cli import waitress_options
from vector_search.config import ConfigError, load_settings
from vector_search.keys import generate_key
from vector_search.web.app import create_app
from vector_search.web.proxy import TrustedProxies, resolve_proxies
from vs_services import SettingsFactory, free_port

QUERY = {"query": "library opening hours"}
PROXY_1 = "10.20.0.51"
PROXY_2 = "10.20.1.52"  # inside the trusted network 10.20.1.0/24
PROXIES = f"{PROXY_1}, 10.20.1.0/24"


def via(
    client: FlaskClient, peer: str, forwarded_for: str | None = None, key: str = ""
) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(
        "/api/search", json=QUERY, headers=headers, environ_base={"REMOTE_ADDR": peer}
    ).status_code


def test_clients_behind_either_proxy_keep_their_own_limits(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(TRUSTED_PROXIES=PROXIES, ANONYMOUS_RATE_LIMIT="2")
    # Two clients behind the first proxy, one behind the second: one bucket each.
    for peer, who in ((PROXY_1, "203.0.113.5"), (PROXY_2, "203.0.113.6")):
        assert [via(client, peer, who) for _ in range(3)] == [200, 200, 429]
    assert via(client, PROXY_1, "203.0.113.7") == 200
    # The same client reaches the service through the other proxy: same bucket.
    assert via(client, PROXY_2, "203.0.113.5") == 429
    # Hops the client wrote itself (left of the proxy's own entry) are ignored.
    assert via(client, PROXY_2, "203.0.113.99, 203.0.113.5") == 429
    # Proxies chained in front of each other: the first untrusted hop is the client.
    assert via(client, PROXY_1, f"203.0.113.6, {PROXY_2}") == 429


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(TRUSTED_PROXIES=PROXIES, ANONYMOUS_RATE_LIMIT="2")
    assert [via(client, PROXY_1, "203.0.113.5") for _ in range(3)] == [200, 200, 429]
    # 192.0.2.50 claims to be the blocked client: it is itself, with its own bucket...
    assert via(client, "192.0.2.50", "203.0.113.5") == 200
    # ...and cannot get fresh buckets by inventing addresses.
    assert via(client, "192.0.2.50", "203.0.113.200") == 200
    assert via(client, "192.0.2.50", "203.0.113.201") == 429


def test_the_old_single_setting_still_works(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client(
        TRUSTED_PROXY=PROXY_1, TRUSTED_PROXIES="10.20.1.0/24", ANONYMOUS_RATE_LIMIT="1"
    )
    assert via(client, PROXY_1, "203.0.113.5") == 200
    assert via(client, PROXY_2, "203.0.113.6") == 200
    assert via(client, PROXY_1, "203.0.113.5") == 429


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "-")
    return [
        f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']} {forwarded}".encode()
    ]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        (PROXY_1, {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5 http -"),
        (
            PROXY_1,
            {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"},
            "203.0.113.5 https -",
        ),
        ("192.0.2.50", {"X-Forwarded-For": "203.0.113.5"}, "192.0.2.50 http -"),
        ("192.0.2.50", {"X-Forwarded-Proto": "https"}, "192.0.2.50 http -"),
        (PROXY_1, {"X-Forwarded-For": "garbage"}, f"{PROXY_1} http -"),
        (PROXY_1, {"X-Forwarded-For": "[2001:db8::5]:443"}, "2001:db8::5 http -"),
        (PROXY_1, {"X-Forwarded-For": "203.0.113.5:5555"}, "203.0.113.5 http -"),
        (PROXY_1, {"X-Forwarded-For": f"{PROXY_2}"}, f"{PROXY_2} http -"),
        (PROXY_1, {}, f"{PROXY_1} http -"),
    ],
)
def test_middleware_rewrites_only_for_trusted_peers(
    peer: str, headers: dict[str, str], expected: str
) -> None:
    settings = load_settings(environ={"TRUSTED_PROXIES": PROXIES}, env_file="/dev/null")
    from werkzeug.test import Client

    client = Client(
        TrustedProxies(
            _echo, resolve_proxies(settings.proxies), settings.trusted_proxy_headers
        )
    )
    response = client.get("/", headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert response.get_data(as_text=True) == expected


def test_host_names_are_resolved_at_start() -> None:
    settings = load_settings(
        environ={"TRUSTED_PROXIES": "localhost, 10.0.0.0/8, no-such-host.invalid"},
        env_file="/dev/null",
    )
    assert settings.proxies == ("localhost", "10.0.0.0/8", "no-such-host.invalid")
    networks = {str(n) for n in resolve_proxies(settings.proxies)}
    assert {"127.0.0.1/32", "10.0.0.0/8"} <= networks
    assert all("invalid" not in n for n in networks)  # logged, left out


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("TRUSTED_PROXIES", "10.0.0.1, lb_2!", "IP addresses, CIDR networks"),
        ("TRUSTED_PROXY", "10.0.0.300", "IP addresses, CIDR networks"),
        ("TRUSTED_PROXIES", "10.0.0.0/33", "IP addresses, CIDR networks"),
        ("TRUSTED_PROXY_HEADERS", "x-forwarded-host", "only x-forwarded-for"),
    ],
)
def test_bad_proxy_settings_are_refused(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={name: raw}, env_file="/dev/null")


@pytest.fixture
def served(make_settings: SettingsFactory, corpus_ingested: object) -> Iterator[int]:
    """The app under waitress with serve's options, behind two "load balancers"
    on loopback addresses 127.0.0.2 and 127.0.0.3."""
    settings = make_settings(
        TRUSTED_PROXIES="127.0.0.2,127.0.0.3",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        AUTH_FAILURE_LIMIT="1",
    )
    app = create_app(settings)
    server = waitress.create_server(app, **waitress_options(settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)  # type: ignore[union-attr]
    finally:
        server.close()
        thread.join(5)
        app.extensions["vector_search"].close()


def _request(port: int, source: str, forwarded_for: str | None) -> int:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    headers = {"Authorization": f"Bearer {generate_key()}"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        conn.request("POST", "/api/search", body=b"{}", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_through_waitress_with_two_load_balancers(served: int) -> None:
    """AUTH_FAILURE_LIMIT=1: a second failed key from the same client gets 429,
    which shows which address the service saw."""
    assert _request(served, "127.0.0.2", "203.0.113.5") == 401
    # the same client through the second load balancer: recognised
    assert _request(served, "127.0.0.3", "203.0.113.5") == 429
    # another client through the second load balancer: its own address
    assert _request(served, "127.0.0.3", "203.0.113.6") == 401
    # an untrusted peer forging the first client's address is itself
    assert _request(served, "127.0.0.1", "203.0.113.7") == 401
    assert _request(served, "127.0.0.1", "203.0.113.8") == 429
