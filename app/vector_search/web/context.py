"""Where the running app keeps its services (pool, cache, embedder, metrics)."""

from __future__ import annotations

from flask import Flask, current_app

from vector_search.runtime import Services

_EXTENSION = "vector_search"


def install(app: Flask, services: Services) -> None:
    app.extensions[_EXTENSION] = services


def current_services() -> Services:
    """The services of the app handling the current request."""
    services: Services = current_app.extensions[_EXTENSION]
    return services
