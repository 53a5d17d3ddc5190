"""Bearer API keys -> Principal (role, clearance, limits); anonymous when allowed."""

from __future__ import annotations

from flask import g, request

from vector_search.db import transaction
from vector_search.keys import lookup_key
from vector_search.roles import KEY_ROLES, Principal, anonymous_role
from vector_search.services import Services
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


def authenticate(services: Services) -> None:
    """before_request hook: sets g.principal for every non-public endpoint."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return
    settings = services.settings
    header = request.headers.get("Authorization", "")
    if not header:
        if not settings.anonymous_enabled:
            raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
        g.principal = Principal(anonymous_role(settings), None, None)
        return
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise _unauthorized("the Authorization header must be 'Bearer <api key>'")
    with transaction(services.pool, settings.database_statement_timeout_ms) as conn:
        found = lookup_key(conn, token, settings.peppers)
    if found is None:
        raise _unauthorized("invalid or revoked API key")
    key_id, role_name, owner = found
    g.principal = Principal(KEY_ROLES[role_name], key_id, owner)


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
