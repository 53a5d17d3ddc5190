"""The search request's defaults have one owner (search.QueryConfig): the
parser and the OpenAPI document say the same."""

from __future__ import annotations

from dataclasses import fields, replace

from vector_search.search import QueryConfig
from vector_search.web.openapi import build_openapi
from vector_search.web.validation import parse_search


def test_a_bare_request_gets_the_dataclass_defaults() -> None:
    parsed = parse_search({"query": "eduroam"}, 0.35)
    assert parsed.config == replace(QueryConfig(), similarity_threshold=0.35)


def test_openapi_defaults_are_the_dataclass_defaults() -> None:
    document = build_openapi()
    schemas = document["components"]["schemas"]
    config = next(
        s["properties"]["config"]["properties"]
        for s in schemas.values()
        if "config" in s.get("properties", {})
    )
    defaults = QueryConfig()
    documented = {
        name: spec["default"] for name, spec in config.items() if "default" in spec
    }
    assert documented, "the OpenAPI document lists no defaults"
    for field in fields(QueryConfig):
        if field.name in documented:
            assert documented[field.name] == getattr(defaults, field.name), field.name
