"""Bearer API keys -> Principal (role, clearance, limits); anonymous when allowed.

Authentication runs before the rate limiter (which needs the principal), so it
limits its own failures: a token that cannot be a key is refused without a
database lookup, and a client address with AUTH_FAILURE_LIMIT failures in
AUTH_FAILURE_WINDOW gets 429 before any lookup (vector_search.auth_failures).
A key found active is remembered for API_KEY_CACHE_SECONDS
(vector_search.key_cache): revocation reaches this process within that time.
"""

from __future__ import annotations

from flask import g, request

from vector_search.access import KEY_ROLES, Principal, anonymous_role
from vector_search.db import run_in_transaction
from vector_search.keys import Peppers, authenticate_key, well_formed
from vector_search.runtime import Services
from vector_search.web.errors import ApiError

PUBLIC_ENDPOINTS = {
    "health.health",
    "health.live",
    "health.ready",
    "meta.metrics",
    "meta.openapi",
}


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"}
    )


_MESSAGES = {
    "malformed": "the Authorization header must be 'Bearer <api key>' with a key "
    "as issued (vs_ and 43 characters)",
    "unknown": "invalid or revoked API key",
    "revoked": "invalid or revoked API key",
    "expired": "expired: ask for a new key",
}


def _failed(services: Services, reason: str) -> ApiError:
    services.metrics.auth_failures.labels(reason=reason).inc()
    if reason != "missing":
        services.auth_failures.record(request.remote_addr)
    return _unauthorized(_MESSAGES[reason])


def authenticate(services: Services) -> None:
    """before_request hook: sets g.principal for every non-public endpoint."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return
    settings = services.settings
    header = request.headers.get("Authorization", "")
    if not header:
        if not settings.anonymous_enabled:
            services.metrics.auth_failures.labels(reason="missing").inc()
            raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
        g.principal = Principal(anonymous_role(settings), None, None)
        return
    wait = services.auth_failures.blocked_for(request.remote_addr)
    if wait:
        services.metrics.auth_blocked.inc()
        raise ApiError(
            429,
            "rate_limited",
            "too many failed authentications from this address; retry after "
            f"{wait} s with a valid key",
            headers={"Retry-After": str(wait)},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not well_formed(token):
        raise _failed(services, "malformed")
    found = services.key_cache.authenticate(
        token,
        settings.api_key_pepper,
        lambda: run_in_transaction(
            services.pool,
            lambda conn: authenticate_key(conn, token, Peppers.from_settings(settings)),
            settings.database_statement_timeout_ms,
            settings.database_retry_seconds,
        ),
    )
    if not found.ok:
        raise _failed(services, found.status)
    assert found.key_id is not None and found.role is not None
    g.principal = Principal(KEY_ROLES[found.role], found.key_id, found.owner)


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:  # pragma: no cover - authenticate always runs first
        raise _unauthorized("not authenticated")
    return principal


def require_key() -> Principal:
    principal = current_principal()
    if principal.is_anonymous:
        raise _unauthorized("this endpoint needs an API key")
    return principal


def require_admin() -> Principal:
    principal = require_key()
    if not principal.role.can_admin:
        raise ApiError(403, "forbidden", "this endpoint is for the admin role only")
    return principal
