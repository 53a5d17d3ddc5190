"""A host's address on the private service network: the one definition.

``host | private_address(hostvars)`` is the address every role and playbook
uses for an inventory host, this one (``inventory_hostname``) or a peer
(nginx upstreams, firewall sources, pg_hba.conf, Prometheus targets, the app's
database/Redis/Ollama hosts):

1. its ``common_private_address``, when the inventory sets one (hosts.yml,
   host_vars, group_vars, extra vars, or ``set_fact``);
2. else the address of its default IPv4 route, from its facts
   (``ansible_default_ipv4.address``, or ``ansible_facts.default_ipv4`` when
   facts are not injected as variables).

A host with neither is an error naming the host and what to set, never an
empty string or the host's name: an empty firewall source or an unresolvable
upstream is a silent outage. Facts of a peer are known when a play of this
run gathered them, when a task gathered them for it (``setup`` with
``delegate_to`` and ``delegate_facts``), or from the fact cache (ansible.cfg).

``hosts | private_address_missing(hostvars)``: the hosts (in order, each once)
whose address ``private_address`` cannot tell; roles gather these hosts'
facts, or refuse them in a preflight, before anything changes.

Ansible finds this directory through ``filter_plugins`` in ansible.cfg (and
next to site.yml); Molecule through ANSIBLE_FILTER_PLUGINS in
.config/molecule/config.yml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

OVERRIDE = "common_private_address"


def _default_ipv4(host_vars: Mapping[str, Any]) -> str | None:
    route = host_vars.get("ansible_default_ipv4")
    if route is None:
        facts = host_vars.get("ansible_facts")
        route = facts.get("default_ipv4") if isinstance(facts, Mapping) else None
    if isinstance(route, Mapping) and route.get("address"):
        return str(route["address"])
    return None


def _resolve(host: str, hostvars: Mapping[str, Any]) -> tuple[str | None, str]:
    """(address, "") or (None, why there is none, with what to do)."""
    if host not in hostvars:
        return None, (
            f"{host} is not in the inventory, so it has no private address: add it to "
            "the inventory (with its common_private_address) or remove it from the list "
            "or group that names it"
        )
    host_vars = hostvars[host]
    if OVERRIDE in host_vars:
        value = host_vars[OVERRIDE]
        if value is None or not str(value).strip():
            return None, (
                f"{host} has an empty {OVERRIDE}: set it to the host's address on the "
                f"private service network (host_vars/{host}.yml or its line in hosts.yml), "
                "or delete it to use the address of the host's default IPv4 route"
            )
        return str(value).strip(), ""
    address = _default_ipv4(host_vars)
    if address:
        return address, ""
    return None, (
        f"No private address known for {host}: the inventory sets no {OVERRIDE} for it "
        "and its facts have no default IPv4 address (not gathered in this run nor in the "
        "fact cache, or the host has no default route). Set "
        f"{OVERRIDE}: ADDRESS for {host} (host_vars/{host}.yml or its line in hosts.yml), "
        "or gather its facts first (a play on it, or ansible.builtin.setup with "
        f"delegate_to: {host} and delegate_facts: true)"
    )


def private_address(host: str, hostvars: Mapping[str, Any]) -> str:
    """The private address of inventory host ``host``; an error if unknown."""
    address, problem = _resolve(str(host), hostvars)
    if address is None:
        raise AnsibleFilterError(problem)
    return address


def private_address_missing(
    hosts: Iterable[str], hostvars: Mapping[str, Any]
) -> list[str]:
    """The hosts among ``hosts`` (each once, in order) without a known address."""
    missing: list[str] = []
    for host in hosts:
        name = str(host)
        if name not in missing and _resolve(name, hostvars)[0] is None:
            missing.append(name)
    return missing


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "private_address": private_address,
            "private_address_missing": private_address_missing,
        }
