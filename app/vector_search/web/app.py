"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from vector_search.config import Settings
from vector_search.runtime import Services
from vector_search.web import (
    admin_routes,
    health,
    meta_routes,
    request_log,
    search_routes,
)
from vector_search.web.auth import authenticate
from vector_search.web.context import install
from vector_search.web.errors import register_error_handlers
from vector_search.web.proxy import TrustedProxies, resolve_proxies
from vector_search.web.ratelimit import create_limiter


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    services = services or Services.build(settings)
    app = Flask("vector_search", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # the client's address behind every trusted load balancer (waitress trusts only one)
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, resolve_proxies(settings.proxies), settings.trusted_proxy_headers
    )
    install(app, services)
    request_log.install(app, services.metrics)
    app.before_request(lambda: authenticate(services))
    limiter = create_limiter(settings)
    limiter.init_app(app)
    app.extensions["vector_search_limiter"] = limiter
    register_error_handlers(app)
    app.register_blueprint(health.create_blueprint(limiter, settings))
    app.register_blueprint(search_routes.create_blueprint(limiter))
    app.register_blueprint(admin_routes.create_blueprint(limiter))
    app.register_blueprint(meta_routes.create_blueprint())
    return app
