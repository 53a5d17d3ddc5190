"""The Grafana dashboard in files/grafana/dashboards/ (provisioned by the
grafana role, which cannot be installed in the test containers here).

Checks the JSON's structure, that it uses the provisioned data source, that
every app metric it queries exists in app/vector_search/metrics.py, that it
covers what the monitoring issue asks for, and that every query parses as
PromQL (`promtool check rules` on the queries wrapped as recording rules).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "files" / "grafana" / "dashboards").glob("*.json"))
METRICS_PY = ROOT / "app" / "vector_search" / "metrics.py"
GRAFANA_DEFAULTS = ROOT / "roles" / "grafana" / "defaults" / "main.yml"
# Grafana's variables, replaced by a duration so that promtool can parse.
GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)")


def app_metrics() -> set[str]:
    names = set(re.findall(r'"(vector_search_[a-z_]+)"', METRICS_PY.read_text()))
    assert names, "no metric names found in app/vector_search/metrics.py"
    return names


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


@pytest.fixture(params=DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def dashboard(request: pytest.FixtureRequest) -> dict:
    return json.loads(request.param.read_text())


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS, "no dashboard JSON in files/grafana/dashboards/"


def test_structure(dashboard: dict) -> None:
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{p['title']} overflows the grid"
        if p["type"] != "row":
            assert p.get("targets"), f"{p['title']} has no query"
            assert all(t.get("expr") for t in p["targets"]), p["title"]


def test_uses_the_provisioned_datasource(dashboard: dict) -> None:
    uid = yaml.safe_load(GRAFANA_DEFAULTS.read_text())["grafana_datasource_uid"]
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid, p["title"]


def test_app_metrics_exist(dashboard: dict) -> None:
    known = app_metrics()
    for expr in exprs(dashboard):
        for name in re.findall(r"\bvector_search_[a-z_]+", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in known or base in known, f"{name} is not a metric of the app"


def test_covers_what_operators_need(dashboard: dict) -> None:
    text = "\n".join(exprs(dashboard))
    wanted = {
        "request rate": "vector_search_http_requests_total",
        "errors": 'status=~"5.."',
        "latency percentiles": "vector_search_http_request_duration_seconds_bucket",
        "cache hit ratio": 'vector_search_cache_requests_total{result="hit"}',
        "embed latency": "vector_search_embed_duration_seconds_bucket",
        "app pool": "vector_search_db_pool_waiting",
        "database": "pg_stat_activity_count",
        "pgbouncer": "pgbouncer_pools_client_waiting_connections",
        "redis": "redis_memory_used_bytes",
        "host cpu": "node_cpu_seconds_total",
        "host memory": "node_memory_MemAvailable_bytes",
        "host disk": "node_filesystem_avail_bytes",
    }
    missing = [what for what, needle in wanted.items() if needle not in text]
    assert not missing, f"dashboard lacks: {missing}"
    assert "histogram_quantile(0.95" in text and "histogram_quantile(0.99" in text


def test_every_query_is_valid_promql(dashboard: dict, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool not found: install Debian's `promtool` (trixie) or `prometheus` "
            "(bookworm) package, e.g. with `make deps`.",
            pytrace=False,
        )
    rules = [
        {"record": f"dashboard:query{i}", "expr": GRAFANA_VARS.sub("5m", e)}
        for i, e in enumerate(exprs(dashboard))
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _render(template: str, variables: dict) -> dict:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    path = ROOT / "roles" / "grafana" / "templates" / template
    return yaml.safe_load(env.from_string(path.read_text()).render(**variables))


def test_provisioning_files_render() -> None:
    """The grafana role's provisioning templates give valid provisioning YAML
    that points the dashboards at the data source they use."""
    defaults = yaml.safe_load(GRAFANA_DEFAULTS.read_text())
    variables = {
        "ansible_managed": "Ansible managed",
        "grafana_datasource_uid": defaults["grafana_datasource_uid"],
        "grafana_prometheus_url": "http://10.0.0.5:9090",
        "grafana_scrape_interval": "15s",
        "grafana_dashboards_folder": defaults["grafana_dashboards_folder"],
    }
    datasources = _render("datasource.yml.j2", variables)["datasources"]
    assert datasources[0]["uid"] == defaults["grafana_datasource_uid"]
    assert datasources[0]["type"] == "prometheus"
    assert datasources[0]["url"] == "http://10.0.0.5:9090"
    provider = _render("dashboards.yml.j2", variables)["providers"][0]
    assert provider["folder"] == defaults["grafana_dashboards_folder"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards/")
