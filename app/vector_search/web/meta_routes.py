"""GET /metrics and GET /api/openapi.json."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vector_search.web.context import current_services
from vector_search.web.openapi import build_openapi


def create_blueprint() -> Blueprint:
    bp = Blueprint("meta", __name__)

    @bp.get("/metrics")
    def metrics() -> Response:
        registry = current_services().metrics.registry
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @bp.get("/api/openapi.json")
    def openapi() -> Response:
        return jsonify(build_openapi())

    return bp
