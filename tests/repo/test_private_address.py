"""One definition of a host's private address: ``HOST | private_address(hostvars)``.

filter_plugins/private_address.py is the only place that knows the rule (the
inventory's ``common_private_address``, else the address of the host's default
IPv4 route from its facts, else an error naming the host and what to set).
These tests prove the rule on plain data, prove it again through Ansible's own
``hostvars`` (a templated override, facts gathered by ``setup`` for another
host, a host with neither), and keep the rule in one place: no role, playbook,
Molecule scenario or site.yml may write the old inline expression again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "filter_plugins" / "private_address.py"
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or str(
    Path(sys.executable).with_name("ansible-playbook")
)


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


plugin = _load(PLUGIN, "private_address_filter")
private_address = plugin.private_address
private_address_missing = plugin.private_address_missing

ROUTE = {"address": "192.0.2.10", "interface": "eth0", "network": "192.0.2.0"}
HOSTVARS = {
    "set": {"common_private_address": "10.9.0.11", "ansible_default_ipv4": ROUTE},
    "set_v6": {"common_private_address": "fd00::11"},
    "facts": {"ansible_default_ipv4": ROUTE},
    "facts_only_namespaced": {"ansible_facts": {"default_ipv4": ROUTE}},
    "no_route": {"ansible_default_ipv4": {}, "ansible_facts": {"default_ipv4": {}}},
    "nothing": {"inventory_hostname": "nothing"},
    "empty": {"common_private_address": "", "ansible_default_ipv4": ROUTE},
}


# --- the rule, on plain data -------------------------------------------------


def test_the_inventory_override_wins_over_the_facts() -> None:
    assert private_address("set", HOSTVARS) == "10.9.0.11"
    assert private_address("set_v6", HOSTVARS) == "fd00::11"


def test_without_an_override_the_default_route_address() -> None:
    assert private_address("facts", HOSTVARS) == "192.0.2.10"
    # Facts not injected as variables (INJECT_FACTS_AS_VARS=False) count too.
    assert private_address("facts_only_namespaced", HOSTVARS) == "192.0.2.10"


@pytest.mark.parametrize("host", ["nothing", "no_route"])
def test_no_override_and_no_facts_is_an_error_naming_the_host_and_the_fix(
    host: str,
) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        private_address(host, HOSTVARS)
    message = str(caught.value)
    assert message.startswith(f"No private address known for {host}:"), message
    assert f"common_private_address: ADDRESS for {host}" in message
    assert f"host_vars/{host}.yml" in message
    assert f"delegate_to: {host}" in message  # or gather its facts


def test_an_empty_override_is_an_error_not_an_empty_address() -> None:
    with pytest.raises(
        AnsibleFilterError, match=r"^empty has an empty common_private_address"
    ):
        private_address("empty", HOSTVARS)


def test_a_host_outside_the_inventory_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^db9 is not in the inventory"):
        private_address("db9", HOSTVARS)


def test_missing_lists_each_host_without_an_address_once_in_order() -> None:
    hosts = ["set", "nothing", "facts", "empty", "db9", "nothing", "no_route"]
    assert private_address_missing(hosts, HOSTVARS) == [
        "nothing",
        "empty",
        "db9",
        "no_route",
    ]
    assert private_address_missing([], HOSTVARS) == []


# --- the rule, through Ansible's hostvars ---------------------------------------

PLAYBOOK = """
- name: Addresses through the filter
  hosts: override
  gather_facts: false
  tasks:
    - name: Gather the facts of the host without an override, as roles do
      ansible.builtin.setup:
        gather_subset: [network]
      delegate_to: "{{{{ item }}}}"
      delegate_facts: true
      loop: "{{{{ ['override', 'facts', 'nothing'] | private_address_missing(hostvars) | reject('eq', 'nothing') }}}}"

    - name: Record the addresses
      ansible.builtin.copy:
        content: >-
          {{{{ {{'override': inventory_hostname | private_address(hostvars),
                'facts': 'facts' | private_address(hostvars),
                'facts_route': hostvars['facts'].ansible_default_ipv4.address | default(none),
                'missing': groups['all'] | private_address_missing(hostvars)}} | to_json }}}}
        dest: "{out}/addresses.json"
        mode: "0644"

    - name: A host with neither stops the run
      block:
        - name: Ask for its address
          ansible.builtin.debug:
            msg: "{{{{ 'nothing' | private_address(hostvars) }}}}"
      rescue:
        - name: Record the error
          ansible.builtin.copy:
            content: "{{{{ ansible_failed_result.msg }}}}"
            dest: "{out}/refused.txt"
            mode: "0644"
"""


def test_the_filter_reads_real_hostvars(tmp_path: Path) -> None:
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }
    inventory = {
        "all": {
            "vars": local,
            "hosts": {
                # A templated override is rendered in its host's context.
                "override": {"common_private_address": "{{ '10.9.0.' ~ (40 + 1) }}"},
                "facts": {},
                "nothing": {},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(out=tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_FILTER_PLUGINS=str(ROOT / "filter_plugins"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_GATHERING="explicit",
    )
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "hosts.yml", "play.yml"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    found = json.loads((tmp_path / "addresses.json").read_text())
    assert found["override"] == "10.9.0.41"
    assert found["missing"] == ["nothing"]
    refused = (tmp_path / "refused.txt").read_text()
    assert "No private address known for nothing:" in refused, refused
    assert "common_private_address: ADDRESS for nothing" in refused, refused
    if found["facts_route"] is None:
        pytest.skip("this machine has no default IPv4 route to read from the facts")
    assert found["facts"] == found["facts_route"]


# --- one owner ------------------------------------------------------------------

# The inline forms the filter replaced: reading the override or the facts
# directly, each caller with its own fallback ('', the host's name, ...).
OLD_FORMS = {
    "common_private_address | default(...)": re.compile(
        r"common_private_address\s*\|\s*default\b"
    ),
    "hostvars[...].common_private_address": re.compile(
        r"\]\s*\.\s*common_private_address\b|\[\s*['\"]common_private_address['\"]\s*\]"
    ),
    "attribute='common_private_address'": re.compile(
        r"attribute\s*=\s*['\"]common_private_address"
    ),
    "{{ common_private_address }}": re.compile(
        r"\{\{-?\s*common_private_address\s*-?\}\}"
    ),
}
# Reading a host's address from its facts is the filter's job in what deploys;
# Molecule's checks may read the facts (their independent expectation).
FACT_FORMS = {
    "ansible_default_ipv4": re.compile(r"ansible_default_ipv4"),
    "ansible_all_ipv4_addresses": re.compile(r"ansible_all_ipv4_addresses"),
}
SUFFIXES = (".yml", ".yaml", ".j2", ".py", ".cfg")


def _files(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        path = ROOT / top
        if path.is_file():
            files.append(path)
        else:
            files += [
                p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
            ]
    return sorted(files)


def _offences(files: list[Path], forms: dict[str, re.Pattern[str]]) -> list[str]:
    found = []
    for path in files:
        rel = path.relative_to(ROOT)
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name, pattern in forms.items():
                if pattern.search(line):
                    found.append(f"{rel}:{number}: {name}: {line.strip()}")
    return found


def test_no_inline_private_address_expression_anywhere() -> None:
    deployed = _files("roles", "playbooks", "site.yml")
    found = _offences(deployed + _files("molecule"), OLD_FORMS)
    found += _offences(deployed, FACT_FORMS)
    assert found == [], (
        "a host's private address is written inline; use `HOST | private_address(hostvars)` "
        "(filter_plugins/private_address.py) instead:\n" + "\n".join(found)
    )


def test_the_detector_sees_every_old_form() -> None:
    """The patterns above catch the expressions this change removed."""
    old = [
        'x: "{{ common_private_address | default(ansible_default_ipv4.address) }}"',
        "{%- set a = hostvars[h].common_private_address | default('') -%}",
        "  {{ hostvars[groups['redis'][0]].common_private_address",
        "     | map(attribute='common_private_address', default='')",
        "    - hostvars[item]['common_private_address'] is undefined",
        "bind {{ common_private_address }}",
    ]
    for line in old:
        assert any(p.search(line) for p in OLD_FORMS.values()), line
    assert FACT_FORMS["ansible_default_ipv4"].search(
        "hostvars[h].ansible_default_ipv4.address"
    )
    new = 'x: "{{ inventory_hostname | private_address(hostvars) }}"'
    assert not any(p.search(new) for p in {**OLD_FORMS, **FACT_FORMS}.values())


def test_ansible_and_molecule_find_the_filter() -> None:
    cfg = (ROOT / "ansible.cfg").read_text()
    line = re.compile(r"^filter_plugins\s*=\s*filter_plugins\s*$", re.MULTILINE)
    assert line.search(cfg), cfg
    shared = ROOT / ".config" / "molecule" / "config.yml"
    molecule = yaml.safe_load(shared.read_text())
    assert (
        molecule["provisioner"]["env"]["ANSIBLE_FILTER_PLUGINS"]
        == "${MOLECULE_PROJECT_DIRECTORY}/filter_plugins"
    )
    for scenario in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        provisioner = yaml.safe_load(scenario.read_text()).get("provisioner") or {}
        env = provisioner.get("env") or {}
        assert "ANSIBLE_FILTER_PLUGINS" not in env, f"{scenario} hides the filters"
