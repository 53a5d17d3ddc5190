"""One list of an app host's ports: its own ``vector_search_ports``.

The app's instances, the firewall that opens them to the load balancers,
nginx's upstreams, Prometheus's targets and the playbooks all read the app
host's ``vector_search_ports`` from the inventory. These tests prove that:

- no role or playbook holds a port list of its own (the literal ports live in
  the vector_search role's default and the inventories only);
- every inventory and every Molecule scenario with app hosts sets the list
  where the other hosts' plays can see it (group_vars or host_vars: a role
  default is invisible through ``hostvars``);
- the real templates (firewall rules, nginx upstreams, Prometheus
  configuration), rendered by Ansible for a four-host inventory where app2
  has one more instance, all follow app2's list; and nginx and Prometheus
  refuse an app host without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PORT_LITERAL = re.compile(r"(?<![\d.])51\d\d(?![\d.])")
# The one role default (and its documentation, which must equal it).
PORT_OWNERS = {
    "roles/vector_search/defaults/main.yml",
    "roles/vector_search/meta/argument_specs.yml",
}
REMOVED = ("nginx_app_ports", "prometheus_app_ports")
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or str(
    Path(sys.executable).with_name("ansible-playbook")
)


def _code_files() -> list[Path]:
    files = [ROOT / "site.yml"]
    for top in ("roles", "playbooks"):
        files += [
            p
            for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in (".yml", ".yaml", ".j2", ".py", ".cfg")
        ]
    return sorted(files)


def test_no_role_or_playbook_holds_the_port_list() -> None:
    found = []
    for path in _code_files():
        rel = str(path.relative_to(ROOT))
        if rel in PORT_OWNERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PORT_LITERAL.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], (
        "app ports written outside the vector_search role's default and the inventories "
        "(read hostvars[host].vector_search_ports instead):\n" + "\n".join(found)
    )


def test_the_vector_search_default_is_the_only_role_default() -> None:
    for role in sorted((ROOT / "roles").iterdir()):
        defaults = role / "defaults" / "main.yml"
        if not defaults.exists():
            continue
        data = yaml.safe_load(defaults.read_text()) or {}
        assert not set(REMOVED) & set(data), f"{role.name} defines {REMOVED}"
        if role.name == "vector_search":
            assert data["vector_search_ports"], "vector_search lost its default ports"


def _hosts(node: dict[str, Any], group: str, out: dict[str, set[str]]) -> None:
    """Inventory YAML -> {group: hosts} (children's hosts count for the parent)."""
    for host in (node or {}).get("hosts") or {}:
        out.setdefault(group, set()).add(host)
    for child, sub in ((node or {}).get("children") or {}).items():
        _hosts(sub, child, out)
        out.setdefault(group, set()).update(out.get(child, set()))


def _sets_ports(paths: list[Path]) -> bool:
    for path in paths:
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            if "vector_search_ports" in data:
                return True
    return False


def _var_files(base: Path, name: str) -> list[Path]:
    """group_vars/NAME.yml, group_vars/NAME/*.yml (the same for host_vars)."""
    return [base / f"{name}.yml", base / f"{name}.yaml"] + sorted(
        (base / name).glob("*.y*ml") if (base / name).is_dir() else []
    )


INVENTORIES = sorted(p for p in (ROOT / "inventories").iterdir() if p.is_dir())


@pytest.mark.parametrize("inventory", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_every_inventory_sets_the_app_hosts_ports(inventory: Path) -> None:
    groups: dict[str, set[str]] = {}
    _hosts(yaml.safe_load((inventory / "hosts.yml").read_text())["all"], "all", groups)
    assert groups.get("app"), f"{inventory.name}: no app hosts"
    gv, hv = inventory / "group_vars", inventory / "host_vars"
    for host in sorted(groups["app"]):
        in_groups = [g for g, members in groups.items() if host in members]
        files = [f for g in in_groups for f in _var_files(gv, g)] + _var_files(hv, host)
        assert _sets_ports(files), (
            f"{inventory.name}: app host {host} has no vector_search_ports in group_vars/host_vars"
        )
    for path in inventory.rglob("*.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        assert not set(REMOVED) & set(data), f"{path}: {REMOVED} are no longer read"


SCENARIOS = sorted(p.parent for p in (ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_scenario_with_app_hosts_sets_their_ports(scenario: Path) -> None:
    config = yaml.safe_load((scenario / "molecule.yml").read_text())
    inventory = (config.get("provisioner") or {}).get("inventory") or {}
    group_vars = inventory.get("group_vars") or {}
    host_vars = inventory.get("host_vars") or {}
    linked = scenario / "inventory" / "group_vars"
    for platform in config["platforms"]:
        groups = ["all"] + list(platform.get("groups") or [])
        if "app" not in groups:
            continue
        sets = any("vector_search_ports" in (group_vars.get(g) or {}) for g in groups)
        sets = sets or "vector_search_ports" in (host_vars.get(platform["name"]) or {})
        sets = sets or _sets_ports([f for g in groups for f in _var_files(linked, g)])
        assert sets, (
            f"molecule/{scenario.name}: app host {platform['name']} has no vector_search_ports"
        )
    assert not {k for v in group_vars.values() for k in (v or {})} & set(REMOVED)


# --- the real templates and checks, rendered by Ansible ---------------------

INVENTORY = {
    "all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        },
        "children": {
            "app": {
                "vars": {"vector_search_ports": [5100, 5101]},
                "hosts": {
                    "app1": {"common_private_address": "10.9.0.41"},
                    "app2": {
                        "common_private_address": "10.9.0.42",
                        "vector_search_ports": [5100, 5101, 5102],
                    },
                },
            },
            "loadbalancer": {"hosts": {"lb1": {"common_private_address": "10.9.0.51"}}},
            "monitoring": {"hosts": {"mon1": {"common_private_address": "10.9.0.61"}}},
        },
    }
}

PLAYBOOK = """
- name: Firewall rules of each app host
  hosts: app
  gather_facts: false
  vars_files: ["{root}/roles/common/defaults/main.yml"]
  tasks:
    - name: Check and render
      block:
        - name: Check
          ansible.builtin.include_role:
            name: common
            tasks_from: app_ports
        - name: Render
          ansible.builtin.copy:
            content: "{{{{ lookup('ansible.builtin.template', '{root}/roles/common/templates/firewall-rules.j2') }}}}"
            dest: "{out}/firewall-{{{{ inventory_hostname }}}}.json"
            mode: "0644"
      rescue:
        - name: Record the refusal
          ansible.builtin.copy:
            content: "{{{{ ansible_failed_result.msg }}}}"
            dest: "{out}/refused-common-{{{{ inventory_hostname }}}}.txt"
            mode: "0644"

- name: nginx's upstreams
  hosts: loadbalancer
  gather_facts: false
  tasks:
    - name: Check and compute
      block:
        - name: Check and compute
          ansible.builtin.include_role:
            name: nginx
            tasks_from: upstream_servers
        - name: Write
          ansible.builtin.copy:
            content: "{{{{ _nginx_upstreams | to_json }}}}"
            dest: "{out}/upstreams.json"
            mode: "0644"
      rescue:
        - name: Record the refusal
          ansible.builtin.copy:
            content: "{{{{ ansible_failed_result.msg }}}}"
            dest: "{out}/refused-nginx.txt"
            mode: "0644"

- name: Prometheus's configuration
  hosts: monitoring
  gather_facts: false
  vars_files: ["{root}/roles/prometheus/defaults/main.yml", "{root}/roles/prometheus/vars/main.yml"]
  tasks:
    - name: Check and render
      block:
        - name: Check
          ansible.builtin.include_role:
            name: prometheus
            tasks_from: preflight
          vars:
            prometheus_alertmanager_enabled: false
        - name: Render
          ansible.builtin.copy:
            content: "{{{{ lookup('ansible.builtin.template', '{root}/roles/prometheus/templates/prometheus.yml.j2') }}}}"
            dest: "{out}/prometheus.yml"
            mode: "0644"
      rescue:
        - name: Record the refusal
          ansible.builtin.copy:
            content: "{{{{ ansible_failed_result.msg }}}}"
            dest: "{out}/refused-prometheus.txt"
            mode: "0644"
"""


def _run(tmp_path: Path, inventory: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(root=ROOT, out=tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_FILTER_PLUGINS=str(ROOT / "filter_plugins"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "hosts.yml", "play.yml"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_firewall_upstreams_and_targets_follow_the_app_hosts_list(
    tmp_path: Path,
) -> None:
    result = _run(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("refused-*")) == []

    # Firewall: each app host opens exactly its own ports to lb1 and mon1.
    for host, ports in (("app1", [5100, 5101]), ("app2", [5100, 5101, 5102])):
        rules = json.loads((tmp_path / f"firewall-{host}.json").read_text())
        app = [r for r in rules if r["comment"] == "app"]
        assert app == [
            {
                "comment": "app",
                "proto": "tcp",
                "ports": ports,
                "v4": ["10.9.0.51", "10.9.0.61"],
                "v6": [],
            }
        ], rules

    # nginx: one server per port of each host's list.
    upstreams = json.loads((tmp_path / "upstreams.json").read_text())
    assert [u["address"] for u in upstreams] == [
        "10.9.0.41:5100",
        "10.9.0.41:5101",
        "10.9.0.42:5100",
        "10.9.0.42:5101",
        "10.9.0.42:5102",
    ]

    # Prometheus: one target per port of each host's list.
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "vector_search")
    assert [t["labels"]["instance"] for t in job["static_configs"]] == [
        "app1:5100",
        "app1:5101",
        "app2:5100",
        "app2:5101",
        "app2:5102",
    ]
    assert job["static_configs"][-1]["targets"] == ["10.9.0.42:5102"]


def test_an_app_host_without_its_list_and_the_old_variables_are_refused(
    tmp_path: Path,
) -> None:
    inventory = json.loads(json.dumps(INVENTORY))
    del inventory["all"]["children"]["app"]["vars"]  # app2 keeps its host_vars list
    inventory["all"]["vars"]["nginx_app_ports"] = [5100, 5101]
    inventory["all"]["vars"]["prometheus_app_ports"] = [5100, 5101]
    result = _run(tmp_path, inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    refused = {p.name: p.read_text() for p in tmp_path.glob("refused-*")}
    # Each consumer refuses app1, names it and says where to set the list.
    assert sorted(refused) == [
        "refused-common-app1.txt",
        "refused-nginx.txt",
        "refused-prometheus.txt",
    ]
    for name, message in refused.items():
        assert "vector_search_ports: [PORT, ...] in group_vars/app.yml" in message, (
            name,
            message,
        )
    assert refused["refused-common-app1.txt"].startswith("app1 is an app host")
    nginx, prometheus = refused["refused-nginx.txt"], refused["refused-prometheus.txt"]
    assert (
        "Not set or empty for: app1." in nginx
        and "Not set or empty for: app1." in prometheus
    )
    # The variables that used to hold a second list are refused, not ignored.
    assert (
        "nginx_app_ports is no longer read; delete it (set for: lb1, app1, app2)"
        in nginx
    )
    assert (
        "prometheus_app_ports is no longer read; delete it (it is set here)"
        in prometheus
    )
    assert (tmp_path / "firewall-app2.json").exists()
    assert not (tmp_path / "upstreams.json").exists()
    assert not (tmp_path / "prometheus.yml").exists()
