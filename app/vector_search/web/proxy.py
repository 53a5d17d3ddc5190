"""The client's address behind one or more trusted reverse proxies (WSGI middleware).

waitress's own ``trusted_proxy`` takes a single address, so with two load
balancers the clients of the second lost their address (and shared its rate
limits). This middleware trusts a list of addresses and CIDR networks
(TRUSTED_PROXIES): only when the peer (REMOTE_ADDR) is one of them are
X-Forwarded-For / X-Forwarded-Proto used, and the client is the rightmost
X-Forwarded-For hop that is not itself a trusted proxy (hops to its left were
written by the client and prove nothing). From any other peer the headers are
removed, so a forged X-Forwarded-For never reaches the application.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_FORWARDED_ENVIRON = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_BY",
    "HTTP_FORWARDED",
)


def resolve_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks of the configured proxies; a host name becomes each of its
    addresses, looked up once now. A name that does not resolve is logged and
    left out: its clients then share its address, the service still starts."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            log.error(
                "trusted proxy name does not resolve; set its address in TRUSTED_PROXIES",
                extra={"proxy": entry, "error": str(exc)},
            )
            continue
        for info in infos:
            network = ipaddress.ip_network(str(info[4][0]).split("%", 1)[0])
            if network not in out:
                out.append(network)
    return tuple(out)


def parse_address(value: str) -> Address | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:567``, ``[::1]:80``, ``::1``."""
    value = value.strip().strip('"')
    if not value:
        return None
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Rewrites REMOTE_ADDR and wsgi.url_scheme from trusted proxies' headers."""

    def __init__(
        self, app: WsgiApp, networks: Iterable[Network], headers: Iterable[str]
    ) -> None:
        self.app = app
        self.networks = tuple(networks)
        self.headers = {h.lower() for h in headers}

    def trusted(self, address: Address | None) -> bool:
        return address is not None and any(
            address.version == n.version and address in n for n in self.networks
        )

    def client_address(self, peer: Address, forwarded_for: str) -> Address:
        """The rightmost hop that is not a trusted proxy (or the leftmost valid one
        when every hop is trusted); an unparsable hop ends the walk."""
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            address = parse_address(hop)
            if address is None:
                break
            client = address
            if not self.trusted(address):
                break
        return client

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        peer = parse_address(str(environ.get("REMOTE_ADDR", "")))
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "")
        forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO", "")
        for key in _FORWARDED_ENVIRON:
            environ.pop(key, None)
        if peer is not None and self.trusted(peer):
            if "x-forwarded-for" in self.headers and forwarded_for:
                environ["REMOTE_ADDR"] = str(self.client_address(peer, forwarded_for))
            if "x-forwarded-proto" in self.headers and forwarded_proto:
                proto = forwarded_proto.split(",")[-1].strip().lower()
                if proto in ("http", "https"):
                    environ["wsgi.url_scheme"] = proto
        return self.app(environ, start_response)
