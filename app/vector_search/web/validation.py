"""Validation of search requests: unknown fields rejected, numbers range-checked."""

from __future__ import annotations

import re
from typing import Any

from flask import Request

from vector_search.search import Filters, QueryConfig, SearchRequest
from vector_search.web.errors import ApiError

# The request's defaults have one owner: the dataclass (validation and the
# OpenAPI document read them from here).
DEFAULTS = QueryConfig()

QUERY_MIN, QUERY_MAX = 3, 1000
MAX_RESULTS_LIMIT = 1000
TOP_FIELDS = {"query", "filters", "config"}
FILTER_FIELDS = {"department", "campus", "min_priority", "max_clearance"}
CONFIG_FIELDS = {
    "similarity_threshold",
    "max_results",
    "similarity_weight",
    "priority_weight",
    "popularity_weight",
    "department_weight",
    "preferred_department",
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", message, field=field)


def read_json_body(request: Request) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "Content-Type must be application/json"
        )
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "malformed_json", "the request body is not valid JSON")
    if not isinstance(data, dict):
        raise ApiError(
            400, "validation_error", "the request body must be a JSON object"
        )
    return data


def _reject_unknown(data: dict[str, Any], allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _invalid(f"{prefix}{unknown[0]}", f"unknown field {prefix}{unknown[0]}")


def _number(
    data: dict[str, Any], name: str, lo: float, hi: float, default: float
) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"config.{name}", f"config.{name} must be a number")
    if not lo <= value <= hi:
        raise _invalid(f"config.{name}", f"config.{name} must be between {lo} and {hi}")
    return float(value)


def _integer(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, f"{field} must be an integer")
    if not lo <= value <= hi:
        raise _invalid(field, f"{field} must be between {lo} and {hi}")
    return value


def _strings(value: Any, field: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > 20:
        raise _invalid(field, f"{field} must be a string or a list of 1 to 20 strings")
    out = []
    for item in items:
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > 200
            or _CONTROL.search(item)
        ):
            raise _invalid(
                field, f"{field} entries must be non-empty strings (200 chars at most)"
            )
        out.append(item.strip())
    return tuple(out)


def normalise_query(text: str) -> str:
    return " ".join(text.split())


def parse_search(data: dict[str, Any], default_threshold: float) -> SearchRequest:
    _reject_unknown(data, TOP_FIELDS, "")
    query = data.get("query")
    if query is None:
        raise _invalid("query", "query is required")
    if not isinstance(query, str):
        raise _invalid("query", "query must be a string")
    query = normalise_query(query)
    if not QUERY_MIN <= len(query) <= QUERY_MAX:
        raise _invalid(
            "query", f"query must be {QUERY_MIN} to {QUERY_MAX} characters long"
        )
    if _CONTROL.search(query):
        raise _invalid("query", "query must not contain control characters")

    raw_filters = data.get("filters")
    raw_filters = {} if raw_filters is None else raw_filters
    if not isinstance(raw_filters, dict):
        raise _invalid("filters", "filters must be an object")
    _reject_unknown(raw_filters, FILTER_FIELDS, "filters.")
    filters = Filters(
        departments=_strings(raw_filters["department"], "filters.department")
        if "department" in raw_filters
        else (),
        campuses=_strings(raw_filters["campus"], "filters.campus")
        if "campus" in raw_filters
        else (),
        min_priority=_integer(raw_filters["min_priority"], "filters.min_priority", 1, 5)
        if "min_priority" in raw_filters
        else None,
        max_clearance=_integer(
            raw_filters["max_clearance"], "filters.max_clearance", 1, 5
        )
        if "max_clearance" in raw_filters
        else None,
    )

    raw_config = data.get("config")
    raw_config = {} if raw_config is None else raw_config
    if not isinstance(raw_config, dict):
        raise _invalid("config", "config must be an object")
    _reject_unknown(raw_config, CONFIG_FIELDS, "config.")
    preferred = raw_config.get("preferred_department")
    if preferred is not None and (
        not isinstance(preferred, str)
        or not 0 < len(preferred) <= 200
        or _CONTROL.search(preferred)
    ):
        raise _invalid(
            "config.preferred_department",
            "config.preferred_department must be a string",
        )
    config = QueryConfig(
        similarity_threshold=_number(
            raw_config, "similarity_threshold", -1.0, 1.0, default_threshold
        ),
        max_results=_integer(
            raw_config.get("max_results", DEFAULTS.max_results),
            "config.max_results",
            1,
            MAX_RESULTS_LIMIT,
        ),
        similarity_weight=_number(
            raw_config, "similarity_weight", 0.0, 1.0, DEFAULTS.similarity_weight
        ),
        priority_weight=_number(
            raw_config, "priority_weight", 0.0, 1.0, DEFAULTS.priority_weight
        ),
        popularity_weight=_number(
            raw_config, "popularity_weight", 0.0, 1.0, DEFAULTS.popularity_weight
        ),
        department_weight=_number(
            raw_config, "department_weight", 0.0, 1.0, DEFAULTS.department_weight
        ),
        preferred_department=preferred,
    )
    return SearchRequest(query=query, filters=filters, config=config)
