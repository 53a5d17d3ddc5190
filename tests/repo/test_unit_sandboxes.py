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
import yaml

ROOT = Path(__file__).resolve().parents[2]
POSTGRESQL_TEMPLATE = ROOT / "roles/postgresql/templates/hardening.conf.j2"
# Every other sandbox is the internal role's drop-in (tasks_from: hardening),
# rendered with the inputs its caller passes.
SANDBOX_TEMPLATE = ROOT / "roles/internal/templates/sandbox.conf.j2"
CALLERS = {
    "node_exporter": "roles/node_exporter/tasks/main.yml",
    "postgres_exporter": "roles/postgres_exporter/tasks/main.yml",
    "pgbouncer_exporter": "roles/pgbouncer_exporter/tasks/main.yml",
    "redis_exporter": "roles/redis_exporter/tasks/main.yml",
    "nginx_exporter": "roles/nginx_exporter/tasks/main.yml",
    "prometheus": "roles/prometheus/tasks/prometheus.yml",
    "alertmanager": "roles/prometheus/tasks/alertmanager.yml",
    "blackbox_exporter": "roles/prometheus/tasks/blackbox.yml",
}
UNITS = ["postgresql", *CALLERS]
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


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["bool"] = bool
    return env


def sandbox_inputs(unit: str) -> dict[str, object]:
    """The internal role's defaults overridden by what the unit's role passes
    to its import of the internal role (the hardening inputs only)."""
    inputs = yaml.safe_load((ROOT / "roles/internal/defaults/main.yml").read_text())
    # An exporter passes its service to the exporter entry point, which
    # passes it on to hardening.
    inputs["internal_hardening_service"] = f"{unit}-unit"
    tasks = yaml.safe_load((ROOT / CALLERS[unit]).read_text())
    imports = [
        task.get("vars", {})
        for task in tasks
        if task.get("ansible.builtin.import_role", {}).get("name") == "internal"
        and any(key.startswith("internal_hardening_") for key in task.get("vars", {}))
    ]
    assert len(imports) == 1, f"{unit}: expected one import of the internal sandbox"
    inputs.update(
        (key, value)
        for key, value in imports[0].items()
        if key.startswith("internal_hardening_")
    )
    return inputs


def _placeholder(key: str, value: object) -> object:
    return f"/placeholder/{key}" if "{{" in str(value) else value


def render(unit: str, **variables: object) -> list[str]:
    """The drop-in's directive lines (comments dropped), rendered with Jinja."""
    env = _environment()
    if unit == "postgresql":
        template = POSTGRESQL_TEMPLATE.read_text()
        context: dict[str, object] = {
            "_postgresql_unit_mdwe": variables.get("mdwe", True),
            "_postgresql_archive_read_write_paths": ["/var/lib/pgbackrest"],
            "_postgresql_unit_read_write_paths": ["/var/lib/postgresql"],
        }
    else:
        template = SANDBOX_TEMPLATE.read_text()
        # Expressions naming the caller's variables (service, enabled flag,
        # storage paths) stand in as placeholders.
        context = {
            key: [_placeholder(key, item) for item in value]
            if isinstance(value, list)
            else _placeholder(key, value)
            for key, value in sandbox_inputs(unit).items()
        }
    text = env.from_string(template).render(ansible_managed="managed", **context)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("role", UNITS)
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
