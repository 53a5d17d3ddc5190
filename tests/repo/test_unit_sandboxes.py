"""The systemd sandboxes of PostgreSQL, the exporters and Prometheus's units.

Molecule (``postgresql``, ``monitoring``) measures each unit with
``systemd-analyze security`` and proves the services work inside their
sandboxes; these checks fail fast, without containers, when a drop-in loses
a directive every sandbox shares, or when a unit running as ``postgres``
gets ``RemoveIPC=yes`` (which would remove PostgreSQL's shared memory).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {
    "postgresql": ROOT / "roles/postgresql/templates/hardening.conf.j2",
    "node_exporter": ROOT / "roles/node_exporter/templates/hardening.conf.j2",
    "postgres_exporter": ROOT / "roles/postgres_exporter/templates/hardening.conf.j2",
    "pgbouncer_exporter": ROOT / "roles/pgbouncer_exporter/templates/hardening.conf.j2",
    "redis_exporter": ROOT / "roles/redis_exporter/templates/hardening.conf.j2",
    "nginx_exporter": ROOT / "roles/nginx_exporter/templates/hardening.conf.j2",
    "prometheus": ROOT / "roles/prometheus/templates/hardening.conf.j2",
}
# Units whose service user is postgres.
POSTGRES_USER = {"postgresql", "pgbouncer_exporter"}
SHARED = [
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectHostname=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
    "UMask=0077",
]


def render(role: str, **variables: object) -> list[str]:
    """The drop-in's directive lines (comments dropped), rendered with Jinja."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["bool"] = bool
    text = env.from_string(TEMPLATES[role].read_text()).render(
        ansible_managed="managed",
        _postgresql_unit_mdwe=variables.get("mdwe", True),
        _postgresql_archive_read_write_paths=["/var/lib/pgbackrest"],
        _postgresql_unit_read_write_paths=["/var/lib/postgresql"],
        _prometheus_sandbox={
            "service": "prometheus",
            "paths": ["/var/lib/prometheus/metrics2"],
            "why": "test",
        },
    )
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("role", sorted(TEMPLATES))
def test_every_sandbox_has_the_shared_directives(role: str) -> None:
    lines = render(role)
    missing = [d for d in SHARED if d not in lines]
    assert not missing, f"{role}: drop-in lacks {missing}"
    assert lines[0] == "[Service]"
    families = [line for line in lines if line.startswith("RestrictAddressFamilies=")]
    assert families, f"{role}: no RestrictAddressFamilies="
    allowed = {"AF_UNIX", "AF_INET", "AF_INET6"} | (
        {"AF_NETLINK"} if role == "node_exporter" else set()
    )
    assert set(families[-1].split("=", 1)[1].split()) == allowed


@pytest.mark.parametrize("role", sorted(POSTGRES_USER))
def test_units_of_the_postgres_user_keep_its_ipc(role: str) -> None:
    lines = render(role)
    assert "RemoveIPC=yes" not in lines


def test_postgresql_denies_writable_executable_memory_only_without_jit() -> None:
    assert "MemoryDenyWriteExecute=yes" in render("postgresql", mdwe=True)
    assert "MemoryDenyWriteExecute=yes" not in render("postgresql", mdwe=False)
    spec = (ROOT / "roles/postgresql/vars/main.yml").read_text()
    assert "_postgresql_effective_settings.jit" in spec, (
        "_postgresql_unit_mdwe must follow the effective jit setting"
    )


def test_postgresql_runs_as_postgres_without_capabilities() -> None:
    lines = render("postgresql")
    assert "User=postgres" in lines
    assert "RemoveIPC=no" in lines
