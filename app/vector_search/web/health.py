"""/health (deep, cached briefly), /health/live and /health/ready.

Anyone may ask for the status (and the release version); the detail (each
component's result: schema version, embedding column and model, dependency
error text, latencies) goes only to callers whose address is in
HEALTH_DETAIL_NETWORKS (monitoring, load balancers, loopback) or who send an
admin API key. Callers from elsewhere are rate-limited per address
(HEALTH_RATE_LIMIT); the detail networks never are, so monitoring, nginx,
systemd and rolling upgrades are unaffected. A request that a load balancer
forwarded (X-Real-IP) counts as coming from the client it names.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_limiter import Limiter

from vector_search import __version__
from vector_search.access import KEY_ROLES
from vector_search.config import Settings
from vector_search.db import transaction
from vector_search.embedding_columns import searchable_column
from vector_search.errors import DependencyUnavailable, EmbedderError
from vector_search.keys import Peppers, lookup_key, well_formed
from vector_search.migrations import LATEST_VERSION
from vector_search.runtime import Services
from vector_search.web.context import current_services

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        result: dict[str, Any] = {"healthy": True}
        if detail:
            result.update(detail)
    except (DependencyUnavailable, EmbedderError) as exc:
        result = {"healthy": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        result = {"healthy": False, "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database(services: Services) -> dict[str, Any]:
    """Schema version, and a filled, indexed vector column of this instance's
    model (during a reindex an instance may already be switched to the new one)."""
    settings = services.settings
    with transaction(services.pool, 2000) as conn:
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ).fetchone()
        version = int(row[0]) if row else 0
        if version < LATEST_VERSION:
            raise DependencyUnavailable(
                f"schema version {version} < {LATEST_VERSION}: run migrate"
            )
        column, detail = searchable_column(
            conn, settings.embedding_model, settings.embedding_dimension
        )
    if column is None:
        raise DependencyUnavailable(detail)
    return {"schema_version": version, "embedding_column": column}


def check_cache(services: Services) -> dict[str, Any]:
    if not services.cache.ping():
        raise DependencyUnavailable("redis unreachable")
    return {}


def check_embedder(services: Services) -> dict[str, Any]:
    services.embedder.embed(["health check"])
    return {"model": services.embedder.model}


class HealthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[float, dict[str, Any]] | None = None

    def get(self, ttl: float) -> dict[str, Any] | None:
        with self._lock:
            if self._value and time.monotonic() - self._value[0] < ttl:
                return self._value[1]
        return None

    def put(self, value: dict[str, Any]) -> None:
        with self._lock:
            self._value = (time.monotonic(), value)


def parse_networks(settings: Settings) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in settings.health_detail_networks)


def address_in(address: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether a client address (IPv4-mapped IPv6 counts as IPv4) is in one of the networks."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def _admin_key(services: Services) -> bool:
    """A valid admin API key in the Authorization header. Anything else (no key,
    another role, a wrong key, the database down) just means no detail: a health
    check answers, it does not authenticate."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not well_formed(token):
        return False  # no database lookup for what cannot be a key
    settings = services.settings
    try:
        with transaction(services.pool, settings.database_statement_timeout_ms) as conn:
            found = lookup_key(conn, token, Peppers.from_settings(settings))
    except Exception:  # noqa: BLE001 - the status is still answered
        return False
    return found is not None and KEY_ROLES[found[1]].can_admin


def create_blueprint(limiter: Limiter, settings: Settings) -> Blueprint:
    bp = Blueprint("health", __name__)
    cache = HealthCache()
    networks = parse_networks(settings)

    def trusted() -> bool:
        # X-Real-IP is set by the load balancers (nginx: $remote_addr) and is
        # not one of the headers waitress rewrites: if a request forwarded for
        # an outside client arrives from a detail address (a load balancer
        # missing from TRUSTED_PROXY), the client's address still decides.
        real_ip = request.headers.get("X-Real-IP")
        return address_in(request.remote_addr, networks) and (
            real_ip is None or address_in(real_ip.strip(), networks)
        )

    def detail_allowed(services: Services) -> bool:
        return trusted() or _admin_key(services)

    health_limit = limiter.shared_limit(
        f"{settings.health_rate_limit}/minute",
        scope="health",
        key_func=lambda: f"ip:{request.remote_addr or 'unknown'}",
        exempt_when=lambda: settings.health_rate_limit == 0 or trusted(),
    )

    @bp.get("/health")
    @health_limit
    def health() -> tuple[Response, int]:
        services = current_services()
        body = cache.get(services.settings.health_cache_ttl)
        cached = body is not None
        if body is None:
            components = {
                "database": _timed(lambda: check_database(services)),
                "cache": _timed(lambda: check_cache(services)),
                "embedder": _timed(lambda: check_embedder(services)),
            }
            for name, result in components.items():
                services.metrics.dependency_up.labels(name).set(
                    1 if result["healthy"] else 0
                )
            healthy = all(c["healthy"] for c in components.values())
            body = {
                "status": "healthy" if healthy else "degraded",
                "version": __version__,
                "timestamp": time.time(),
                "components": components,
            }
            cache.put(body)
        status = 200 if body["status"] == "healthy" else 503
        if detail_allowed(services):
            return jsonify({**body, "cached": cached}), status
        public = {k: body[k] for k in ("status", "version", "timestamp")}
        return jsonify(public), status

    @bp.get("/health/live")
    @health_limit
    def live() -> Response:
        return jsonify({"status": "alive", "version": __version__})

    @bp.get("/health/ready")
    @health_limit
    def ready() -> tuple[Response, int]:
        services = current_services()
        result = _timed(lambda: check_database(services))
        status = 200 if result["healthy"] else 503
        body: dict[str, Any] = {
            "status": "ready" if status == 200 else "not_ready",
            "version": __version__,
        }
        if detail_allowed(services):
            body["database"] = result
        return jsonify(body), status

    return bp
